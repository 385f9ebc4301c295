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
