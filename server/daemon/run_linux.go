package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/rpi-deploy/rpi-deploy/dashboard"
	"github.com/rpi-deploy/rpi-deploy/server/api"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/connlimit"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/events/pgrelay"
	"github.com/rpi-deploy/rpi-deploy/server/netboot"
	"github.com/rpi-deploy/rpi-deploy/server/store"
	"github.com/rpi-deploy/rpi-deploy/server/swarm"
)

// Daemon is a running server: every listener is open and served.
type Daemon struct {
	// URL is the management listener's base URL (http:// or https://, with the port
	// the kernel chose for a ":0" listen address).
	URL string
	// AgentURLs are the --agent-listen listeners' base URLs, in order.
	AgentURLs []string
	// Fingerprint is the SHA-256 of the management listener's TLS certificate; ""
	// without TLS.
	Fingerprint string

	g     *errgroup.Group
	store *store.Store
	svc   *domain.Service
}

// Run is Start, then Wait: it serves until ctx ends.
func Run(ctx context.Context, opt Options) error {
	d, err := Start(ctx, opt)
	if err != nil {
		return err
	}
	return d.Wait()
}

// Start opens the store (recovering what a crash left), builds the parts, opens
// every listener (HTTP, agent, DHCP, TFTP) and serves them in goroutines until ctx
// ends. When it returns without error the listeners accept connections. Wait for
// the end with Wait.
func Start(ctx context.Context, opt Options) (d *Daemon, err error) {
	cfg := opt.Config
	stderr := opt.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	level := new(slog.LevelVar)
	level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	st, err := store.OpenDB(ctx, store.Config{Dir: cfg.Data, URL: cfg.DB})
	if err != nil {
		return nil, err
	}
	var lns []listener
	defer func() {
		if err != nil {
			for _, l := range lns {
				l.ln.Close()
			}
			st.Close()
		}
	}()
	bus, relay, err := newBus(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	d, lns, err = listen(cfg, stderr)
	if err != nil {
		return nil, err
	}
	svc, err := startService(ctx, st, bus, cfg, lns[0], log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			svc.Close()
		}
	}()
	if cfg.Token == "" {
		log.Warn("no admin token (--token, RPI_DEPLOY_TOKEN or config): the management API accepts user sessions only")
	}
	streamsDone := make(chan struct{}) // closed at shutdown: ends event streams
	lim := connlimit.New(connlimit.Options{Max: cfg.HTTPMaxConns, PerSource: cfg.HTTPMaxConnsPerSource, Logger: log})
	swarms := newSwarm(cfg, log)
	prepareSwarms(ctx, swarms, svc, cfg.P2P == "on", log)
	engine := newEngine(svc, cfg, opt.Version, streamsDone, lim, swarms, relay, log)

	d.store, d.svc = st, svc
	nb, err := startNetboot(ctx, opt.Netboot, st, svc, cfg.Site, lns, log)
	if err != nil {
		return nil, err
	}

	g, ctx := errgroup.WithContext(ctx)
	d.g = g
	g.Go(func() error { return nb.Serve(ctx) })
	if relay != nil {
		g.Go(func() error { return relay.Serve(ctx) })
	}
	g.Go(func() error { return servePprof(ctx, cfg.PprofListen, stderr) })
	g.Go(func() error {
		return abandonSilent(ctx, svc, time.Duration(cfg.AbandonAfter), min(time.Minute, time.Duration(cfg.ClaimTimeout)/2), log)
	})
	for _, l := range lns {
		serveHTTP(ctx, g, l, newHTTPServer(cfg, engine, l.base(), lim, log), lim)
	}
	g.Go(func() error {
		<-ctx.Done()
		close(streamsDone)
		return nil
	})
	log.Info("rpi-deployd started", "version", opt.Version, "data", cfg.Data, "db", st.Where(), "max_streams", cfg.MaxStreams,
		"site", svc.Options().Site, "peer_url", svc.Options().PeerURL)
	log.Info("netboot", nb.Describe()...)
	fmt.Fprintf(stderr, "%s%s\n", LineListening, d.URL)
	return d, nil
}

// startNetboot starts DHCP and TFTP (server/netboot): after the HTTP listeners,
// whose port the agent URL carries (the agent-only listener's, when there is one).
func startNetboot(ctx context.Context, c netboot.Config, st *store.Store, svc *domain.Service, site string, lns []listener, log *slog.Logger) (*netboot.Services, error) {
	agentLn := lns[0].ln
	if len(lns) > 1 {
		agentLn = lns[1].ln
	}
	return netboot.Start(ctx, c, netboot.Deps{Store: st, Site: site, Boards: svc, Logger: log,
		HTTPPort: agentLn.Addr().(*net.TCPAddr).Port})
}

// listener is one HTTP listener: the management one (which also answers agents
// unless --agent-listen is set) or an agent-only one.
type listener struct {
	ln    net.Listener
	agent bool
	tls   *tls.Config // nil: plain HTTP
}

// base is the context the listener's requests start from: agent listeners mark
// theirs so that the API answers only agent routes there.
func (l listener) base() context.Context {
	if l.agent {
		return api.AgentContext(context.Background())
	}
	return context.Background()
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

// newService is the domain with the configuration's limits and timings, publishing
// on bus.
func newService(st *store.Store, bus *events.Bus, cfg config.Config, log *slog.Logger) *domain.Service {
	return domain.New(st, bus, domain.Options{DataDir: cfg.Data, Site: cfg.Site, MaxStreams: cfg.MaxStreams,
		StaleAfter: time.Duration(cfg.StaleAfter), RetryAfter: time.Duration(cfg.RetryAfter), After: cfg.After, Logger: log,
		DiskReserve: cfg.DiskReserve,
		ClaimWindow: time.Duration(cfg.ClaimWindow), ClaimTimeout: time.Duration(cfg.ClaimTimeout), PeerURL: cfg.PeerURL,
		MaxOpenPerSource: cfg.MaxOpenPerSource, NewSerialsPerMinute: cfg.NewSerialsPerMinute,
		EventsPerBoard: cfg.EventsPerBoard, OverLimitDelay: time.Duration(cfg.OverLimitDelay), ForgetBoardsAfter: time.Duration(cfg.ForgetBoardsAfter)})
}

// newEngine is the HTTP API with the dashboard mounted on it.
func newEngine(svc *domain.Service, cfg config.Config, version string, streamsDone <-chan struct{}, lim *connlimit.Limiter, swarms *swarm.Registry, relay *pgrelay.Relay, log *slog.Logger) *gin.Engine {
	var a *api.API
	engine, a := api.New(svc, api.Options{Token: cfg.Token, Logger: log, AgentOnlyListeners: len(cfg.AgentListen) > 0,
		Version: version, Shutdown: streamsDone, AgentListenersOnlyAgent: cfg.TLSMode() != "off",
		MaxEventStreams: cfg.MaxEventStreams, Conns: lim, Swarm: swarms, P2P: cfg.P2P == "on", EventRelay: relayStats(relay),
		ReadTimeout: time.Duration(cfg.HTTPReadTimeout), WriteTimeout: time.Duration(cfg.HTTPWriteTimeout), AgentPerSource: cfg.AgentRequestsPerSource,
		Extra: []func(*gin.Engine, gin.HandlerFunc){func(r *gin.Engine, _ gin.HandlerFunc) {
			dashboard.Register(r, dashboard.Config{Authenticated: func(r *http.Request) bool { return a.Authenticated(r) },
				Version: version})
		}}})
	return engine
}

// listen opens the management listener (with TLS when configured) and the
// --agent-listen ones, printing each agent URL; on error it closes what it opened.
func listen(cfg config.Config, stderr io.Writer) (d *Daemon, lns []listener, err error) {
	defer func() {
		if err != nil {
			for _, l := range lns {
				l.ln.Close()
			}
		}
	}()
	main, err := listenTCP(cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %q: %w", cfg.Listen, err)
	}
	tc, fp, err := serveTLS(cfg, stderr)
	if err != nil {
		main.Close()
		return nil, nil, err
	}
	d = &Daemon{URL: "http://" + main.Addr().String(), Fingerprint: fp}
	if tc != nil {
		d.URL = "https://" + main.Addr().String()
	}
	lns = append(lns, listener{ln: main, agent: len(cfg.AgentListen) == 0, tls: tc})
	for _, addr := range cfg.AgentListen {
		ln, err := listenTCP(addr)
		if err != nil {
			return nil, lns, fmt.Errorf("listen (agent) %q: %w", addr, err)
		}
		lns = append(lns, listener{ln: ln, agent: true})
		u := "http://" + ln.Addr().String()
		d.AgentURLs = append(d.AgentURLs, u)
		fmt.Fprintf(stderr, "%s%s\n", LineAgentAPI, u)
	}
	return d, lns, nil
}

// listenTCP opens an HTTP listener whose connections get no TCP keep-alive probes.
// Go turns them on for every accepted connection unless told otherwise (four
// setsockopt calls each, 3 % of a hello's CPU), and they would find nothing our
// deadlines do not: a connection between requests is closed after
// http_idle_timeout, a request must arrive within http_read_header_timeout and
// http_read_timeout (a request waiting for its turn is cancelled then too), a
// response is cut once a write stalls for http_write_timeout, and the event
// stream's heartbeat keeps data unacknowledged toward a peer that vanished, where
// probes are never sent anyway.
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// serveHTTP serves one listener in g until ctx ends, then shuts it down (10 s for
// requests in flight, then closes).
func serveHTTP(ctx context.Context, g *errgroup.Group, l listener, srv *http.Server, lim *connlimit.Limiter) {
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

// Wait waits until the server has stopped (its context ended, or a listener
// failed): every HTTP connection shut down, the DHCP and TFTP sockets and the store
// closed. It returns the first error that stopped it.
func (d *Daemon) Wait() error {
	err := d.g.Wait()
	d.svc.Close()
	if cerr := d.store.Close(); err == nil {
		err = cerr
	}
	return err
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
