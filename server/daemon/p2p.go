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

// newSwarm is the swarm registry. It is there whatever cfg.P2P says: an image or a
// batch may turn P2P on for its boards while the server's default is off.
func newSwarm(cfg config.Config, log *slog.Logger) *swarm.Registry {
	return swarm.New(swarm.Options{SeedFor: time.Duration(cfg.P2PSeedFor), PieceLength: int64(cfg.P2PPieceKiB) << 10,
		Log: log.With("part", "swarm")})
}

// prepareSwarms starts the piece hashes of every ready image whose mode is on (or
// inherits def, rpi-deployd --p2p) in the background, so that the first boards find
// their swarm ready. Others are prepared on their first hello that needs them.
func prepareSwarms(ctx context.Context, reg *swarm.Registry, svc *domain.Service, def bool, log *slog.Logger) {
	imgs, err := svc.Images(ctx)
	if err != nil {
		log.Warn("swarm: list images", "err", err)
		return
	}
	for _, im := range imgs {
		if im.State == mgmtapi.ImageReady && (im.P2P == "on" || (im.P2P != "off" && def)) {
			reg.Prepare(im.Name, svc.ImageFile(im.Name))
		}
	}
}
