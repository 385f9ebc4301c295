package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/events/pgrelay"
)

// catchUpTimeout bounds the first read of the shared event table at start.
const catchUpTimeout = 10 * time.Second

// newRelay links bus to the other servers on the same PostgreSQL database
// (server/events/pgrelay) when cfg.DB names one; nil with SQLite, whose bus stays
// in-process. Before it returns, the bus holds the latest events of the table (if the
// database answers within catchUpTimeout), so that a client resuming at this server
// finds them; the caller runs Serve.
func newRelay(ctx context.Context, cfg config.Config, bus *events.Bus, log *slog.Logger) (*pgrelay.Relay, error) {
	if cfg.DB == "" {
		return nil, nil
	}
	r, err := pgrelay.New(cfg.DB, bus, pgrelay.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	if err := r.CatchUp(cctx); err != nil {
		log.Warn("event relay: could not read the latest events at start; they follow when the database answers", "err", err)
	}
	return r, nil
}
