package flash

import (
	"context"
	"sync"
)

// pool hands out buffers of one kind, at most cap(free) of them, each allocated when
// it is first needed: memory that a run never needs at once is never touched (every
// page of a new buffer costs a page fault when it is first written, 1,024 per 4 MiB
// chunk buffer). Buffers that came back are handed out first.
type pool struct {
	free  chan []byte
	alloc func() []byte
	mu    sync.Mutex
	made  int
}

func newPool(max int, alloc func() []byte) *pool {
	return &pool{free: make(chan []byte, max), alloc: alloc}
}

// get returns a buffer that came back, else a new one while fewer than the pool's
// maximum exist, else waits for one to come back.
func (p *pool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	p.mu.Lock()
	if p.made < cap(p.free) {
		p.made++
		p.mu.Unlock()
		return p.alloc(), nil
	}
	p.mu.Unlock()
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put gives b back; nil (a chunk that took no buffer) is ignored. It never blocks: no
// more buffers exist than free holds.
func (p *pool) put(b []byte) {
	if b != nil {
		p.free <- b
	}
}

// allocated is how many buffers the pool has made so far.
func (p *pool) allocated() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made
}
