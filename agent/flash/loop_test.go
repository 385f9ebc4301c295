package flash

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/agent/flash/flashtest"
)

func TestTargetFailsWrites(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	dev := flashtest.LoopOnTinyTmpfs(t, 32<<20, 4<<20)
	// A previous image on the card: its first block must not survive the failure.
	if err := os.WriteFile(dev, bytes.Repeat([]byte("OLD!"), 1024), 0); err != nil {
		t.Fatal(err)
	}
	fl, err := Open(dev, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	err = fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize})
	if !errors.Is(err, ErrWrite) || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO)) {
		t.Fatalf("err = %v, want ErrWrite with ENOSPC or EIO", err)
	}
	t.Logf("stream failed as it should: %v", err)
	checkUnbootable(t, dev)
}
