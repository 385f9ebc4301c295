package api

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/server/events"
)

// TestCRC32Combine: the combined CRC of two pieces is the CRC of the two one after
// the other, for lengths across the loop's bits (0, 1, a block, past 64 KiB, past
// 2^32 is not needed: ISIZE wraps, the CRC does not depend on it).
func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{0, 0}, {0, 5}, {5, 0}, {1, 1}, {17, 300}, {1000, 65535}, {3, 70000}, {70000, 1 << 20}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := crc32.ChecksumIEEE(append(append([]byte{}, a...), b...))
		if got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b))); got != want {
			t.Errorf("lengths %v: combined %08x, want %08x", n, got, want)
		}
	}
}

// TestGzipStreamDecodes: a stream made as the event stream makes one — the header,
// the stream's own messages as stored blocks (one over 64 KiB), shared reads
// compressed on their own (events.SharedRead.Deflate), the end — decodes to the
// messages in order with a good trailer, both by Go's compress/gzip and by the gzip
// program (which checks CRC and length); and each piece is readable as soon as it
// has arrived (a dashboard must not wait for the next write to see an event).
func TestGzipStreamDecodes(t *testing.T) {
	b := events.New(4096, 1)
	cur, _ := b.Follow(0)
	var g gzipStream
	var stream, want []byte
	var pieces []int // where each write ends in stream, and in want
	var wantEnds []int
	own := func(msg []byte) {
		if len(stream) == 0 {
			stream = append(stream, gzipHeader...)
		}
		stream = g.stored(stream, msg)
		want = append(want, msg...)
		pieces, wantEnds = append(pieces, len(stream)), append(wantEnds, len(want))
	}
	own([]byte(": connected seq 0\n\n"))
	for round := range 5 {
		for i := range 200 * (round + 1) {
			b.Publish(events.DeploymentProgress, map[string]any{"id": i, "serial": fmt.Sprintf("%016x", i), "bytes": i << 20, "site": "main"})
		}
		r, lost := cur.SharedRead(64 << 10)
		if lost || len(r.Msg) == 0 {
			t.Fatalf("round %d: read %d bytes, lost %v", round, len(r.Msg), lost)
		}
		z, crc := r.Deflate()
		if z2, _ := r.Deflate(); &z2[0] != &z[0] {
			t.Errorf("round %d: Deflate made a second copy", round)
		}
		if len(z)*4 > len(r.Msg) {
			t.Errorf("round %d: %d bytes compressed to %d", round, len(r.Msg), len(z))
		}
		g.add(crc, len(r.Msg))
		stream = append(stream, z...)
		want = append(want, r.Msg...)
		pieces, wantEnds = append(pieces, len(stream)), append(wantEnds, len(want))
		own([]byte(": ping\n\n"))
	}
	own(bytes.Repeat([]byte("x"), 70000))
	stream = g.end(stream)

	// Piece by piece: what each write carries decodes before a byte of the next
	// write is read (the reader fails a read past the current write).
	pr := &writeByWrite{b: stream, upTo: pieces[0]}
	zr, err := gzip.NewReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	last := 0
	for i, end := range wantEnds {
		pr.upTo = pieces[i]
		got := make([]byte, end-last)
		if _, err := io.ReadFull(zr, got); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		if !bytes.Equal(got, want[last:end]) {
			t.Fatalf("piece %d differs", i)
		}
		last = end
	}
	pr.upTo = len(stream)
	if rest, err := io.ReadAll(zr); err != nil || len(rest) != 0 {
		t.Fatalf("after the last piece: %d bytes, %v (want a clean end: trailer checked)", len(rest), err)
	}

	cmd := exec.Command("gzip", "-d", "-c")
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -d: %v", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("gzip -d gave %d bytes, want %d", len(out), len(want))
	}
	t.Logf("%d bytes of events and messages sent as %d", len(want), len(stream))
}

// TestAcceptsGzip reads Accept-Encoding as browsers and other clients send it.
func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"":                        false,
		"gzip, deflate, br, zstd": true, // Chromium
		"gzip":                    true, // Go's http.Transport
		"identity":                false,
		"deflate, gzip;q=0":       false,
		"br;q=1.0, GZIP;q=0.5":    true,
		"*":                       true,
		"*;q=0":                   false,
		"x-gzip":                  false,
		"deflate,gzip ; q=0.001":  true,
	} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("Accept-Encoding %q: %v, want %v", h, got, want)
		}
	}
}

// writeByWrite reads b up to upTo, and fails a read past it: the bytes of a write
// the server has not made yet.
type writeByWrite struct {
	b         []byte
	off, upTo int
}

func (r *writeByWrite) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		return 0, io.EOF
	}
	if r.off >= r.upTo {
		return 0, fmt.Errorf("read past the write that ends at %d", r.upTo)
	}
	n := copy(p, r.b[r.off:r.upTo])
	r.off += n
	return n, nil
}
