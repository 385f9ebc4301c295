package events

import (
	"bytes"
	"compress/flate"
	"hash/crc32"
	"io"
	"testing"
)

// TestSharedReadDeflate: the cursors that share a read share its compressed form too
// (made once), which inflates to the read's messages, ends with a sync flush (an
// empty stored block, so a reader gets every byte of it without waiting for more)
// and carries the messages' CRC-32.
func TestSharedReadDeflate(t *testing.T) {
	b := New(64, 1)
	a, _ := b.Follow(0)
	c, _ := b.Follow(0)
	for i := range 40 {
		b.Publish(DeploymentProgress, map[string]any{"id": i, "phase": "streaming", "bytes": i << 20, "site": "main"})
	}
	ra, _ := a.SharedRead(0)
	rc, _ := c.SharedRead(0)
	if ra != rc {
		t.Fatal("cursors at one position got two reads")
	}
	za, crc := ra.Deflate()
	zc, _ := rc.Deflate()
	if len(za) == 0 || &za[0] != &zc[0] {
		t.Fatal("the compressed form was made twice")
	}
	if want := crc32.ChecksumIEEE(ra.Msg); crc != want {
		t.Errorf("crc %08x, want %08x", crc, want)
	}
	if !bytes.HasSuffix(za, []byte{0, 0, 0xff, 0xff}) {
		t.Errorf("does not end with a sync flush: % x", za[max(0, len(za)-8):])
	}
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(za)))
	if err != io.ErrUnexpectedEOF && err != nil { // no final block: the stream goes on
		t.Fatal(err)
	}
	if !bytes.Equal(got, ra.Msg) {
		t.Errorf("inflated %d bytes, want the read's %d", len(got), len(ra.Msg))
	}
	t.Logf("%d bytes of events compressed to %d", len(ra.Msg), len(za))
	if r, _ := a.SharedRead(0); len(r.Msg) != 0 {
		t.Errorf("nothing new published: read %q", r.Msg)
	} else if z, _ := r.Deflate(); len(z) != 0 {
		t.Errorf("an empty read compressed to % x", z)
	}
}
