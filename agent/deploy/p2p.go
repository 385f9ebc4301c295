package deploy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/rpi-deploy/rpi-deploy/agent/flash"
	"github.com/rpi-deploy/rpi-deploy/agent/swarm"
)

// P2P tunes the board's part in its image's swarm (docs/agent.md "Peer-to-peer").
// The zero value takes part whenever the server invites the board.
type P2P struct {
	// Off fetches over HTTP alone even when the server invites the board.
	Off bool
	// Keep, Readahead, Listen: swarm.Config's (0/"": its defaults).
	Keep, Readahead int64
	Listen          string
	// CorruptUploads: tests only (swarm.Config.CorruptUploads).
	CorruptUploads bool
}

// swarmSource reads the image from the swarm and, once the swarm stalls (no piece
// for swarm.Config.Stall: no peer and no web seed answer), from the server over HTTP
// alone for the rest of the run. Either way the flasher checks every chunk.
type swarmSource struct {
	sw      *swarm.Swarm
	http    *flash.HTTPSource
	log     *slog.Logger
	useHTTP atomic.Bool
}

func (s *swarmSource) Open(ctx context.Context, off int64) (io.ReadCloser, error) {
	if s.useHTTP.Load() {
		return s.http.Open(ctx, off)
	}
	rc, err := s.sw.Open(ctx, off)
	if err != nil {
		return nil, err
	}
	return &swarmBody{ReadCloser: rc, s: s}, nil
}

// Fetched is every compressed byte received, from the swarm and over plain HTTP.
func (s *swarmSource) Fetched() int64 { return s.sw.Fetched() + s.http.Fetched() }

type swarmBody struct {
	io.ReadCloser
	s *swarmSource
}

func (b *swarmBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, swarm.ErrStalled) && !b.s.useHTTP.Swap(true) {
		b.s.log.Warn("swarm stalled; fetching the rest over HTTP alone", "err", err)
	}
	return n, err
}

// joinSwarm joins the image's swarm when the server invited the board and P2P is not
// off; nil (HTTP alone) when it was not invited or joining failed.
func (r *run) joinSwarm(ctx context.Context, url string, compressed int64) *swarm.Swarm {
	inv := r.dep.Image.Swarm
	if inv == nil || r.cfg.P2P.Off || r.cfg.Deployment != nil {
		return nil
	}
	c := *inv
	var err error
	for _, u := range []*string{&c.TorrentURL, &c.AnnounceURL} {
		if *u, err = r.cfg.Client.Resolve(*u); err != nil {
			r.log.Warn("swarm invitation unusable; HTTP alone", "err", err)
			return nil
		}
	}
	hc := &http.Client{} // no overall timeout: web seed answers may take long; swarm bounds the rest
	if r.cfg.Client.HTTP != nil {
		hc.Transport = r.cfg.Client.HTTP.Transport
	}
	sw, err := swarm.Join(ctx, swarm.Config{Swarm: c, Secret: r.dep.Secret, WebSeed: url, CompressedSize: compressed,
		HTTP: hc, Keep: r.cfg.P2P.Keep, Readahead: r.cfg.P2P.Readahead, Listen: r.cfg.P2P.Listen, CorruptUploads: r.cfg.P2P.CorruptUploads, Log: r.log})
	if err != nil {
		r.log.Warn("could not join the swarm; HTTP alone", "err", err)
		return nil
	}
	r.sw = sw
	r.say("joined the swarm of %s on port %d", r.dep.Image.Name, sw.Port())
	return sw
}
