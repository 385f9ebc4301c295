package swarm

import (
	"testing"
	"time"
)

// TestShareRule: with K boards (shares 0..K-1 of K, as the server hands them out)
// each piece is exactly one board's share; a board alone takes every piece; a
// stalled flasher takes the pieces it needs whoever's share they are, and only those
// (not behind it, not beyond its read-ahead); a flasher that moves on never takes
// another board's piece. Boards stalled at one piece take it in turn: the board whose
// share follows the piece's owner's first, each next one a step later.
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
	// Five boards stalled at piece 12 (board 2's share), a step of 1 s: board 3
	// takes it after the wait, board 4 a step later, board 0 two, board 1 three;
	// never later than maxStagger.
	for _, tc := range []struct {
		index int64
		after time.Duration
	}{{3, 0}, {4, time.Second}, {0, 2 * time.Second}, {1, 3 * time.Second}} {
		y := base
		y.piece, y.index, y.of, y.readPos, y.step = 12, tc.index, 5, 12*pl, time.Second
		y.stalled = shareWait + tc.after - time.Millisecond
		if !leaveToPeers(y) {
			t.Errorf("board %d stalled %v: takes piece 12 before its turn (%v after the wait)", tc.index, y.stalled, tc.after)
		}
		y.stalled = shareWait + tc.after + time.Millisecond
		if leaveToPeers(y) {
			t.Errorf("board %d stalled %v: leaves piece 12 to peers past its turn", tc.index, y.stalled)
		}
	}
	y := base
	y.piece, y.index, y.of, y.readPos, y.step = 0, 99, 100, 0, time.Second // 99 shares after the owner's
	if y.stalled = shareWait + maxStagger + time.Millisecond; leaveToPeers(y) {
		t.Errorf("stalled %v: the stagger is more than maxStagger (%v)", y.stalled, maxStagger)
	}
}
