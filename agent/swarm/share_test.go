package swarm

import (
	"testing"
	"time"
)

// TestShareRule: with K boards (shares 0..K-1 of K, as the server hands them out)
// each piece is exactly one board's share; a board alone takes every piece; a
// stalled flasher takes the pieces it needs whoever's share they are, and only those
// (not behind it, not beyond its read-ahead); a flasher that moves on never takes
// another board's piece.
func TestShareRule(t *testing.T) {
	const pl = 256 << 10
	base := share{pieceLength: pl, readahead: 4 * pl, wait: shareWait}

	for i := int64(0); i < 40; i++ {
		owners := 0
		for idx := int64(0); idx < 5; idx++ {
			x := base
			x.piece, x.index, x.of, x.readPos = i, idx, 5, 1<<40 // flasher far away
			if !leaveToPeers(x) {
				owners++
			}
		}
		if owners != 1 {
			t.Errorf("piece %d: %d of 5 boards fetch it from the server, want 1", i, owners)
		}
	}
	// Alone (or the server gave no share yet): every piece is this board's.
	for _, of := range []int64{0, 1} {
		x := base
		x.piece, x.of = 7, of
		if leaveToPeers(x) {
			t.Errorf("of=%d: piece left to peers; a lone board must fetch it", of)
		}
	}
	// Another board's piece at the flasher's position: left to peers while the
	// flasher moves, fetched once it has waited longer than shareWait.
	x := base
	x.piece, x.index, x.of = 10, 1, 5 // 10%5 != 1: not this board's
	for _, tc := range []struct {
		stalled time.Duration
		readPos int64
		want    bool
	}{
		{0, 10 * pl, true},
		{shareWait - time.Millisecond, 10 * pl, true},
		{shareWait + time.Millisecond, 10 * pl, false},        // needed now
		{shareWait + time.Millisecond, 10*pl + pl - 1, false}, // the last byte of it is next
		{shareWait + time.Millisecond, 7 * pl, false},         // within read-ahead (4 pieces)
		{shareWait + time.Millisecond, 6 * pl, true},          // beyond read-ahead
		{shareWait + time.Millisecond, 11 * pl, true},         // already behind the flasher
	} {
		y := x
		y.stalled, y.readPos = tc.stalled, tc.readPos
		if got := leaveToPeers(y); got != tc.want {
			t.Errorf("stalled %v at %d: leaveToPeers = %v, want %v", tc.stalled, tc.readPos, got, tc.want)
		}
	}
}
