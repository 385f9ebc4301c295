package logbuf

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestWaitFor: a waiter wakes on the write that brings its text, whichever of many
// concurrent writers brings it; every write is kept whole.
func TestWaitFor(t *testing.T) {
	var b Buffer
	const writers, lines = 8, 100
	found := make(chan bool)
	go func() { found <- b.WaitFor("writer 7 line 99\n", time.Minute) }()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
			}
		}()
	}
	if !<-found {
		t.Fatal("WaitFor did not see the last line of writer 7")
	}
	wg.Wait()
	if got, want := len(b.String()), writers*len("writer 0 line 00\n")*(lines-10)+writers*len("writer 0 line 0\n")*10; got != want {
		t.Errorf("buffer holds %d bytes, want %d", got, want)
	}
}

// TestWaitForTimeout: text that never comes is reported after the timeout, while
// other writes go on waking the waiter.
func TestWaitForTimeout(t *testing.T) {
	var b Buffer
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				b.Write([]byte("noise\n"))
			}
		}
	}()
	if b.WaitFor("never written", 50*time.Millisecond) {
		t.Fatal("WaitFor found text nobody wrote")
	}
}
