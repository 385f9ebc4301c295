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

// busKeep is how many of the latest events the bus keeps: an event stream that writes
// once a second while a fleet says hello (api's streamBusyBatch; a hello and its
// result publish four to six events) falls behind it, and is reset, only when it is
// held up for about three seconds at 1000 hellos a second. 4096 held 1.1 s at the
// 600 hellos a second of scripts/bench/15-load.sh with 2000 compressed streams, and
// streams ended (891 of 2000 in a 20 s round on a loaded machine). About 1 KB an
// event.
const busKeep = 16384

// newBus is the event bus, and, when cfg.DB names a PostgreSQL database, the relay
// that links it to the other servers on that database (server/events/pgrelay); nil
// relay with SQLite, whose bus stays in-process. Before it returns, the bus holds the
// latest events of the table (if the database answers within catchUpTimeout), so
// that a client resuming at this server finds them; the caller runs the relay's
// Serve.
func newBus(ctx context.Context, cfg config.Config, log *slog.Logger) (*events.Bus, *pgrelay.Relay, error) {
	bus := events.New(busKeep, 0)
	if cfg.DB == "" {
		return bus, nil, nil
	}
	r, err := pgrelay.New(cfg.DB, bus, pgrelay.Options{Site: cfg.Site, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	if err := r.CatchUp(cctx); err != nil {
		log.Warn("event relay: could not read the latest events at start; they follow when the database answers", "err", err)
	}
	return bus, r, nil
}

// relayStats is /metrics' view of the relay (nil with SQLite: no relay metrics).
func relayStats(r *pgrelay.Relay) func() (int, int64, bool) {
	if r == nil {
		return nil
	}
	return func() (int, int64, bool) {
		s := r.Stats()
		return s.Pending, s.Dropped, s.Unreachable
	}
}
