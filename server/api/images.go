package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/rpi-deploy/rpi-deploy/server/domain"
)

// download: GET/HEAD /images/NAME.img.zst and /images/NAME.manifest.json, with
// Range, If-Range and sendfile (http.ServeContent on the *os.File).
func (a *API) download(c *gin.Context) {
	file := c.Param("file")
	var path, ctype string
	isImage := false
	switch {
	case strings.HasSuffix(file, ".img.zst"):
		path, ctype, isImage = a.svc.ImageFile(strings.TrimSuffix(file, ".img.zst")), "application/zstd", true
	case strings.HasSuffix(file, ".manifest.json"):
		path, ctype = a.svc.ManifestFile(strings.TrimSuffix(file, ".manifest.json")), "application/json"
	}
	if path == "" {
		fail(c, http.StatusNotFound, "no such image file "+strconv.Quote(file), "")
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		fail(c, http.StatusNotFound, "no ready image file "+strconv.Quote(file), "")
		return
	}
	if err != nil {
		failErr(c, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		failErr(c, err)
		return
	}
	c.Header("Content-Type", ctype)
	c.Header("Cache-Control", "no-cache")
	if !isImage || c.Request.Method == http.MethodHead {
		http.ServeContent(c.Writer, c.Request, file, fi.ModTime(), f)
		return
	}
	a.Metrics.streams.Add(1)
	defer a.Metrics.streams.Add(-1)
	a.Metrics.downloads.Add(1)
	w := &countingWriter{gw: c.Writer, m: a.Metrics}
	http.ServeContent(w, c.Request, file, fi.ModTime(), f)
}

// countingWriter counts image bytes served and keeps sendfile: ReadFrom goes to the
// net/http response underneath Gin's writer.
type countingWriter struct {
	gw gin.ResponseWriter
	m  *Metrics
}

func (w *countingWriter) Header() http.Header  { return w.gw.Header() }
func (w *countingWriter) WriteHeader(code int) { w.gw.WriteHeader(code) }
func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.gw.Write(p)
	w.m.bytesServed.Add(int64(n))
	return n, err
}

func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.gw.WriteHeaderNow()
	var n int64
	var err error
	if u, ok := w.gw.(interface{ Unwrap() http.ResponseWriter }); ok {
		rf, _ := u.Unwrap().(io.ReaderFrom)
		if rf != nil {
			n, err = rf.ReadFrom(r)
			w.m.bytesServed.Add(n)
			return n, err
		}
	}
	{
		n, err = io.Copy(struct{ io.Writer }{w.gw}, r)
	}
	w.m.bytesServed.Add(n)
	return n, err
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
