package swarm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/rpi-deploy/rpi-deploy/agent/flash"
)

// Fallback is a flash.Source that reads the image from the swarm and, once the swarm
// stalls (no piece for Config.Stall: no peer and no web seed answer), from the server
// over plain HTTP for the rest of the run. Either way the flasher checks every chunk.
type Fallback struct {
	Swarm *Swarm
	HTTP  *flash.HTTPSource
	Log   *slog.Logger // nil: discard

	useHTTP atomic.Bool
}

// Open implements flash.Source.
func (f *Fallback) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	if f.useHTTP.Load() {
		return f.HTTP.Open(ctx, off)
	}
	rc, err := f.Swarm.Open(ctx, off)
	if err != nil {
		return nil, err
	}
	return &fallbackBody{ReadCloser: rc, f: f}, nil
}

// Fetched is every compressed byte received, from the swarm and over plain HTTP.
func (f *Fallback) Fetched() int64 { return f.Swarm.Fetched() + f.HTTP.Fetched() }

// OverHTTP reports whether the swarm stalled and the rest comes over plain HTTP.
func (f *Fallback) OverHTTP() bool { return f.useHTTP.Load() }

type fallbackBody struct {
	io.ReadCloser
	f *Fallback
}

func (b *fallbackBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, ErrStalled) && !b.f.useHTTP.Swap(true) && b.f.Log != nil {
		b.f.Log.Warn("swarm stalled; fetching the rest over HTTP alone", "err", err)
	}
	return n, err
}
