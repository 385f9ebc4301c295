// Package push uploads a packed image (NAME.img.zst + NAME.manifest.json) to
// rpi-deployd, resumably: multi-GB uploads survive dropped connections and server
// restarts. Used by `rpi-deployd image add` and `rpi-image push`.
//
// The protocol (docs/api.md, "Image upload"):
//
//  1. PUT /api/v1/images/NAME/manifest with the manifest JSON. The answer
//     {"name","state","offset","size"} says how many bytes the server already has
//     (0 for a new upload; the same manifest again resumes; state "ready" means the
//     server holds this image already).
//  2. PUT /api/v1/images/NAME/data with Content-Range: bytes OFFSET-END/SIZE and the
//     bytes from OFFSET. The server appends what arrives (and keeps it even when the
//     connection breaks). A wrong OFFSET gets 409 with the right "offset".
//  3. GET /api/v1/images/NAME/upload tells the offset after a failure.
//  4. When all SIZE bytes are there the server checks size and compressed_sha256 and
//     answers state "ready"; a mismatch gets 422 and the partial upload is discarded.
//
// The package depends on the standard library and the manifest package only.
package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	progbar "github.com/rpi-deploy/rpi-deploy/image-tools/progress"
)

// Options of a push.
type Options struct {
	Server   string    // server URL, e.g. http://127.0.0.1:8080
	Token    string    // admin token (Authorization: Bearer)
	Image    string    // path of NAME.img.zst; the manifest is manifest.PathFor(Image)
	Progress io.Writer // progress lines; nil = silent
	// Retries is how many consecutive failures without progress end the push.
	// Default 5.
	Retries int
	// Client; nil = a client without overall timeout.
	Client *http.Client
	// AllowNoFirstBoot asks the server to accept an image whose manifest names no
	// first-boot mechanism (it refuses one by default: boards flashed with it could
	// not be given their hostname).
	AllowNoFirstBoot bool
}

// State is the server's upload state.
type State struct {
	Name   string `json:"name"`
	State  string `json:"state"` // "uploading" or "ready"
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// ErrRejected is wrapped when the server refuses the upload for good (bad manifest,
// name taken by other content, bytes not matching the manifest).
var ErrRejected = errors.New("server rejected the upload")

// Push uploads the image, resuming where the server stands, and returns when the
// server reports it ready.
func Push(ctx context.Context, opt Options) error {
	raw, m, f, err := open(opt.Image)
	if err != nil {
		return err
	}
	defer f.Close()
	if opt.Retries <= 0 {
		opt.Retries = 5
	}
	p := &pusher{opt: opt, name: m.Name, hc: opt.Client}
	if p.hc == nil {
		p.hc = &http.Client{}
	}
	p.base = strings.TrimSuffix(opt.Server, "/") + "/api/v1/images/" + m.Name

	var st State
	q := "/manifest"
	if opt.AllowNoFirstBoot {
		q += "?allow_no_first_boot=true"
	}
	if err := p.call(ctx, http.MethodPut, q, bytes.NewReader(raw), int64(len(raw)), "", &st); err != nil {
		return err
	}
	if st.State == "ready" {
		p.printf("push %s: already on the server\n", m.Name)
		return nil
	}
	return p.upload(ctx, f, m, st)
}

// open reads the manifest beside image (its raw bytes and decoded) and opens the
// image, which must be as long as the manifest says.
func open(image string) ([]byte, *manifest.Manifest, *os.File, error) {
	mpath := manifest.PathFor(image)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := manifest.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("manifest %q: %w", mpath, err)
	}
	f, err := os.Open(image)
	if err != nil {
		return nil, nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != m.CompressedSize {
		err = fmt.Errorf("image %q is %d bytes, its manifest says compressed_size %d", image, fi.Size(), m.CompressedSize)
	}
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	return raw, m, f, nil
}

// upload sends the image's bytes from where the server stands (st) until the server
// reports it ready. After a failed request it asks the server where it stands and
// resumes there; opt.Retries failures in a row without progress end it.
func (p *pusher) upload(ctx context.Context, f io.ReaderAt, m *manifest.Manifest, st State) error {
	prog := newProgress(p.opt.Progress, m.Name, m.CompressedSize, st.Offset)
	defer prog.stop()
	failures := 0
	for {
		if st.State == "ready" {
			prog.done()
			return nil
		}
		start := st.Offset
		sec := io.NewSectionReader(f, start, m.CompressedSize-start)
		cr := fmt.Sprintf("bytes %d-%d/%d", start, m.CompressedSize-1, m.CompressedSize)
		var next State
		err := p.call(ctx, http.MethodPut, "/data", &countReader{r: sec, n: &prog.sent, base: start}, m.CompressedSize-start, cr, &next)
		if err == nil {
			st, failures = next, 0
			continue
		}
		if errors.Is(err, ErrRejected) || ctx.Err() != nil {
			return err
		}
		// Find out where the server stands and go on from there.
		var now State
		if qerr := p.call(ctx, http.MethodGet, "/upload", nil, 0, "", &now); qerr != nil {
			if errors.Is(qerr, ErrRejected) || ctx.Err() != nil {
				return qerr
			}
			now = st
		}
		if now.Offset > start {
			failures = 0
		} else {
			failures++
		}
		if failures >= p.opt.Retries {
			return fmt.Errorf("push %s: %d attempts without progress: %w", m.Name, failures, err)
		}
		p.printf("\npush %s: %v; resuming at %d\n", m.Name, err, now.Offset)
		prog.sent.Store(now.Offset)
		st = now
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
}

type pusher struct {
	opt  Options
	name string
	base string
	hc   *http.Client
}

func (p *pusher) printf(format string, a ...any) {
	if p.opt.Progress != nil {
		fmt.Fprintf(p.opt.Progress, format, a...)
	}
}

// errOffset carries the server's offset from a 409.
type errOffset struct{ offset int64 }

func (e *errOffset) Error() string { return fmt.Sprintf("server is at offset %d", e.offset) }

func (p *pusher) call(ctx context.Context, method, path string, body io.Reader, n int64, contentRange string, out *State) error {
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.ContentLength = n
		if n == 0 {
			req.Body = http.NoBody
		}
	}
	if contentRange != "" {
		req.Header.Set("Content-Range", contentRange)
		req.Header.Set("Content-Type", "application/zstd")
	} else if method == http.MethodPut {
		req.Header.Set("Content-Type", "application/json")
	}
	if p.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opt.Token)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	var body2 struct {
		State
		Error string `json:"error"`
	}
	json.Unmarshal(data, &body2)
	switch {
	case resp.StatusCode == http.StatusOK:
		*out = body2.State
		return nil
	case resp.StatusCode == http.StatusConflict && path == "/data":
		// Offset mismatch: not fatal, the loop asks for the offset.
		return fmt.Errorf("%s %s: %s: %w", method, path, body2.Error, &errOffset{body2.Offset})
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		msg := body2.Error
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("%s %s: HTTP %d: %s: %w", method, path, resp.StatusCode, msg, ErrRejected)
	default:
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
}

type countReader struct {
	r    io.Reader
	n    *atomic.Int64
	base int64
	read int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.read += int64(n)
	c.n.Store(c.base + c.read)
	return n, err
}

// progress prints "push NAME: 512/2048 MiB 25% 110.2 MiB/s" every half second.
type progress struct {
	w     io.Writer
	name  string
	total int64
	sent  atomic.Int64
	start time.Time
	first int64
	quit  chan struct{}
	ended chan struct{}
}

func newProgress(w io.Writer, name string, total, at int64) *progress {
	p := &progress{w: w, name: name, total: total, start: time.Now(), first: at, quit: make(chan struct{}), ended: make(chan struct{})}
	p.sent.Store(at)
	go func() {
		defer close(p.ended)
		if w == nil {
			<-p.quit
			return
		}
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.line("\r")
			}
		}
	}()
	return p
}

func (p *progress) line(prefix string) {
	s := p.sent.Load()
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(s-p.first) / el
	}
	pct := 100.0
	if p.total > 0 {
		pct = float64(s) * 100 / float64(p.total)
	}
	fmt.Fprintf(p.w, "%spush %s: %s/%s %3.0f%% %s/s ", prefix, p.name,
		progbar.Bytes(s), progbar.Bytes(p.total), pct, progbar.Bytes(int64(rate)))
}

func (p *progress) done() {
	p.sent.Store(p.total)
	p.stop()
	if p.w != nil {
		p.line("\r")
		fmt.Fprintf(p.w, "ready\n")
	}
}

func (p *progress) stop() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.ended
}
