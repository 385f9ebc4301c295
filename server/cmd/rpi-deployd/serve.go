package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/rpi-deploy/rpi-deploy/dashboard"
	"github.com/rpi-deploy/rpi-deploy/server/api"
	"github.com/rpi-deploy/rpi-deploy/server/cli"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/connlimit"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/netboot"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// serve runs the server until ctx ends: parse the configuration, open the store,
// build the parts, serve every listener, shut down in one place.
func serve(ctx context.Context, args []string, env cli.Env) error {
	cfg, nbCfg, err := serveConfig(args, env)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

	st, err := store.Open(ctx, cfg.Data)
	if err != nil {
		return err
	}
	defer st.Close()
	bus := events.New(0, 0)
	svc := domain.New(st, bus, domain.Options{DataDir: cfg.Data, MaxStreams: cfg.MaxStreams,
		StaleAfter: time.Duration(cfg.StaleAfter), RetryAfter: time.Duration(cfg.RetryAfter), After: cfg.After, Logger: log,
		DiskReserve: cfg.DiskReserve,
		ClaimWindow: time.Duration(cfg.ClaimWindow), ClaimTimeout: time.Duration(cfg.ClaimTimeout),
		MaxOpenPerSource: cfg.MaxOpenPerSource, NewSerialsPerMinute: cfg.NewSerialsPerMinute,
		EventsPerBoard: cfg.EventsPerBoard, OverLimitDelay: time.Duration(cfg.OverLimitDelay), ForgetBoardsAfter: time.Duration(cfg.ForgetBoardsAfter)})
	if err := svc.Recover(ctx); err != nil {
		return err
	}
	if cfg.Token == "" {
		log.Warn("no admin token (--token, RPI_DEPLOY_TOKEN or config): the management API accepts user sessions only")
	}

	streamsDone := make(chan struct{}) // closed at shutdown: ends event streams
	lim := connlimit.New(connlimit.Options{Max: cfg.HTTPMaxConns, PerSource: cfg.HTTPMaxConnsPerSource, Logger: log})
	var a *api.API
	engine, a := api.New(svc, api.Options{Token: cfg.Token, Logger: log, AgentOnlyListeners: len(cfg.AgentListen) > 0,
		Version: env.Version, Shutdown: streamsDone, AgentListenersOnlyAgent: cfg.TLSMode() != "off",
		MaxEventStreams: cfg.MaxEventStreams, Conns: lim,
		ReadTimeout: time.Duration(cfg.HTTPReadTimeout), WriteTimeout: time.Duration(cfg.HTTPWriteTimeout), AgentPerSource: cfg.AgentRequestsPerSource,
		Extra: []func(*gin.Engine, gin.HandlerFunc){func(r *gin.Engine, _ gin.HandlerFunc) {
			dashboard.Register(r, dashboard.Config{Authenticated: func(r *http.Request) bool { return a.Authenticated(r) },
				Version: env.Version})
		}}})

	type listener struct {
		ln    net.Listener
		agent bool
		tls   *tls.Config // nil: plain HTTP
	}
	var lns []listener
	closeAll := func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}
	main, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", cfg.Listen, err)
	}
	scheme := "http"
	tc, err := serveTLS(cfg, env)
	if err != nil {
		main.Close()
		return err
	} else if tc != nil {
		scheme = "https"
	}
	lns = append(lns, listener{ln: main, agent: len(cfg.AgentListen) == 0, tls: tc})
	for _, addr := range cfg.AgentListen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen (agent) %q: %w", addr, err)
		}
		lns = append(lns, listener{ln: ln, agent: true})
		env.Errorf("rpi-deployd: agent API on http://%s\n", ln.Addr().String())
	}

	// DHCP and TFTP (server/netboot): after the HTTP listeners, whose port the agent
	// URL carries.
	agentLn := main
	if len(lns) > 1 {
		agentLn = lns[1].ln
	}
	nb, err := netboot.Start(ctx, nbCfg, netboot.Deps{Store: st, Boards: svc, Logger: log,
		HTTPPort: agentLn.Addr().(*net.TCPAddr).Port})
	if err != nil {
		closeAll()
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return nb.Serve(ctx) })
	g.Go(func() error { return servePprof(ctx, cfg.PprofListen, env.Errorf) })
	g.Go(func() error {
		return abandonSilent(ctx, svc, time.Duration(cfg.AbandonAfter), min(time.Minute, time.Duration(cfg.ClaimTimeout)/2), log)
	})
	for _, l := range lns {
		base := context.Background()
		if l.agent {
			base = api.AgentContext(base)
		}
		srv := newHTTPServer(cfg, engine, base, lim, log)
		g.Go(func() error {
			// The limiter counts TCP connections; TLS (management listener) wraps it.
			ln := lim.Listen(l.ln)
			if l.tls != nil {
				ln = tls.NewListener(ln, l.tls)
			}
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", l.ln.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			return nil
		})
	}
	g.Go(func() error {
		<-ctx.Done()
		close(streamsDone)
		return nil
	})
	log.Info("rpi-deployd started", "version", env.Version, "data", cfg.Data, "db", st.Path(), "max_streams", cfg.MaxStreams)
	log.Info("netboot", nb.Describe()...)
	env.Errorf("rpi-deployd: listening on %s://%s\n", scheme, main.Addr().String())
	return g.Wait()
}

// serveConfig builds the configuration: defaults < config file < environment < flags.
func serveConfig(args []string, env cli.Env) (config.Config, netboot.Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "JSON config file (optional)")
	data := fs.String("data", "", "data directory (default "+config.DefaultData+")")
	listen := fs.String("listen", "", "HTTP listen address (default "+config.DefaultListen+")")
	var agentListen []string
	fs.Func("agent-listen", "agent API listen address on the deployment network (repeatable, comma-separated); when set the agent API answers only there",
		func(s string) error {
			for _, a := range strings.Split(s, ",") {
				if a = strings.TrimSpace(a); a != "" {
					agentListen = append(agentListen, a)
				}
			}
			return nil
		})
	token := fs.String("token", "", "admin token (default: $RPI_DEPLOY_TOKEN)")
	maxStreams := fs.Int("max-streams", 0, "deployments streaming at once before hellos get retry (default 64)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	tlsMode := fs.String("tls", "", "HTTPS on the management listener: off, self-signed (generated in DATA/tls on first start) or files (--tls-cert, --tls-key) (default off)")
	tlsCert := fs.String("tls-cert", "", "PEM `file` of the management listener's certificate chain (implies --tls files)")
	tlsKey := fs.String("tls-key", "", "PEM `file` of the certificate's key")
	diskReserve := fs.Int64("disk-reserve", 0, "`bytes` of the data directory's file system that uploads leave free for the database (default 64 MiB)")
	after := fs.String("after", "", "what a board does once its card is verified: reboot, poweroff or wait (default reboot)")
	limits := deploymentFlags(fs)
	nbFlags := netboot.AddFlags(fs)
	httpFl := addHTTPFlags(fs)
	var nb netboot.Config
	if err := fs.Parse(args); err != nil {
		return config.Config{}, nb, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, nb, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	var cfg config.Config
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return cfg, nb, err
		}
		cfg = c
	}
	nb, err := netboot.Parse(cfg.Netboot)
	if err != nil {
		return cfg, nb, err
	}
	nb = nb.Override(nbFlags)
	cfg.FromEnv(env.Getenv)
	for _, f := range []struct {
		v   string
		dst *string
	}{{*data, &cfg.Data}, {*listen, &cfg.Listen}, {*token, &cfg.Token}, {*logLevel, &cfg.LogLevel}, {*after, &cfg.After},
		{*tlsMode, &cfg.TLS}, {*tlsCert, &cfg.TLSCert}, {*tlsKey, &cfg.TLSKey}} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	if len(agentListen) > 0 {
		cfg.AgentListen = agentListen
	}
	if *maxStreams > 0 {
		cfg.MaxStreams = *maxStreams
	}
	if *diskReserve > 0 {
		cfg.DiskReserve = *diskReserve
	}
	httpFl.apply(&cfg)
	limits.apply(&cfg)
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, nb, err
	}
	return cfg, nb, nb.Validate()
}

// abandonSilent closes deployments whose boards went silent or never fetched their
// image, and applies retention, every interval.
func abandonSilent(ctx context.Context, svc *domain.Service, silence, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := svc.AbandonSilent(ctx, silence); err != nil && ctx.Err() == nil {
			log.Error("abandon silent deployments", "err", err)
		}
		if _, err := svc.ExpireClaims(ctx); err != nil && ctx.Err() == nil {
			log.Error("expire claims", "err", err)
		}
		if _, err := svc.Purge(ctx); err != nil && ctx.Err() == nil {
			log.Error("retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
