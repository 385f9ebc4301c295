package testimg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// Tool runs an outside tool (looked up in PATH, /usr/sbin and /sbin) with
// LC_ALL=C.UTF-8 and MTOOLS_SKIP_CHECK=1 and returns its stdout; the error carries
// its stderr.
func Tool(ctx context.Context, name string, args ...string) ([]byte, error) {
	return run(ctx, nil, name, args...)
}

// MustTool is Tool for tests: a failure ends the test with the tool's output.
func MustTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Tool(context.Background(), name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// SHA256 is the hex SHA256 of b, as Info.Files records it.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Garbage returns n bytes of non-zero junk, standing in for a card's old contents:
// a 64 KiB random block repeated, cheap even under the race detector.
func Garbage(n int) []byte {
	block := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{'g', 'a', 'r', 'b', 'a', 'g', 'e'}).Read(block)
	out := make([]byte, n)
	for i := 0; i < n; i += copy(out[i:], block) {
	}
	return out
}

// COW is an in-memory copy-on-write view of a byte slice, in 4 KiB pages: tests
// corrupt and write it freely, many times over, without copying the whole image.
// Reads and writes outside [0, len(base)) fail with io.ErrUnexpectedEOF.
type COW struct {
	base  []byte
	pages map[int64][]byte
}

const cowPage = 4096

// NewCOW returns a view of base; base itself is never written.
func NewCOW(base []byte) *COW { return &COW{base: base, pages: map[int64][]byte{}} }

// Size is len(base).
func (c *COW) Size() int64 { return int64(len(c.base)) }

func (c *COW) span(p []byte, off int64, write bool) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(c.base)) {
		return 0, io.ErrUnexpectedEOF
	}
	for done := 0; done < len(p); {
		pos := off + int64(done)
		idx, at := pos/cowPage, int(pos%cowPage)
		n := min(len(p)-done, cowPage-at)
		pg := c.page(idx, write)
		if write {
			copy(pg[at:], p[done:done+n])
		} else {
			copy(p[done:done+n], pg[at:])
		}
		done += n
	}
	return len(p), nil
}

func (c *COW) page(idx int64, write bool) []byte {
	if pg, ok := c.pages[idx]; ok {
		return pg
	}
	src := c.base[idx*cowPage : min((idx+1)*cowPage, int64(len(c.base)))]
	if !write {
		return src
	}
	pg := append([]byte(nil), src...)
	c.pages[idx] = pg
	return pg
}

// ReadAt implements io.ReaderAt.
func (c *COW) ReadAt(p []byte, off int64) (int, error) { return c.span(p, off, false) }

// WriteAt implements io.WriterAt.
func (c *COW) WriteAt(p []byte, off int64) (int, error) { return c.span(p, off, true) }
