package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/domain"
)

// maxRanges is the most byte ranges one download request may ask for. The agent asks
// for one; net/http's ServeContent has no cap of its own (40 000 ranges built a
// 5.7 MB multipart answer).
const maxRanges = 16

// download: GET/HEAD /images/NAME.img.zst and /images/NAME.manifest.json, with
// Range, If-Range and sendfile (http.ServeContent on the *os.File). Only images the
// store has as ready are served, and only regular files in the images directory:
// never a symlink, whatever it points to.
func (a *API) download(c *gin.Context) {
	file := c.Param("file")
	var path, ctype, name string
	isImage := false
	switch {
	case strings.HasSuffix(file, ".img.zst"):
		name = strings.TrimSuffix(file, ".img.zst")
		path, ctype, isImage = a.svc.ImageFile(name), "application/zstd", true
	case strings.HasSuffix(file, ".manifest.json"):
		name = strings.TrimSuffix(file, ".manifest.json")
		path, ctype = a.svc.ManifestFile(name), "application/json"
	}
	if path == "" {
		fail(c, http.StatusNotFound, "no such image file "+strconv.Quote(file), "")
		return
	}
	ready, err := a.svc.ImageReady(c.Request.Context(), name)
	if err != nil {
		failErr(c, err)
		return
	}
	if !ready {
		fail(c, http.StatusNotFound, "no ready image file "+strconv.Quote(file), "")
		return
	}
	a.serveImageFile(c, path, file, ctype, isImage)
}

// peerImage: GET/HEAD /api/v1/peer/images/NAME.img.zst?compressed_sha256=SUM — the
// packed file for another site's server pulling it, with Range. It answers only
// with the database's peer credential (Authorization: Bearer), only for the content
// the other site asks for, and only when this site holds it whole. It takes no
// board's stream slot.
func (a *API) peerImage(c *gin.Context) {
	file := c.Param("file")
	name, ok := strings.CutSuffix(file, ".img.zst")
	if !ok {
		name = "" // not a packed image: 404 once the credential is checked
	}
	tok, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	path, err := a.svc.PeerImageFile(c.Request.Context(), tok, name, c.Query("compressed_sha256"))
	if err != nil {
		failErr(c, err)
		return
	}
	a.serveImageFile(c, path, file, "application/zstd", false)
}

// serveImageFile serves path (a file in the images directory) as file, with Range;
// count: it is a board's download, counted in the metrics.
func (a *API) serveImageFile(c *gin.Context, path, file, ctype string, count bool) {
	f, err := openRegular(filepath.Dir(path), filepath.Base(path))
	if errors.Is(err, os.ErrNotExist) {
		fail(c, http.StatusNotFound, "no ready image file "+strconv.Quote(file), "")
		return
	}
	if err != nil {
		a.log.Warn("image download refused", "file", file, "err", err)
		fail(c, http.StatusNotFound, "no ready image file "+strconv.Quote(file), "")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		failErr(c, err)
		return
	}
	if n := countRanges(c.GetHeader("Range")); n > maxRanges {
		c.Header("Content-Range", "bytes */"+strconv.FormatInt(fi.Size(), 10))
		fail(c, http.StatusRequestedRangeNotSatisfiable,
			"Range asks for "+strconv.Itoa(n)+" ranges; at most "+strconv.Itoa(maxRanges)+" are served", "Range")
		return
	}
	c.Header("Content-Type", ctype)
	c.Header("Cache-Control", "no-cache")
	w := &streamWriter{gw: c.Writer, m: a.Metrics, rc: http.NewResponseController(c.Writer), d: a.opt.WriteTimeout}
	if !count || c.Request.Method == http.MethodHead {
		http.ServeContent(w, c.Request, file, fi.ModTime(), f)
		return
	}
	a.Metrics.streams.Add(1)
	defer a.Metrics.streams.Add(-1)
	a.Metrics.downloads.Add(1)
	w.count = true
	http.ServeContent(w, c.Request, file, fi.ModTime(), f)
}

// openRegular opens dir/name only if it is a regular file in dir itself: symlinks
// are refused, also ones that point inside dir (os.Root alone would follow those).
func openRegular(dir, name string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	lfi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !lfi.Mode().IsRegular() {
		return nil, fmt.Errorf("%q is not a regular file (%s)", name, lfi.Mode().Type())
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	// Replaced by a symlink between Lstat and Open?
	if fi, err := f.Stat(); err != nil || !os.SameFile(lfi, fi) {
		f.Close()
		return nil, fmt.Errorf("%q changed while being opened", name)
	}
	return f, nil
}

// countRanges counts the byte ranges of a Range header ("bytes=0-1,5-9" → 2).
func countRanges(h string) int {
	if h == "" {
		return 0
	}
	return strings.Count(h, ",") + 1
}

// streamWriter serves image bytes: it counts them (when count is set), keeps sendfile
// (ReadFrom goes to the net/http response underneath Gin's writer), and moves the
// write deadline on by d before each 1 MiB, so a reader that keeps reading is served
// however long the image takes, and one that stops is cut after d.
type streamWriter struct {
	gw    gin.ResponseWriter
	m     *Metrics
	rc    *http.ResponseController
	d     time.Duration
	count bool
}

func (w *streamWriter) Header() http.Header  { return w.gw.Header() }
func (w *streamWriter) WriteHeader(code int) { w.gw.WriteHeader(code) }
func (w *streamWriter) Write(p []byte) (int, error) {
	moveWriteDeadline(w.rc, w.d)
	n, err := w.gw.Write(p)
	w.add(int64(n))
	return n, err
}

func (w *streamWriter) add(n int64) {
	if w.count {
		w.m.bytesServed.Add(n)
	}
}

func (w *streamWriter) ReadFrom(r io.Reader) (int64, error) {
	w.gw.WriteHeaderNow()
	var dst io.ReaderFrom = writerOnly{w.gw}
	if u, ok := w.gw.(interface{ Unwrap() http.ResponseWriter }); ok {
		if rf, ok := u.Unwrap().(io.ReaderFrom); ok {
			dst = rf
		}
	}
	// ServeContent hands over an io.LimitedReader of the *os.File; sendfile takes only
	// that shape, so each chunk is a LimitedReader of the file itself.
	src, left := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, left = lr.R, lr.N
		defer func() { lr.N = left }()
	}
	var total int64
	for left != 0 {
		chunk := int64(downloadChunk)
		if left > 0 && left < chunk {
			chunk = left
		}
		moveWriteDeadline(w.rc, w.d)
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: chunk})
		total += n
		w.add(n)
		if left > 0 {
			left -= n
		}
		if err != nil {
			return total, err
		}
		if n < chunk {
			break // end of the file
		}
	}
	return total, nil
}

// writerOnly hides a writer's ReadFrom so that io.Copy does not call back into it.
type writerOnly struct{ io.Writer }

func (w writerOnly) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w.Writer}, r)
}

// putManifest: PUT /api/v1/images/:name/manifest — start or resume an upload.
// ?allow_no_first_boot=true accepts an image without a first-boot mechanism.
func (a *API) putManifest(c *gin.Context) {
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<20))
	if err != nil {
		fail(c, http.StatusBadRequest, "read manifest: "+err.Error(), "")
		return
	}
	allow, _ := strconv.ParseBool(c.DefaultQuery("allow_no_first_boot", "false"))
	st, err := a.svc.RegisterManifest(c.Request.Context(), c.Param("name"), raw, allow)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// uploadState: GET /api/v1/images/:name/upload.
func (a *API) uploadState(c *gin.Context) {
	st, err := a.svc.Upload(c.Request.Context(), c.Param("name"))
	if err != nil {
		failErr(c, err)
		return
	}
	c.Header("Upload-Offset", strconv.FormatInt(st.Offset, 10))
	c.JSON(http.StatusOK, st)
}

// putData: PUT /api/v1/images/:name/data with Content-Range: bytes START-END/TOTAL
// (END may be "*"-less open: "bytes START-*/TOTAL" is not allowed; send the real
// END). START must be the current offset.
func (a *API) putData(c *gin.Context) {
	start, end, total, ok := parseContentRange(c.GetHeader("Content-Range"))
	if !ok {
		fail(c, http.StatusBadRequest, "Content-Range: want \"bytes START-END/TOTAL\"", "Content-Range")
		return
	}
	st, err := a.svc.Upload(c.Request.Context(), c.Param("name"))
	if err != nil {
		failErr(c, err)
		return
	}
	if total != st.Size || end >= total || end < start {
		fail(c, http.StatusBadRequest, "Content-Range total or end does not match the manifest's compressed_size "+
			strconv.FormatInt(st.Size, 10), "Content-Range")
		return
	}
	body := io.LimitReader(c.Request.Body, end-start+1)
	st, err = a.svc.AppendImage(c.Request.Context(), c.Param("name"), start, body)
	c.Header("Upload-Offset", strconv.FormatInt(st.Offset, 10))
	if err != nil {
		if errors.Is(err, domain.ErrOffset) {
			c.AbortWithStatusJSON(http.StatusConflict, gin.H{"error": err.Error(), "offset": st.Offset, "state": st.State})
			return
		}
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func parseContentRange(h string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(s, 10, 64)
	end, err2 = strconv.ParseInt(e, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	ok = err1 == nil && err2 == nil && err3 == nil && start >= 0
	return
}
