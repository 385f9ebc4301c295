package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/flash/flashtest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// gatedSource serves zst from memory, but a read that would pass byte gate first runs
// wait (once): the test acts on the card while the flasher cannot have got past it.
type gatedSource struct {
	zst  []byte
	gate int64
	once sync.Once
	wait func() error
	err  error
}

func (s *gatedSource) Open(_ context.Context, off int64) (io.ReadCloser, error) {
	return io.NopCloser(&gatedReader{s: s, off: off}), nil
}

type gatedReader struct {
	s   *gatedSource
	off int64
}

func (r *gatedReader) Read(p []byte) (int, error) {
	s := r.s
	if r.off >= int64(len(s.zst)) {
		return 0, io.EOF
	}
	if r.off+int64(len(p)) > s.gate {
		if r.off < s.gate {
			p = p[:s.gate-r.off] // up to the gate, then wait there
		} else {
			s.once.Do(func() { s.err = s.wait() })
			if s.err != nil {
				return 0, s.err
			}
		}
	}
	n := copy(p, s.zst[r.off:])
	r.off += int64(n)
	return n, nil
}

// TestReadBackReadsTheCard pins that the read-back reads the card, not a copy in
// memory, whenever it runs: a byte of chunk j changes on the card after the flasher
// wrote it and before the stream may get past chunk j+lag (the source holds its frame
// back until then), and Verify must name chunk j. With a lag of 2 chunks chunk j is read
// back during the stream; with the default lag (64 MiB, more than this image) and by
// default (after the stream), after it (the source holds the last frame back then).
func TestReadBackReadsTheCard(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	j := 3
	for m.Chunks[j].DataSHA256 == "" {
		j++
	}
	at := m.DataIn(m.ChunkRange(j))[0].Offset + 5 // a data byte of chunk j
	for _, tc := range []struct {
		name string
		opt  Options
		lag  int // chunks
	}{
		{"lag 2 chunks", Options{ReadBackDuringStream: true, ReadBackLag: 2 << 20}, 2},
		{"default lag", Options{ReadBackDuringStream: true}, 64},
		{"after stream", Options{}, len(m.Chunks)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := oldTarget(t, len(raw))
			gate := m.Chunks[min(j+tc.lag, len(m.Chunks)-1)].Frame // the last frame at most: the stream is not over
			src := &gatedSource{zst: zst, gate: gate, wait: func() error { return corruptOnCard(target, raw, at) }}
			fl, err := Open(target, m, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			if err := fl.Stream(context.Background(), src); err != nil {
				t.Fatal(err)
			}
			if src.err != nil {
				t.Fatal(src.err)
			}
			n, err := fl.Verify(context.Background(), nil)
			var ce *readback.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != j || !errors.Is(err, readback.ErrMismatch) {
				t.Fatalf("Verify = %d, %v; want a mismatch of chunk %d", n, err, j)
			}
			if err := fl.Commit(); err == nil {
				t.Fatal("Commit succeeded after a failed read-back")
			}
			checkUnbootable(t, target)
		})
	}
}

// corruptOnCard waits until the image's byte at off is on the card file (the flasher
// wrote its chunk), then flips it there, as a card that loses a write would.
func corruptOnCard(card string, raw []byte, off int64) error {
	f, err := os.OpenFile(card, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	want := raw[off : off+64]
	got := make([]byte, len(want))
	for give := time.Now().Add(2 * time.Minute); ; {
		if _, err := f.ReadAt(got, off); err != nil {
			return err
		}
		if bytes.Equal(got, want) {
			break
		}
		// Not written yet: the flasher's decoders and writers get there without
		// this source (the frames before the gate are all in).
		if time.Now().After(give) {
			return fmt.Errorf("byte %d never reached the card", off)
		}
		time.Sleep(time.Millisecond)
	}
	got[0] ^= 0x01
	if _, err := f.WriteAt(got[:1], off); err != nil {
		return fmt.Errorf("flip byte %d of the card: %w", off, err)
	}
	return f.Sync()
}

// TestReadBackNamesEveryChunk pins that the read-back after the stream, with several
// chunks read at once and each chunk read with the merged requests it was written
// with, still hashes every data byte it reads from the card: a byte changed on the card
// in any chunk with data — at the first or the last byte of its data — makes Verify
// name exactly that chunk and count the chunks before it as matched, at every depth;
// of two changed chunks it names the lower, whichever read finished first; the card
// changed back verifies and commits.
func TestReadBackNamesEveryChunk(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	var data []int // chunks the read-back checks
	for i := 1; i < len(m.Chunks); i++ {
		if m.Chunks[i].DataSHA256 != "" {
			data = append(data, i)
		}
	}
	if len(data) < 8 {
		t.Fatalf("test image has %d chunks with data, want several", len(data))
	}
	for _, depth := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("depth %d", depth), func(t *testing.T) {
			target := oldTarget(t, len(raw))
			fl, err := Open(target, m, Options{ReadBackDepth: depth})
			if err != nil {
				t.Fatal(err)
			}
			defer fl.Close()
			if err := fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize}); err != nil {
				t.Fatal(err)
			}
			for k, j := range data {
				rs := m.DataIn(m.ChunkRange(j))
				for _, at := range []int64{rs[0].Offset, rs[len(rs)-1].End() - 1} {
					flashtest.FlipByte(t, target, at)
					n, err := fl.Verify(context.Background(), nil)
					var ce *readback.ChunkError
					if !errors.As(err, &ce) || ce.Chunk != j || !errors.Is(err, readback.ErrMismatch) || n != k {
						t.Fatalf("byte %d of chunk %d changed: Verify = %d, %v; want %d matched and a mismatch of chunk %d", at, j, n, err, k, j)
					}
					flashtest.FlipByte(t, target, at)
				}
			}
			lo, hi := data[1], data[len(data)-1]
			flashtest.FlipByte(t, target, m.DataIn(m.ChunkRange(hi))[0].Offset)
			flashtest.FlipByte(t, target, m.DataIn(m.ChunkRange(lo))[0].Offset)
			n, err := fl.Verify(context.Background(), nil)
			var ce *readback.ChunkError
			if !errors.As(err, &ce) || ce.Chunk != lo || n != 1 {
				t.Fatalf("chunks %d and %d changed: Verify = %d, %v; want 1 matched and chunk %d named", lo, hi, n, err, lo)
			}
			flashtest.FlipByte(t, target, m.DataIn(m.ChunkRange(hi))[0].Offset)
			flashtest.FlipByte(t, target, m.DataIn(m.ChunkRange(lo))[0].Offset)
			if n, err := fl.Verify(context.Background(), nil); err != nil || n != len(data) {
				t.Fatalf("card as written: Verify = %d, %v; want %d chunks matched", n, err, len(data))
			}
			var total int64
			for _, j := range data {
				for _, r := range m.DataIn(m.ChunkRange(j)) {
					total += r.Length
				}
			}
			if st := fl.Stats(); st.ReadBack != total {
				t.Errorf("read back %d bytes, want the %d data bytes of the chunks after chunk 0", st.ReadBack, total)
			}
			if err := fl.Commit(); err != nil {
				t.Fatal(err)
			}
			checkData(t, m, raw, target)
		})
	}
}

// TestReadBackCardShrinks pins the read-back's I/O failures: the card ends in the
// middle of chunk j's data after the stream (the target file cut there, so that the
// kernel answers the reads past it with nothing), while eight reads are in flight.
// Verify names chunk j with the short read, Commit refuses, and the card stays
// unbootable.
func TestReadBackCardShrinks(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	j, k := 0, 0 // a chunk with data in the second half, and the data chunks before it
	for i := 1; i < len(m.Chunks); i++ {
		if m.Chunks[i].DataSHA256 == "" {
			continue
		}
		if m.ChunkRange(i).Offset >= m.Size/2 {
			j = i
			break
		}
		k++
	}
	target := oldTarget(t, len(raw))
	fl, err := Open(target, m, Options{ReadBackDepth: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if err := fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize}); err != nil {
		t.Fatal(err)
	}
	r := m.DataIn(m.ChunkRange(j))[0]
	if err := os.Truncate(target, r.Offset+r.Length/2); err != nil {
		t.Fatal(err)
	}
	n, err := fl.Verify(context.Background(), nil)
	var ce *readback.ChunkError
	if !errors.As(err, &ce) || ce.Chunk != j || !errors.Is(err, io.ErrUnexpectedEOF) || n != k {
		t.Fatalf("Verify = %d, %v; want %d matched and a short read of chunk %d", n, err, k, j)
	}
	if err := fl.Commit(); err == nil {
		t.Fatal("Commit succeeded after a failed read-back")
	}
	checkUnbootable(t, target)
}

// TestVerifyNeedsCompleteStream pins that Verify refuses a Flasher whose stream did not
// complete (never ran, or failed) instead of reading back a card that was not written
// or waiting for chunk buffers a failed stream never gave back.
func TestVerifyNeedsCompleteStream(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no stream", func(t *testing.T) {
		fl, err := Open(oldTarget(t, len(raw)), m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		if n, err := fl.Verify(context.Background(), nil); err == nil || n != 0 {
			t.Fatalf("Verify = %d, %v; want a refusal", n, err)
		}
	})
	t.Run("failed stream", func(t *testing.T) {
		target := oldTarget(t, len(raw))
		fl, err := Open(target, m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		short := zst[:m.Chunks[len(m.Chunks)/2].Frame+10] // cut inside a frame
		if err := fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(short)), Size: m.CompressedSize}); err == nil {
			t.Fatal("Stream of a cut image succeeded")
		}
		if n, err := fl.Verify(context.Background(), nil); err == nil || n != 0 {
			t.Fatalf("Verify = %d, %v; want a refusal", n, err)
		}
		if err := fl.Commit(); err == nil {
			t.Fatal("Commit succeeded after a failed stream")
		}
		checkUnbootable(t, target)
	})
}
