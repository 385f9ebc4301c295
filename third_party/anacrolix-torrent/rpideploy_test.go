package torrent

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/anacrolix/chansync"
	"github.com/anacrolix/log"
)

// TestWriterWakesOnTickleDuringFill: a tickle (tickleWriter's Broadcast) that lands
// while the writer fills its buffer and finds nothing to send must still wake it for
// another fill. It stands for the engine flagging a request update (a peer's Unchoke
// read on another goroutine) just after the fill looked: before the patch the writer
// slept through it until its keep-alive timer (a minute), and a board with one
// unchoked seeder requested nothing meanwhile. rpi-deploy's own test (PATCHES.md).
func TestWriterWakesOnTickleDuringFill(t *testing.T) {
	var closed chansync.SetOnce
	fills := make(chan int, 8)
	n := 0
	w := &peerConnMsgWriter{
		closed:      &closed,
		logger:      log.Default,
		w:           io.Discard,
		keepAlive:   func() bool { return false },
		writeBuffer: new(bytes.Buffer),
	}
	w.fillWriteBuffer = func() {
		n++
		if n == 1 {
			w.writeCond.Broadcast() // the state changed after this fill looked
		}
		fills <- n
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(time.Hour)
	}()
	defer func() {
		closed.Set()
		<-done
	}()
	for want := 1; want <= 2; want++ {
		select {
		case got := <-fills:
			if got != want {
				t.Fatalf("fill %d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the writer slept through a tickle: %d fill(s), want 2", want-1)
		}
	}
}

// TestRejectOfCancelledRequestIsNoRefusal: the peer's Reject of a request we had
// cancelled acknowledges the cancel (BEP 6) and updates our requests as a cancel
// does, which lets new requests be made; before the patch it was taken for a refusal,
// under which none are made until the peer unchokes us again, and a board whose one
// request was cancelled asked a seeder that never choked it for nothing more.
func TestRejectOfCancelledRequestIsNoRefusal(t *testing.T) {
	pc := &PeerConn{}
	pc.peerImpl = pc
	pc.initRequestState()
	const r RequestIndex = 7
	pc.requestState.Cancelled.Add(r)
	pc.validReceiveChunks = map[RequestIndex]int{r: 1}
	if !pc.remoteRejectedRequest(r) {
		t.Fatal("the Reject of a cancelled request was taken for an invalid one")
	}
	if pc.requestState.Cancelled.Contains(r) {
		t.Error("the request is still awaiting the peer's answer to its cancel")
	}
	if got := pc.needRequestUpdate; got != peerUpdateRequestsPeerCancelReason {
		t.Errorf("requests updated for %q, want %q (a refusal's reason makes no new request)", got, peerUpdateRequestsPeerCancelReason)
	}
}
