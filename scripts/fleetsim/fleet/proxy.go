package fleet

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
)

// CutProxy is a TCP proxy between one board and the server that cuts connections
// the way a flaky network does: at a random point of the server's answer, the board
// side sees a reset. It stands for a bad cable or a switch port that flaps.
//
// Each connection gets a cut point drawn uniformly from [MinCut, MaxCut) bytes of
// server-to-board traffic; a connection that ends before its cut point passes
// untouched. At most MaxCuts connections are cut, after that the proxy passes
// everything, so an agent that resumes correctly must finish.
type CutProxy struct {
	Upstream string // host:port of the server
	MinCut   int64  // fewest bytes before a cut (default 16 KiB)
	MaxCut   int64  // most bytes before a cut (default 64 MiB)
	MaxCuts  int    // connections to cut at most (default 3)

	ln    net.Listener
	rng   *rand.Rand
	mu    sync.Mutex // guards rng
	cuts  atomic.Int64
	bytes atomic.Int64 // server-to-board bytes passed
	wg    sync.WaitGroup
}

// Listen opens the proxy's listening socket on 127.0.0.1 and returns its address.
// seed makes the cut points reproducible.
func (p *CutProxy) Listen(seed uint64) (string, error) {
	if p.MinCut <= 0 {
		p.MinCut = 16 << 10
	}
	if p.MaxCut <= p.MinCut {
		p.MaxCut = max(p.MinCut+1, 64<<20)
	}
	if p.MaxCuts <= 0 {
		p.MaxCuts = 3
	}
	p.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	p.ln = ln
	return ln.Addr().String(), nil
}

// Cuts returns how many connections the proxy has cut so far.
func (p *CutProxy) Cuts() int { return int(p.cuts.Load()) }

// Bytes returns how many bytes went from the server to the board.
func (p *CutProxy) Bytes() int64 { return p.bytes.Load() }

// Serve accepts connections until ctx ends, then closes the listener and every
// connection and returns nil.
func (p *CutProxy) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		p.ln.Close()
	}()
	defer p.wg.Wait()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(ctx, c.(*net.TCPConn))
		}()
	}
}

// cutPoint returns the byte count after which the next connection is cut, or -1.
func (p *CutProxy) cutPoint() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cuts.Load() >= int64(p.MaxCuts) {
		return -1
	}
	return p.MinCut + p.rng.Int64N(p.MaxCut-p.MinCut)
}

// claimCut takes one of the MaxCuts cuts; false when none is left.
func (p *CutProxy) claimCut() bool {
	if p.cuts.Add(1) <= int64(p.MaxCuts) {
		return true
	}
	p.cuts.Add(-1)
	return false
}

func (p *CutProxy) handle(ctx context.Context, down *net.TCPConn) {
	defer down.Close()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Upstream)
	if err != nil {
		return
	}
	up := c.(*net.TCPConn)
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { down.Close(); up.Close() })
	defer stop()

	cut := p.cutPoint()
	done := make(chan struct{})
	go func() { // board → server: requests, passed whole
		defer close(done)
		io.Copy(up, down)
		up.CloseWrite()
	}()
	// server → board, counted and cut
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, rerr := up.Read(buf)
		if m > 0 && cut >= 0 && n+int64(m) >= cut && p.claimCut() {
			k := cut - n
			down.Write(buf[:k])
			p.bytes.Add(k)
			down.SetLinger(0) // the board sees a reset, not a clean end
			return
		}
		if m > 0 {
			if _, werr := down.Write(buf[:m]); werr != nil {
				return
			}
			n += int64(m)
			p.bytes.Add(int64(m))
		}
		if rerr != nil {
			down.CloseWrite()
			<-done
			return
		}
	}
}
