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
