package daemon

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// siteFlags place the server among those that share one database: its site, and
// where the other sites' servers reach it.
type siteFlags struct{ site, peerURL *string }

func addSiteFlags(fs *flag.FlagSet) siteFlags {
	return siteFlags{
		site: fs.String("site", "", "this server's site `name` ([a-z0-9-]{1,32}), recorded on its boards, deployments and events (default "+
			domain.DefaultSite+")"),
		peerURL: fs.String("peer-url", "", "base `URL` at which the other sites' servers reach this one to pull images "+
			"(default: the management listener's scheme and port with its host, or this machine's host name)"),
	}
}

func (f siteFlags) apply(cfg *config.Config) {
	if *f.site != "" {
		cfg.Site = *f.site
	}
	if *f.peerURL != "" {
		cfg.PeerURL = *f.peerURL
	}
}

// flagGroup is a group of flags that sets its fields of the configuration.
type flagGroup interface{ apply(*config.Config) }

// applyFlags applies each group's flags to cfg, in order.
func applyFlags(cfg *config.Config, groups ...flagGroup) {
	for _, g := range groups {
		g.apply(cfg)
	}
}

// startService builds the domain over the open store and readies it before the
// listeners serve: the uploads a crash left complete are finished (Recover); the
// site is recorded (RecordSite); the images this data directory holds are recorded
// for the other sites, and the pulls this site had begun resume (RecordSiteImages).
// mgmt is the management listener, whose address makes the default peer URL.
func startService(ctx context.Context, st *store.Store, bus *events.Bus, cfg config.Config, mgmt listener, log *slog.Logger) (*domain.Service, error) {
	if cfg.PeerURL == "" {
		host, _ := os.Hostname()
		cfg.PeerURL = config.DefaultPeerURL(mgmt.ln.Addr().String(), mgmt.tls != nil, host)
	}
	svc := newService(st, bus, cfg, log)
	if err := svc.Recover(ctx); err != nil {
		svc.Close()
		return nil, err
	}
	if err := svc.RecordSite(ctx); err != nil {
		svc.Close()
		return nil, err
	}
	if err := svc.RecordSiteImages(ctx); err != nil {
		svc.Close()
		return nil, err
	}
	return svc, nil
}
