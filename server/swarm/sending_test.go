package swarm

import (
	"testing"
	"time"
)

// TestSendTurn: a piece being sent to one board is declined to another board once,
// and that board's next request is served, also while the first send goes on; a board
// that asks over and over is served every second request at least; other pieces,
// other images and a piece whose sends have ended are served at once; a decline is
// forgotten after declineMemory.
func TestSendTurn(t *testing.T) {
	now := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	r := New(Options{Now: func() time.Time { return now }})
	doneA := r.SendTurn("img", 1, 7)
	if doneA == nil {
		t.Fatal("the first request for piece 7 was declined")
	}
	if r.SendTurn("img", 2, 7) != nil {
		t.Fatal("board 2 was served piece 7 while board 1 is being sent it")
	}
	done2 := r.SendTurn("img", 2, 7)
	if done2 == nil {
		t.Fatal("board 2 was declined piece 7 twice in a row")
	}
	done2()
	served := 0
	for range 10 {
		if d := r.SendTurn("img", 3, 7); d != nil {
			served++
			d()
		}
	}
	if served < 5 {
		t.Errorf("board 3 asking ten times while board 1's send goes on: served %d, want 5 at least", served)
	}
	for _, tc := range []struct {
		image string
		piece int
	}{{"img", 8}, {"other", 7}} {
		d := r.SendTurn(tc.image, 4, tc.piece)
		if d == nil {
			t.Errorf("%s piece %d declined; nobody is being sent it", tc.image, tc.piece)
			continue
		}
		d()
	}
	if r.SendTurn("img", 5, 7) != nil {
		t.Fatal("board 5 served piece 7 while board 1 is being sent it")
	}
	now = now.Add(declineMemory + time.Second)
	if r.SendTurn("img", 5, 7) != nil {
		t.Error("board 5 served piece 7 a minute after its decline: a forgotten decline is made again while board 1 is being sent it")
	}
	doneA()
	for id := int64(6); id < 9; id++ {
		d := r.SendTurn("img", id, 7)
		if d == nil {
			t.Fatalf("board %d declined piece 7 after every send of it ended", id)
		}
		d()
	}
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if len(r.sending) != 0 {
		t.Errorf("sends still counted after all ended: %v", r.sending)
	}
}
