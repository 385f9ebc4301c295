package swarm

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
)

// TestSeedUntilNoLeechers: a verified board keeps seeding while another board of its
// image is still downloading, stops when none is, and stops after SeedFor whatever;
// boards silent for three intervals and more drop out of the peer lists; a board is
// never listed to itself, and a board that stopped seeding is not listed either.
func TestSeedUntilNoLeechers(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r := New(Options{Interval: 10 * time.Second, SeedFor: time.Minute, Now: func() time.Time { return now }})
	ann := func(id int64, port int, done bool) agentapi.SwarmAnswer {
		return r.Announce(Member{Deployment: id, Serial: "s", Image: "img", IP: "10.0.0.1", Port: port, Done: done})
	}
	if a := ann(1, 1001, false); len(a.Peers) != 0 || !a.Seed {
		t.Fatalf("first board: %+v", a)
	}
	if a := ann(2, 1002, false); len(a.Peers) != 1 || a.Peers[0].Port != 1001 {
		t.Fatalf("second board sees %+v, want board 1", a.Peers)
	}
	if a := ann(1, 1001, true); !a.Seed {
		t.Fatalf("board 1 done while board 2 downloads: seed = false")
	}
	for range 2 {
		now = now.Add(25 * time.Second)
		ann(2, 1002, false)
		if a := ann(1, 1001, true); !a.Seed || len(a.Peers) != 1 {
			t.Fatalf("%v later, board 2 still downloading: %+v", now.Sub(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)), a)
		}
	}
	now = now.Add(11 * time.Second)
	ann(2, 1002, false)
	if a := ann(1, 1001, true); a.Seed {
		t.Fatalf("past SeedFor board 1 still told to seed")
	}
	if a := ann(2, 1002, false); len(a.Peers) != 0 {
		t.Fatalf("board 2 is offered board 1 that stopped seeding: %+v", a.Peers)
	}
	// Board 3 comes and goes silent; board 2, done, stops when nobody downloads.
	ann(3, 1003, false)
	if a := ann(2, 1002, true); !a.Seed {
		t.Fatalf("board 2 done while board 3 downloads: seed = false")
	}
	now = now.Add(20 * time.Second)
	ann(1, 1001, true)
	now = now.Add(20 * time.Second) // board 3 silent 40 s > 3 × 10 s + 5 s
	if a := ann(2, 1002, true); a.Seed || len(a.Peers) != 0 {
		t.Fatalf("board 3 silent for 40 s: board 2 still seeds or sees it: %+v", a)
	}
	if m := r.Members(); len(m) != 2 {
		t.Fatalf("members %+v; want boards 1 and 2 (3 went silent)", m)
	}
	r.Leave("img", 2)
	if m := r.Members(); len(m) != 1 || m[0].Deployment != 1 {
		t.Fatalf("after board 2 left: %+v", m)
	}
}

// TestPeerListBounded: one answer lists at most MaxPeers boards.
func TestPeerListBounded(t *testing.T) {
	r := New(Options{MaxPeers: 5})
	for i := range 40 {
		r.Announce(Member{Deployment: int64(i + 1), Image: "img", IP: "10.0.0.1", Port: 2000 + i})
	}
	if a := r.Announce(Member{Deployment: 100, Image: "img", IP: "10.0.0.2", Port: 1}); len(a.Peers) != 5 {
		t.Fatalf("%d peers listed, want 5", len(a.Peers))
	}
}

// TestShareSplitsPieces: the boards still downloading each get a distinct share index
// of the same count, so that every piece is exactly one board's to fetch from the
// server; a board that finishes leaves the split (and gets no share), and the others'
// shares close up at their next announce.
func TestShareSplitsPieces(t *testing.T) {
	r := New(Options{})
	ann := func(id int64, done bool) agentapi.SwarmAnswer {
		return r.Announce(Member{Deployment: id, Image: "img", IP: "10.0.0.1", Port: 1000 + int(id), Done: done})
	}
	ids := []int64{7, 3, 12, 5}
	for _, id := range ids {
		ann(id, false)
	}
	got := map[int64]agentapi.SwarmShare{}
	for _, id := range ids {
		a := ann(id, false)
		if a.Share == nil {
			t.Fatalf("board %d downloading: no share", id)
		}
		got[id] = *a.Share
	}
	want := map[int64]agentapi.SwarmShare{3: {Index: 0, Of: 4}, 5: {Index: 1, Of: 4}, 7: {Index: 2, Of: 4}, 12: {Index: 3, Of: 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("shares (-want +got):\n%s", diff)
	}
	if a := ann(5, true); a.Share != nil {
		t.Errorf("a done board got share %+v", *a.Share)
	}
	if a := ann(7, false); a.Share == nil || *a.Share != (agentapi.SwarmShare{Index: 1, Of: 3}) {
		t.Errorf("after board 5 finished, board 7's share = %+v; want 1 of 3", a.Share)
	}
}
