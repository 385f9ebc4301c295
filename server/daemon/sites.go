package daemon

import (
	"flag"

	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
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
