package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/swarm"
)

// newSwarm is the swarm registry when cfg turns P2P on, else nil (HTTP only).
func newSwarm(cfg config.Config, log *slog.Logger) *swarm.Registry {
	if cfg.P2P != "on" {
		return nil
	}
	return swarm.New(swarm.Options{SeedFor: time.Duration(cfg.P2PSeedFor), Log: log.With("part", "swarm")})
}

// prepareSwarms starts the piece hashes of every ready image in the background, so
// that the first boards find their swarm ready.
func prepareSwarms(ctx context.Context, reg *swarm.Registry, svc *domain.Service, log *slog.Logger) {
	if reg == nil {
		return
	}
	imgs, err := svc.Images(ctx)
	if err != nil {
		log.Warn("swarm: list images", "err", err)
		return
	}
	for _, im := range imgs {
		if im.State == mgmtapi.ImageReady {
			reg.Prepare(im.Name, svc.ImageFile(im.Name))
		}
	}
}
