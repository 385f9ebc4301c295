package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/server/servertest"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// TestWriteErrorOnFullDisk: on a file system that is full (a small tmpfs filled by
// another file), a write transaction fails with SQLite's "disk is full" and
// WriteError reports it; an error of the caller's own rules does not; once there is
// room, Probe succeeds and clears it.
func TestWriteErrorOnFullDisk(t *testing.T) {
	ctx := context.Background()
	dir := servertest.SmallDataDir(t, 8<<20)
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(ctx, func(tx *store.Tx) error { return store.ErrConflict }); !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	if werr, _ := s.WriteError(); werr != nil {
		t.Fatalf("a rule error counted as a write failure: %v", werr)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	var werr error
	big := strings.Repeat("x", 200<<10)
	for i := 0; i < 100 && werr == nil; i++ {
		werr = s.Update(ctx, func(tx *store.Tx) error { return tx.Audit(ctx, "test", "fill", "", big) })
	}
	if werr == nil {
		t.Fatal("100 writes of 200 KiB on a full disk all succeeded")
	}
	got, at := s.WriteError()
	if got == nil || at.IsZero() || !strings.Contains(got.Error(), "full") {
		t.Fatalf("WriteError after %v: %v at %v", werr, got, at)
	}
	t.Logf("write on the full disk: %v", got)
	if err := s.Probe(ctx); err == nil {
		// The probe rewrites a row in place; SQLite may find room for it in the WAL.
		t.Log("probe succeeded on the full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(ctx); err != nil {
		t.Fatalf("probe with room again: %v", err)
	}
	if got, _ := s.WriteError(); got != nil {
		t.Errorf("WriteError after a good probe: %v", got)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error { return tx.Audit(ctx, "test", "after", "", "") }); err != nil {
		t.Errorf("write after recovery: %v", err)
	}
}
