package store

import (
	"context"
	"errors"
	"testing"

	"github.com/rpi-deploy/rpi-deploy/internal/pgtest"
)

// TestUnavailable: with PostgreSQL stopped, Update and reads return errors that
// errors.Is ErrUnavailable (and nothing is written); WriteError reports it. Once
// PostgreSQL is back, the same store writes and reads again without being reopened
// (database/sql replaces the reader pool's broken connections; the writer discards
// its connection after the lost transaction and takes a new one), and WriteError
// clears. A killed server (SIGKILL, as a crash) is the same.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	s := openCfg(t, Config{Dir: t.TempDir(), URL: pg.CreateDB(t)})
	see := func(serial string) error {
		return s.Update(ctx, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: serial}) })
	}
	if err := see("00000000000000a0"); err != nil {
		t.Fatal(err)
	}
	for _, down := range []struct {
		name string
		stop func() error
	}{{"stopped", pg.Stop}, {"killed", pg.Kill}} {
		t.Run(down.name, func(t *testing.T) {
			if err := down.stop(); err != nil {
				t.Fatal(err)
			}
			if err := see("00000000000000a1"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Update with PostgreSQL %s: %v, want ErrUnavailable", down.name, err)
			}
			if werr, _ := s.WriteError(); !errors.Is(werr, ErrUnavailable) {
				t.Errorf("WriteError with PostgreSQL %s: %v", down.name, werr)
			}
			if _, err := s.Board(ctx, "00000000000000a0"); !errors.Is(err, ErrUnavailable) {
				t.Errorf("read with PostgreSQL %s: %v, want ErrUnavailable", down.name, err)
			}
			if _, err := s.Boards(ctx, BoardFilter{}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("list with PostgreSQL %s: %v, want ErrUnavailable", down.name, err)
			}
			// A single-row read of its own (the hello's P2P mode; a reset connection
			// showed there as a bare "connection reset by peer", a 500).
			if _, _, err := s.DeploymentP2P(ctx, 1); !errors.Is(err, ErrUnavailable) {
				t.Errorf("single-row read with PostgreSQL %s: %v, want ErrUnavailable", down.name, err)
			}
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
			// The first use of a connection the restart broke fails (unavailable);
			// database/sql then opens a new one. A few attempts, no sleep.
			var err error
			for range 5 {
				if err = see("00000000000000a2"); err == nil || !errors.Is(err, ErrUnavailable) {
					break
				}
			}
			if err != nil {
				t.Fatalf("Update after PostgreSQL is back: %v", err)
			}
			if werr, _ := s.WriteError(); werr != nil {
				t.Errorf("WriteError after a successful write: %v", werr)
			}
			for range 5 {
				if _, err = s.Board(ctx, "00000000000000a1"); !errors.Is(err, ErrUnavailable) {
					break
				}
			}
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("board written while PostgreSQL was %s: %v, want ErrNotFound", down.name, err)
			}
			if _, err := s.Board(ctx, "00000000000000a2"); err != nil {
				t.Errorf("board written after: %v", err)
			}
		})
	}
}
