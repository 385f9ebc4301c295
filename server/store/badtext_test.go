package store

import (
	"context"
	"errors"
	"testing"
)

// TestBadText: text PostgreSQL cannot hold (a NUL character, invalid UTF-8) is
// ErrInvalid there, not a failure of the database (WriteError stays clear, never
// ErrUnavailable), and leaves nothing, while an Update of the same group commits;
// SQLite stores the same text as it is.
func TestBadText(t *testing.T) {
	dialects(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := openCfg(t, cfg)
		for _, tc := range []struct{ name, model string }{{"NUL", "Pi\x005"}, {"invalid UTF-8", "Pi \xff\xfe"}} {
			t.Run(tc.name, func(t *testing.T) {
				bad, good := "00000000000000b1", "00000000000000b2"
				if tc.name == "NUL" {
					bad, good = "00000000000000c1", "00000000000000c2"
				}
				ok := make(chan error, 1)
				wait := holdWriter(t, s, 1, func(tx *Tx) error {
					return tx.SeeBoard(ctx, Board{Serial: bad, Model: tc.model})
				})
				go func() {
					ok <- s.Update(ctx, func(tx *Tx) error { return tx.SeeBoard(ctx, Board{Serial: good, Model: "Pi 5"}) })
				}()
				err := wait()
				if gerr := <-ok; gerr != nil {
					t.Errorf("the other update of the group: %v", gerr)
				}
				if _, err := s.Board(ctx, good); err != nil {
					t.Errorf("the other board: %v", err)
				}
				b, rerr := s.Board(ctx, bad)
				if s.Postgres() {
					if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable) {
						t.Errorf("board with model %q: %v, want ErrInvalid", tc.model, err)
					}
					if !errors.Is(rerr, ErrNotFound) {
						t.Errorf("refused board: %+v %v, want ErrNotFound", b, rerr)
					}
					if werr, _ := s.WriteError(); werr != nil {
						t.Errorf("WriteError after refused text: %v", werr)
					}
					return
				}
				if err != nil || rerr != nil || b.Model != tc.model {
					t.Errorf("SQLite: %v; board %+v %v, want model %q", err, b, rerr, tc.model)
				}
			})
		}
	})
}
