package daemon

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/api"
	"github.com/rpi-deploy/rpi-deploy/server/config"
	"github.com/rpi-deploy/rpi-deploy/server/connlimit"
)

// httpFlags are the serve flags for HTTP timeouts and limits (config.Config's HTTP* fields).
type httpFlags struct {
	readHeader, read, write, idle time.Duration
	maxConns, perSource, streams  int
	pprof                         string
}

func addHTTPFlags(fs *flag.FlagSet) *httpFlags {
	f := &httpFlags{}
	fs.DurationVar(&f.readHeader, "http-read-header-timeout", 0, "time a client may take to send request headers (default 10s)")
	fs.DurationVar(&f.read, "http-read-timeout", 0, "time a client may take to send a request; uploads: without any body byte (default 1m)")
	fs.DurationVar(&f.write, "http-write-timeout", 0, "time a response may take; image downloads and event streams: per 1 MiB or event (default 1m)")
	fs.DurationVar(&f.idle, "http-idle-timeout", 0, "keep-alive connections idle this long are closed (default 1m)")
	fs.IntVar(&f.maxConns, "http-max-conns", 0, "HTTP connections of all listeners together (default 2048)")
	fs.IntVar(&f.perSource, "http-max-conns-per-source", 0, "HTTP connections from one IP address (default 64)")
	fs.IntVar(&f.streams, "max-event-streams", 0, "event streams (GET /api/v1/events) open at once (default 64)")
	fs.StringVar(&f.pprof, "pprof", "", "loopback `address` (127.0.0.1:PORT) to serve Go's profiler on, /debug/pprof/ (default off)")
	return f
}

// apply sets the fields of c whose flags were given.
func (f *httpFlags) apply(c *config.Config) {
	if f.pprof != "" {
		c.PprofListen = f.pprof
	}
	for _, d := range []struct {
		v   time.Duration
		dst *config.Duration
	}{{f.readHeader, &c.HTTPReadHeaderTimeout}, {f.read, &c.HTTPReadTimeout}, {f.write, &c.HTTPWriteTimeout}, {f.idle, &c.HTTPIdleTimeout}} {
		if d.v > 0 {
			*d.dst = config.Duration(d.v)
		}
	}
	for _, n := range []struct {
		v   int
		dst *int
	}{{f.maxConns, &c.HTTPMaxConns}, {f.perSource, &c.HTTPMaxConnsPerSource}, {f.streams, &c.MaxEventStreams}} {
		if n.v > 0 {
			*n.dst = n.v
		}
	}
}

// newHTTPServer is the http.Server of one listener, with cfg's timeouts and the
// connection limiter's state hook (listeners are wrapped with lim.Listen).
func newHTTPServer(cfg config.Config, h http.Handler, base context.Context, lim *connlimit.Limiter, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h,
		ReadHeaderTimeout: time.Duration(cfg.HTTPReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.HTTPReadTimeout),
		WriteTimeout:      time.Duration(cfg.HTTPWriteTimeout),
		IdleTimeout:       time.Duration(cfg.HTTPIdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ConnState:         lim.ConnState,
		ConnContext:       api.ConnContext,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
}
