package events

import (
	"bytes"
	"compress/flate"
	"hash/crc32"
	"sync"
)

// SharedRead is one read of Cursor.SharedRead, shared by every cursor that was at
// its position: the SSE messages, and on demand the same bytes compressed.
type SharedRead struct {
	// Msg is the messages, in order (Cursor.Read); it must not be modified.
	Msg []byte

	once sync.Once
	z    []byte
	crc  uint32
}

// Deflate returns Msg compressed as raw DEFLATE blocks (RFC 1951) that refer to no
// byte before them and end byte-aligned with a sync flush (an empty stored block,
// not final): they may follow any such blocks in a DEFLATE stream, so every event
// stream compressed with gzip sends these same bytes (see server/api). crc is Msg's
// CRC-32 (IEEE), which a gzip trailer needs. Made on the first call, once for all
// the cursors that share the read; the compression level is flate's default.
func (r *SharedRead) Deflate() (z []byte, crc uint32) {
	r.once.Do(func() {
		r.crc = crc32.ChecksumIEEE(r.Msg)
		if len(r.Msg) == 0 {
			return
		}
		var buf bytes.Buffer
		buf.Grow(len(r.Msg)/4 + 64)
		w := deflaters.Get().(*flate.Writer)
		w.Reset(&buf)
		// Writes to a bytes.Buffer do not fail.
		w.Write(r.Msg)
		w.Flush()
		deflaters.Put(w)
		r.z = buf.Bytes()
	})
	return r.z, r.crc
}

// deflaters holds the compressors Deflate reuses (each holds about 1 MB of state).
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.DefaultCompression) // a valid level: no error
	return w
}}
