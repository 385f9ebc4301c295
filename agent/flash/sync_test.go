package flash

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestSyncsBesideWrites pins the fsyncs the stream starts beside its writes
// (Options.SyncEvery): every 1 MiB written on a 16 MiB image some are started and the
// card verifies and commits; never (<0) and by default (128 MiB, more than this image's
// data) none. An fsync beside the writes that fails fails the stream with ErrWrite even
// though every later fsync succeeds (Linux reports a write-back error to one fsync of
// a descriptor only), and the card stays unbootable; the target's own fsync is
// replaced by one that fails once, as a healthy disk cannot be made to.
func TestSyncsBesideWrites(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		every int64
		some  bool
	}{{"every MiB", 1 << 20, true}, {"never", -1, false}, {"default", 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			target := oldTarget(t, len(raw))
			fl, err := flash(t, m, target, serve(t, plain(zst)), Options{SyncEvery: c.every})
			if err != nil {
				t.Fatal(err)
			}
			checkData(t, m, raw, target)
			if st := fl.Stats(); (st.Syncs > 0) != c.some {
				t.Errorf("%d fsyncs beside the writes, want some: %v", st.Syncs, c.some)
			}
		})
	}
	t.Run("one fails", func(t *testing.T) {
		target := oldTarget(t, len(raw))
		fl, err := Open(target, m, Options{SyncEvery: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		var calls atomic.Int32
		fsync := fl.syncTarget
		fl.syncTarget = func() error {
			if calls.Add(1) == 1 {
				return syscall.EIO
			}
			return fsync()
		}
		err = fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize})
		if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Stream = %v; want ErrWrite with EIO", err)
		}
		if _, err := fl.Verify(context.Background(), nil); err == nil {
			t.Fatal("Verify passed after a failed fsync")
		}
		if err := fl.Commit(); err == nil {
			t.Fatal("Commit succeeded after a failed fsync")
		}
		checkUnbootable(t, target)
	})
}
