package flash

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/flash/flashtest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/readback"
)

// TestReadBackBesideSync pins the order around the stream's closing fsync on an
// O_DIRECT target: Stream returns while the fsync runs; Verify reads back the chunks
// written before the stream's last ReadBackLag bytes of writes during it, and the
// chunks of those last bytes only after it (a byte changed on the card in one of them
// while the fsync is held is caught, by name); Commit writes chunk 0 only after it.
// A failed fsync is Verify's ErrWrite, Commit refuses, and the card stays unbootable.
// The fsync is the target's own, held back until the test releases it, or, for the
// failure (which a healthy disk cannot be made to give), replaced by an EIO.
func TestReadBackBesideSync(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T, target string) *Flasher {
		fl, err := Open(target, m, Options{ReadBackLag: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Close() })
		if !fl.f.Direct() {
			t.Fatalf("target %q does not take O_DIRECT: the fsync would not run beside the read-back", target)
		}
		return fl
	}

	t.Run("held", func(t *testing.T) {
		target := oldTarget(t, len(raw))
		fl := open(t, target)
		release, synced := make(chan struct{}), atomic.Bool{}
		realSync := fl.syncTarget
		fl.syncTarget = func() error {
			select {
			case <-release:
			case <-time.After(time.Minute): // rather than hang the test
				t.Error("the fsync held for a minute: Stream or Verify waited for it before reading back")
			}
			err := realSync()
			synced.Store(true)
			return err
		}
		if err := fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize}); err != nil {
			t.Fatal(err)
		}
		split := fl.settled()
		before, far, j := fl.dataBytes(1, split), 0, 0 // j: a chunk with data read after the fsync
		for i := 1; i < len(m.Chunks); i++ {
			switch {
			case m.Chunks[i].DataSHA256 == "":
			case i < split:
				far++
			case j == 0:
				j = i
			}
		}
		if far == 0 || j == 0 {
			t.Fatalf("chunks with data: %d before chunk %d, first after it %d; want some on both sides", far, split, j)
		}
		reached := make(chan struct{}) // phase one read back while the fsync is held
		var once atomic.Bool
		type result struct {
			n   int
			err error
		}
		res := make(chan result, 1)
		go func() {
			n, err := fl.Verify(context.Background(), func(done, _ int64) {
				if done >= before && !synced.Load() && once.CompareAndSwap(false, true) {
					close(reached)
				}
			})
			res <- result{n, err}
		}()
		<-reached
		at := m.DataIn(m.ChunkRange(j))[0].Offset
		flashtest.FlipByte(t, target, at) // after the first reads, before the fsync returns
		close(release)
		r := <-res
		var ce *readback.ChunkError
		if !errors.As(r.err, &ce) || ce.Chunk != j || !errors.Is(r.err, readback.ErrMismatch) || r.n != far {
			t.Fatalf("Verify = %d, %v; want %d matched and a mismatch of chunk %d", r.n, r.err, far, j)
		}
		if err := fl.Commit(); err == nil {
			t.Fatal("Commit succeeded after a failed read-back")
		}
		checkUnbootable(t, target)
		flashtest.FlipByte(t, target, at)
		if _, err := fl.Verify(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if err := fl.Commit(); err != nil {
			t.Fatal(err)
		}
		checkData(t, m, raw, target)
		if st := fl.Stats(); st.SyncTime <= 0 || st.ReadBack != fl.dataBytes(1, len(m.Chunks)) {
			t.Errorf("stats: sync %v, read back %d bytes; want a sync time and %d bytes", st.SyncTime, st.ReadBack, fl.dataBytes(1, len(m.Chunks)))
		}
	})

	t.Run("fails", func(t *testing.T) {
		target := oldTarget(t, len(raw))
		fl := open(t, target)
		fl.syncTarget = func() error { return syscall.EIO }
		if err := fl.Stream(context.Background(), &HTTPSource{URL: serve(t, plain(zst)), Size: m.CompressedSize}); err != nil {
			t.Fatal(err)
		}
		if _, err := fl.Verify(context.Background(), nil); !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Verify = %v; want ErrWrite with EIO", err)
		}
		if err := fl.Commit(); err == nil {
			t.Fatal("Commit succeeded after a failed fsync")
		}
		checkUnbootable(t, target)
	})
}

// TestSyncFirstOnVolatileCache pins where the fsync runs beside the read-back: on a card
// whose queue says "write back" (a volatile write cache, which a counterfeit card could
// use to put the last writes elsewhere at the flush) Stream syncs before it returns and
// everything is read back after; on one that says "write through" the fsync runs beside
// the read-back. The card is a loop device (root), its sysfs write_cache set each way;
// both flash, verify and commit.
func TestSyncFirstOnVolatileCache(t *testing.T) {
	raw := synthImage(t, 16<<20)
	m, zst, err := packed(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cache  string
		beside bool
	}{{"write back", false}, {"write through", true}} {
		t.Run(c.cache, func(t *testing.T) {
			dev := flashtest.LoopOnTinyTmpfs(t, 16<<20, 32<<20)
			wc := "/sys/block/" + filepath.Base(dev) + "/queue/write_cache"
			if err := os.WriteFile(wc, []byte(c.cache), 0); err != nil {
				t.Fatalf("set %s: %v", wc, err)
			}
			t.Cleanup(func() { os.WriteFile(wc, []byte("write back"), 0) }) // before the loop device goes
			fl, err := flash(t, m, dev, serve(t, plain(zst)), Options{ReadBackLag: 4 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if got := fl.syncDone != nil; got != c.beside || fl.volatileCache == c.beside {
				t.Errorf("write_cache %q: fsync beside the read-back %v (volatile cache %v), want %v", c.cache, got, fl.volatileCache, c.beside)
			}
			checkData(t, m, raw, dev)
			if st := fl.Stats(); !st.DirectIO || st.SyncTime <= 0 {
				t.Errorf("stats: direct %v, sync %v", st.DirectIO, st.SyncTime)
			}
		})
	}
}
