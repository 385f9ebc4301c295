package zstimg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/rpi-deploy/rpi-deploy/image-tools/internal/ordered"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/progress"
	"github.com/rpi-deploy/rpi-deploy/image-tools/sha256chain"
)

// VerifyOptions tune Verify. The zero value is ready to use.
type VerifyOptions struct {
	// Concurrency is the number of frames decoded at once; 0 means GOMAXPROCS.
	Concurrency int
	// Progress, if set, receives a progress bar (terminal) or periodic lines.
	Progress io.Writer
}

// Verify checks the packed file f of size bytes against m: the file length and its
// SHA256 (compressed_size, compressed_sha256), that every frame starts where the manifest
// says and decodes to exactly its chunk, every chunk's SHA256 and DataSHA256, the
// SHA256 of the whole raw image, and the chain values (the whole-image hash's state at
// every chunk's end). A file cut exactly at a frame boundary decodes cleanly as a zstd
// stream; the length check is what catches it. Mismatches wrap ErrMismatch.
func Verify(ctx context.Context, f io.ReaderAt, size int64, m *manifest.Manifest, opt VerifyOptions) (err error) {
	if err := m.Validate(); err != nil {
		return err
	}
	if size != m.CompressedSize {
		return fmt.Errorf("%w: compressed file is %d bytes, manifest says %d (truncated or wrong file?)", ErrMismatch, size, m.CompressedSize)
	}
	workers := opt.Concurrency
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	dec, err := NewDecoder(m.ChunkSize, workers)
	if err != nil {
		return err
	}
	defer dec.Close()

	bar := progress.Start(opt.Progress, "verifying "+m.Name, m.Size)
	defer func() { bar.Finish(err == nil) }()

	type result struct{ frame, raw []byte }
	pool := sync.Pool{New: func() any { return new(result) }}
	whole, comp := sha256.New(), sha256.New()
	err = ordered.Map(ctx, len(m.Chunks), workers,
		func(ctx context.Context, i int) (*result, error) {
			res := pool.Get().(*result)
			ch := m.Chunks[i]
			res.frame = grow(res.frame, int(ch.FrameSize))
			if _, err := f.ReadAt(res.frame, ch.Frame); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return nil, fmt.Errorf("chunk %d: read frame at %d: %w", i, ch.Frame, err)
			}
			raw, err := DecodeChunk(dec, m, i, res.frame, res.raw)
			if err != nil {
				return nil, err
			}
			res.raw = raw
			if err := checkData(m, i, raw); err != nil {
				return nil, err
			}
			return res, nil
		},
		func(i int, res *result) error {
			comp.Write(res.frame)
			whole.Write(res.raw)
			if want := m.Chunks[i].Chain; want != "" {
				st, err := sha256chain.State(whole, m.ChunkRange(i).End())
				if err != nil {
					return err
				}
				if got := sha256chain.Hex(st); got != want {
					return fmt.Errorf("%w: chunk %d: sha256 chain %s, manifest says %s", ErrMismatch, i, got, want)
				}
			}
			bar.Add(int64(len(res.raw)))
			pool.Put(res)
			return nil
		})
	if err != nil {
		return err
	}
	if got := hexSum(comp); m.CompressedSHA256 != "" && got != m.CompressedSHA256 {
		return fmt.Errorf("%w: compressed sha256 %s, manifest says %s", ErrMismatch, got, m.CompressedSHA256)
	}
	if got := hexSum(whole); got != m.SHA256 {
		return fmt.Errorf("%w: image sha256 %s, manifest says %s", ErrMismatch, got, m.SHA256)
	}
	return nil
}

// checkData checks chunk i's bytes inside the data ranges against DataSHA256. raw must
// already match the chunk's SHA256.
func checkData(m *manifest.Manifest, i int, raw []byte) error {
	r := m.ChunkRange(i)
	data := m.DataIn(r)
	if len(data) == 1 && data[0] == r {
		// The whole chunk is data: the same bytes as the SHA256 raw matched.
		if m.Chunks[i].DataSHA256 != m.Chunks[i].SHA256 {
			return fmt.Errorf("%w: chunk %d is all data but its data sha256 %q differs from its sha256 %q", ErrMismatch, i, m.Chunks[i].DataSHA256, m.Chunks[i].SHA256)
		}
		return nil
	}
	got := DataSHA256(raw, r.Offset, data)
	if got != m.Chunks[i].DataSHA256 {
		return fmt.Errorf("%w: chunk %d: data sha256 %q, manifest says %q", ErrMismatch, i, got, m.Chunks[i].DataSHA256)
	}
	return nil
}

// DataSHA256 is the hex SHA256 of the bytes of chunk (which starts at raw offset base)
// inside the ranges data, concatenated; "" when data is empty. This is the manifest's
// Chunk.DataSHA256.
func DataSHA256(chunk []byte, base int64, data []manifest.Range) string {
	if len(data) == 0 {
		return ""
	}
	h := sha256.New()
	for _, d := range data {
		h.Write(chunk[d.Offset-base : d.End()-base])
	}
	return hexSum(h)
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
