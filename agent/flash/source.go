package flash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrPermanent is wrapped by source errors that a retry cannot cure (a missing image,
// an image of the wrong length).
var ErrPermanent = errors.New("permanent")

// Source serves the compressed image.
type Source interface {
	// Open returns the compressed bytes from off to the end of the image. Errors that
	// retrying cannot cure wrap ErrPermanent.
	Open(ctx context.Context, off int64) (io.ReadCloser, error)
}

// HTTPSource fetches the .img.zst with Range requests.
type HTTPSource struct {
	URL    string
	Client *http.Client // nil: http.DefaultClient
	// Size is the expected length of the compressed file (manifest.CompressedSize);
	// a server that says otherwise gets a permanent error.
	Size int64
	// Stall is how long a read may wait for the first byte before the connection is
	// given up as dead and the stream resumed (default 30 s). Time the pipeline spends
	// not reading (a slow card) does not count.
	Stall time.Duration
	// Header is sent with every request (the deployment secret, agentapi.HeaderSecret).
	Header http.Header

	fetched atomic.Int64
}

// Fetched is the number of body bytes received so far, resumes included.
func (s *HTTPSource) Fetched() int64 { return s.fetched.Load() }

// Open sends GET with "Range: bytes=off-" (none at 0).
func (s *HTTPSource) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", s.URL, err)
	}
	fail := func(perm bool, format string, a ...any) (io.ReadCloser, error) {
		resp.Body.Close()
		err := fmt.Errorf("get %s: %s", s.URL, fmt.Sprintf(format, a...))
		if perm {
			err = fmt.Errorf("%w: %w", ErrPermanent, err)
		}
		return nil, err
	}
	var skip int64
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			return fail(true, "bad Content-Range %q for offset %d", resp.Header.Get("Content-Range"), off)
		}
		if s.Size > 0 && total != s.Size {
			return fail(true, "server has %d bytes, manifest says %d", total, s.Size)
		}
	case http.StatusOK:
		if s.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != s.Size {
			return fail(true, "server has %d bytes, manifest says %d", resp.ContentLength, s.Size)
		}
		skip = off // no Range support: read up to off and drop it
	case http.StatusRequestedRangeNotSatisfiable:
		return fail(true, "range from %d not satisfiable (%s)", off, resp.Header.Get("Content-Range"))
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusUnauthorized:
		return fail(true, "%s", resp.Status)
	default:
		return fail(false, "%s", resp.Status)
	}
	stall := s.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	body := &countingBody{rc: resp.Body, n: &s.fetched, stall: stall}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			body.Close()
			return nil, fmt.Errorf("get %s: skip to %d: %w", s.URL, off, err)
		}
	}
	return body, nil
}

func parseContentRange(s string) (start, total int64, ok bool) {
	// bytes START-END/TOTAL
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	total, err2 := strconv.ParseInt(tot, 10, 64)
	return start, total, err1 == nil && err2 == nil
}

// ErrStalled is returned by reads of a stream that sent nothing for Stall.
var ErrStalled = errors.New("image stream stalled")

type countingBody struct {
	rc    io.ReadCloser
	n     *atomic.Int64
	stall time.Duration
}

func (b *countingBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.stall, func() { b.rc.Close() })
	n, err := b.rc.Read(p)
	if !t.Stop() && err != nil {
		err = fmt.Errorf("%w: no data for %v: %w", ErrStalled, b.stall, err)
	}
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
