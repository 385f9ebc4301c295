package deploy

import (
	"context"
	"net/http"

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
	// Trace logs every piece and every wait of the flasher for one
	// (swarm.Config.Trace).
	Trace bool
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
		HTTP: hc, Keep: r.cfg.P2P.Keep, Readahead: r.cfg.P2P.Readahead, Listen: r.cfg.P2P.Listen, CorruptUploads: r.cfg.P2P.CorruptUploads,
		Trace: r.cfg.P2P.Trace, Log: r.log})
	if err != nil {
		r.log.Warn("could not join the swarm; HTTP alone", "err", err)
		return nil
	}
	r.sw = sw
	r.say("joined the swarm of %s on port %d", r.dep.Image.Name, sw.Port())
	return sw
}
