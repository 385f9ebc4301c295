package flash

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPool pins the lazy pool: buffers are made only when none came back, never more
// than the maximum; past it get waits for a put (or for its context), and what comes
// back is handed out again before anything new is made.
func TestPool(t *testing.T) {
	made := 0
	p := newPool(2, func() []byte { made++; return make([]byte, 8) })
	ctx := context.Background()
	a, err := p.get(ctx)
	if err != nil || made != 1 {
		t.Fatalf("first get: %v, %d made; want a new buffer", err, made)
	}
	p.put(a)
	if b, _ := p.get(ctx); &b[0] != &a[0] || made != 1 {
		t.Fatalf("get after put made a new buffer (%d made), want the one put back", made)
	}
	if _, err := p.get(ctx); err != nil || made != 2 || p.allocated() != 2 {
		t.Fatalf("second buffer: %v, %d made", err, made)
	}
	// Both are out: get waits. A cancelled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.get(cctx); !errors.Is(err, context.Canceled) || made != 2 {
		t.Fatalf("get past the maximum with a cancelled context: %v, %d made; want context.Canceled and no new buffer", err, made)
	}
	got := make(chan []byte)
	go func() { b, _ := p.get(ctx); got <- b }()
	select {
	case <-got:
		t.Fatal("get past the maximum returned before a buffer came back")
	case <-time.After(20 * time.Millisecond):
	}
	p.put(a)
	if b := <-got; &b[0] != &a[0] || made != 2 {
		t.Fatalf("the waiting get took %p (%d made), want the buffer put back", &b[0], made)
	}
}
