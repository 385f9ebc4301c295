// Package daemon is `rpi-deployd serve`: it wires the configuration, the SQLite
// store, the domain layer, the HTTP API and dashboard, and the DHCP and TFTP servers
// together and runs them until a context ends. The command is a thin wrapper around
// Parse and Run; tests start the whole server in their own process with Start, so
// the race detector sees the handlers and the domain under load.
//
//	opt, err := daemon.Parse(args, os.Getenv, os.Stderr)
//	d, err := daemon.Start(ctx, opt) // listening when it returns; d.URL is the address
//	err = d.Wait()                   // after ctx ends: every listener shut down, store closed
//
// Nothing here reads or writes process-wide state (no signal handlers, no default
// logger, no global registries): two servers run side by side in one process.
package daemon

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/netboot"
)

// Options are what Start needs.
type Options struct {
	// Config is the server's configuration, defaults applied (Parse does that).
	Config config.Config
	// Netboot is the DHCP/TFTP configuration.
	Netboot netboot.Config
	// Version is reported by /healthz and the dashboard.
	Version string
	// Stderr receives the structured log and the start-up lines that scripts and
	// tests read ("rpi-deployd: listening on URL", "rpi-deployd: agent API on URL",
	// "rpi-deployd: TLS certificate sha256 fingerprint FP"). nil discards.
	Stderr io.Writer
}

// Start-up lines written to Options.Stderr, each followed by a value and a newline.
const (
	LineListening   = "rpi-deployd: listening on "
	LineAgentAPI    = "rpi-deployd: agent API on "
	LineFingerprint = "rpi-deployd: TLS certificate sha256 fingerprint "
)

// Parse builds the options of `rpi-deployd serve ARGS`: defaults < config file
// (--config) < environment (getenv) < flags. Flag errors and usage go to stderr.
func Parse(args []string, getenv func(string) string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "JSON config file (optional)")
	data := fs.String("data", "", "data directory (default "+config.DefaultData+")")
	db := fs.String("db", "", "database: a PostgreSQL `URL` (postgres://…) shared by several servers; default SQLite in the data directory (also $RPI_DEPLOY_DB)")
	listen := fs.String("listen", "", "HTTP listen address (default "+config.DefaultListen+")")
	agentListen := listFlag(fs, "agent-listen", "agent API listen address on the deployment network (repeatable, comma-separated); when set the agent API answers only there")
	token := fs.String("token", "", "admin token (default: $RPI_DEPLOY_TOKEN)")
	maxStreams := fs.Int("max-streams", 0, "deployments streaming at once before hellos get retry (default 64)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	tlsMode := fs.String("tls", "", "HTTPS on the management listener: off, self-signed (generated in DATA/tls on first start) or files (--tls-cert, --tls-key) (default off)")
	tlsCert := fs.String("tls-cert", "", "PEM `file` of the management listener's certificate chain (implies --tls files)")
	tlsKey := fs.String("tls-key", "", "PEM `file` of the certificate's key")
	p2p := fs.String("p2p", "", "peer-to-peer image distribution between boards: on or off (default off)")
	p2pSeedFor := fs.Duration("p2p-seed-for", 0, "how long a verified board keeps serving pieces to the others, at most (default 10m)")
	p2pPieceKiB := fs.Int("p2p-piece-kib", 0, "the swarm's piece length in KiB, a power of two from 16 to 16384 (default 256)")
	diskReserve := fs.Int64("disk-reserve", 0, "`bytes` of the data directory's file system that uploads leave free for the database (default 64 MiB)")
	after := fs.String("after", "", "what a board does once its card is verified: reboot, poweroff or wait (default reboot)")
	sites := addSiteFlags(fs)
	limits := deploymentFlags(fs)
	nbFlags := netboot.AddFlags(fs)
	httpFl := addHTTPFlags(fs)
	var opt Options
	if err := fs.Parse(args); err != nil {
		return opt, err
	}
	if fs.NArg() > 0 {
		return opt, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg := &opt.Config
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return opt, err
		}
		*cfg = c
	}
	nb, err := netboot.Parse(cfg.Netboot)
	if err != nil {
		return opt, err
	}
	opt.Netboot = nb.Override(nbFlags)
	cfg.FromEnv(getenv)
	for _, f := range []struct {
		v   string
		dst *string
	}{{*data, &cfg.Data}, {*db, &cfg.DB}, {*listen, &cfg.Listen}, {*token, &cfg.Token}, {*logLevel, &cfg.LogLevel}, {*after, &cfg.After},
		{*tlsMode, &cfg.TLS}, {*p2p, &cfg.P2P}, {*tlsCert, &cfg.TLSCert}, {*tlsKey, &cfg.TLSKey}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if len(*agentListen) > 0 {
		cfg.AgentListen = *agentListen
	}
	if *maxStreams > 0 {
		cfg.MaxStreams = *maxStreams
	}
	if *diskReserve > 0 {
		cfg.DiskReserve = *diskReserve
	}
	if *p2pPieceKiB > 0 {
		cfg.P2PPieceKiB = *p2pPieceKiB
	}
	if *p2pSeedFor > 0 {
		cfg.P2PSeedFor = config.Duration(*p2pSeedFor)
	}
	applyFlags(cfg, httpFl, limits, sites)
	*cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return opt, err
	}
	return opt, opt.Netboot.Validate()
}

// listFlag is a flag that may be given more than once, each a comma-separated list:
// the values in order, blanks left out.
func listFlag(fs *flag.FlagSet, name, usage string) *[]string {
	var list []string
	fs.Func(name, usage, func(s string) error {
		for _, a := range strings.Split(s, ",") {
			if a = strings.TrimSpace(a); a != "" {
				list = append(list, a)
			}
		}
		return nil
	})
	return &list
}
