// Package config is rpi-deployd's configuration: a typed struct whose zero values
// mean the documented defaults, read from a JSON file that operators edit once
// (serve --config FILE), then overridden by the environment and by flags.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/api"
	"github.com/rpi-deploy/rpi-deploy/server/domain"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Config is the server's configuration.
type Config struct {
	// Data is the data directory: the SQLite database and images/. Default
	// /var/lib/rpi-deployd.
	Data string `json:"data,omitempty"`
	// DB is the database: "" for SQLite in Data (rpi-deployd.db), or a PostgreSQL
	// URL (postgres://USER:PASSWORD@HOST/DB?sslmode=…, or postgresql://…) that
	// several servers may share. Also from RPI_DEPLOY_DB, which keeps a password
	// off the command line. It may hold a password: it is never logged whole.
	// Data is still the home of images, TLS and netboot files.
	DB string `json:"db,omitempty"`
	// Site is this server's site name: 1–32 lower-case letters, digits or '-'. It is
	// recorded on the boards the server sees, the deployments it runs and the events
	// it records, and keeps its DHCP leases apart from other sites' when servers share
	// one database. Default "main".
	Site string `json:"site,omitempty"`
	// Listen is the HTTP address for the management API, the dashboard, image
	// downloads and (unless AgentListen is set) the agent API. Default ":8080".
	Listen string `json:"listen,omitempty"`
	// AgentListen are extra HTTP addresses on the deployment network. When set, the
	// agent API answers only on these (images are served on all listeners). Default:
	// none, and the agent API answers on Listen.
	AgentListen []string `json:"agent_listen,omitempty"`
	// TLS is HTTPS on the management listener (Listen): "" or "off" for plain HTTP;
	// "self-signed" for a certificate generated on first start and kept in
	// DATA/tls (cert.pem, key.pem, 0600); "files" for TLSCert and TLSKey (setting
	// those alone means "files"). The agent listeners stay plain HTTP (boards in the
	// initramfs have no CA to check a certificate with; an image's integrity is its
	// manifest's SHA-256), so TLS needs AgentListen. Default off.
	TLS string `json:"tls,omitempty"`
	// TLSCert and TLSKey are PEM files of the management listener's certificate chain
	// and its key.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Token is the admin token for the management API (Authorization: Bearer).
	// Also from RPI_DEPLOY_TOKEN. No default: without a token and without users, the
	// management API refuses everything.
	Token string `json:"token,omitempty"`
	// P2P turns peer-to-peer image distribution on ("on") or off ("off", the default):
	// with it, boards of the same image fetch pieces from each other as well as from
	// the server (docs/agent.md "Peer-to-peer").
	P2P string `json:"p2p,omitempty"`
	// P2PSeedFor is how long a board whose card is verified keeps serving pieces to
	// the boards still flashing, at most. Default 10m.
	P2PSeedFor Duration `json:"p2p_seed_for,omitempty"`
	// P2PPieceKiB is the swarm's BitTorrent piece length in KiB, a power of two from
	// 16 to 16384. Default 256. Each piece the boards fetch from the server is one
	// request (with its stream bookkeeping); smaller pieces reach the other boards
	// sooner.
	P2PPieceKiB int `json:"p2p_piece_kib,omitempty"`
	// MaxStreams is how many deployments may stream at once; beyond it a hello is
	// answered "retry". Default 64.
	MaxStreams int `json:"max_streams,omitempty"`
	// RetryAfter is the delay a "retry" answer asks for. Default 10s.
	RetryAfter Duration `json:"retry_after,omitempty"`
	// StaleAfter: an open deployment silent this long no longer counts toward
	// MaxStreams. Default 15m.
	StaleAfter Duration `json:"stale_after,omitempty"`
	// AbandonAfter: an open deployment silent this long is closed as abandoned, which
	// frees its batch slot (the board keeps its name and gets a new deployment when it
	// says hello again). Default 2h.
	AbandonAfter Duration `json:"abandon_after,omitempty"`
	// ClaimWindow: a deployment whose board has not fetched its image yet holds a
	// stream slot this long after its hello. Default 2m.
	ClaimWindow Duration `json:"claim_window,omitempty"`
	// ClaimTimeout: a deployment whose board has not fetched its image this long
	// after its hello is abandoned and its pool name released. Default 10m.
	ClaimTimeout Duration `json:"claim_timeout,omitempty"`
	// MaxOpenPerSource is how many open deployments the hellos from one network
	// address may hold (a board holds one). Default 4; negative: no limit.
	MaxOpenPerSource int `json:"max_open_per_source,omitempty"`
	// NewSerialsPerMinute is how many never seen serials one network address may
	// introduce per minute. Default 120; negative: no limit.
	NewSerialsPerMinute int `json:"new_serials_per_minute,omitempty"`
	// AgentRequestsPerSource is how many agent-API requests of one network address
	// run at once; more wait their turn. Default 4; negative: no limit.
	AgentRequestsPerSource int `json:"agent_requests_per_source,omitempty"`
	// OverLimitDelay is how long the answer to a hello over a per-address limit is
	// held. Default 1s; negative: none.
	OverLimitDelay Duration `json:"over_limit_delay,omitempty"`
	// EventsPerBoard is how many history events are kept per board. Default 1000.
	EventsPerBoard int `json:"events_per_board,omitempty"`
	// ForgetBoardsAfter: a board that never got a deployment nor a name is deleted
	// after this long without a hello. Default 168h.
	ForgetBoardsAfter Duration `json:"forget_boards_after,omitempty"`
	// After is what an agent does once its card is verified: "reboot" into the new
	// system, "poweroff" (boards racked for later), or "wait" (stay up for a
	// technician). Default reboot.
	After string `json:"after,omitempty"`
	// DiskReserve is how many bytes of the data directory's file system image uploads
	// leave free for the database; an upload that would eat into it is refused (507)
	// and /healthz answers 503 while less is free. Default 64 MiB.
	DiskReserve int64 `json:"disk_reserve,omitempty"`
	// HTTPReadHeaderTimeout is how long a client may take to send a request's headers.
	// Default 10s.
	HTTPReadHeaderTimeout Duration `json:"http_read_header_timeout,omitempty"`
	// HTTPReadTimeout is how long a client may take to send a whole request, body
	// included. Image uploads (PUT /api/v1/images/NAME/data) are not cut by it: their
	// deadline moves on by HTTPReadTimeout whenever body bytes arrive. Default 1m.
	HTTPReadTimeout Duration `json:"http_read_timeout,omitempty"`
	// HTTPWriteTimeout is how long writing a response may take. Image downloads and
	// the event stream are not cut by it: their deadline moves on by HTTPWriteTimeout
	// before every chunk (1 MiB of an image, one event), so a slow reader that keeps
	// reading is served and one that stops for longer than this is cut. Default 1m.
	HTTPWriteTimeout Duration `json:"http_write_timeout,omitempty"`
	// HTTPIdleTimeout closes a keep-alive connection idle this long between requests.
	// Default 1m.
	HTTPIdleTimeout Duration `json:"http_idle_timeout,omitempty"`
	// HTTPMaxConns caps the HTTP connections of all listeners together; past it the
	// longest-idle keep-alive connection is closed, or, when none is idle, the new one
	// gets 503. Default 2048.
	HTTPMaxConns int `json:"http_max_conns,omitempty"`
	// HTTPMaxConnsPerSource caps the HTTP connections from one IP address; past it a
	// new connection gets 429. Raise it when a reverse proxy fronts the server.
	// Default 64.
	HTTPMaxConnsPerSource int `json:"http_max_conns_per_source,omitempty"`
	// MaxEventStreams caps the event streams (GET /api/v1/events) open at once; past
	// it a new one gets 503. Default 64.
	MaxEventStreams int `json:"max_event_streams,omitempty"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"log_level,omitempty"`
	// PprofListen is a loopback address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT)
	// on which Go's profiler answers (net/http/pprof under /debug/pprof/), for
	// measuring the server under load. Default "": off. Any other address is refused:
	// the profiler tells a caller everything the process holds.
	PprofListen string `json:"pprof_listen,omitempty"`
	// PeerURL is the base URL at which the other sites' servers reach this one to
	// pull the images it holds (its management listener: http:// or https://, host
	// and port as they can reach it). Default: the scheme and port of Listen with
	// this machine's host name when Listen has no host (or a wildcard one), else
	// Listen's host.
	PeerURL string `json:"peer_url,omitempty"`
	// Netboot holds the DHCP/TFTP settings (see server/dhcp, server/tftp). Kept raw
	// here so that those packages own their fields.
	Netboot json.RawMessage `json:"netboot,omitempty"`
}

// Defaults.
// NoSourceLimitsFlags are the serve flags that lift the per-address limits of the
// agent API (open deployments, new serials per minute, requests at once): for tests
// and benches whose many simulated boards all connect from one address.
var NoSourceLimitsFlags = []string{"--max-open-per-source", "-1", "--new-serials-per-minute", "-1", "--agent-requests-per-source", "-1"}

const (
	DefaultData   = "/var/lib/rpi-deployd"
	DefaultListen = ":8080"
)

// Duration is a time.Duration written as "10s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "10s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"10s\"", b)
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Load reads a JSON config file; unknown fields are an error.
func Load(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %q: %w", path, err)
	}
	return c, nil
}

// FromEnv fills fields from the environment: RPI_DEPLOY_TOKEN, RPI_DEPLOY_DATA,
// RPI_DEPLOY_DB, RPI_DEPLOY_LISTEN.
func (c *Config) FromEnv(getenv func(string) string) {
	if v := getenv("RPI_DEPLOY_DB"); v != "" {
		c.DB = v
	}
	if v := getenv("RPI_DEPLOY_TOKEN"); v != "" {
		c.Token = v
	}
	if v := getenv("RPI_DEPLOY_DATA"); v != "" {
		c.Data = v
	}
	if v := getenv("RPI_DEPLOY_LISTEN"); v != "" {
		c.Listen = v
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Data == "" {
		c.Data = DefaultData
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Site == "" {
		c.Site = domain.DefaultSite
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = domain.DefaultMaxStreams
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = Duration(domain.DefaultRetryAfter)
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = Duration(domain.DefaultStaleAfter)
	}
	if c.AbandonAfter <= 0 {
		c.AbandonAfter = Duration(2 * time.Hour)
	}
	if c.DiskReserve <= 0 {
		c.DiskReserve = domain.DefaultDiskReserve
	}
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{{&c.HTTPReadHeaderTimeout, 10 * time.Second}, {&c.HTTPReadTimeout, time.Minute},
		{&c.HTTPWriteTimeout, time.Minute}, {&c.HTTPIdleTimeout, time.Minute}} {
		if *d.v <= 0 {
			*d.v = Duration(d.def)
		}
	}
	if c.HTTPMaxConns <= 0 {
		c.HTTPMaxConns = 2048
	}
	if c.HTTPMaxConnsPerSource <= 0 {
		c.HTTPMaxConnsPerSource = 64
	}
	if c.MaxEventStreams <= 0 {
		c.MaxEventStreams = api.DefaultMaxEventStreams
	}
	if c.ClaimWindow <= 0 {
		c.ClaimWindow = Duration(domain.DefaultClaimWindow)
	}
	if c.ClaimTimeout <= 0 {
		c.ClaimTimeout = Duration(domain.DefaultClaimTimeout)
	}
	if c.MaxOpenPerSource == 0 {
		c.MaxOpenPerSource = domain.DefaultMaxOpenPerSource
	}
	if c.NewSerialsPerMinute == 0 {
		c.NewSerialsPerMinute = domain.DefaultNewSerialsPerMinute
	}
	if c.AgentRequestsPerSource == 0 {
		c.AgentRequestsPerSource = api.DefaultAgentPerSource
	}
	if c.OverLimitDelay == 0 {
		c.OverLimitDelay = Duration(domain.DefaultOverLimitDelay)
	}
	if c.EventsPerBoard <= 0 {
		c.EventsPerBoard = domain.DefaultEventsPerBoard
	}
	if c.ForgetBoardsAfter <= 0 {
		c.ForgetBoardsAfter = Duration(domain.DefaultForgetBoardsAfter)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.After == "" {
		c.After = agentapi.AfterReboot
	}
	return c
}

// Validate checks values that have no sensible fallback.
func (c Config) Validate() error {
	switch strings.ToLower(c.LogLevel) {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Site != "" {
		if err := domain.ValidSite(c.Site); err != nil {
			return err
		}
	}
	if c.DB != "" && !store.IsPostgresURL(c.DB) {
		return fmt.Errorf("db %q: want a postgres:// or postgresql:// URL, or nothing for SQLite in the data directory", store.Redact(c.DB))
	}
	switch c.P2P {
	case "", "off", "on":
	default:
		return fmt.Errorf("p2p %q: want on or off", c.P2P)
	}
	if c.P2PSeedFor < 0 {
		return fmt.Errorf("p2p_seed_for: must not be negative")
	}
	if k := c.P2PPieceKiB; k != 0 && (k < 16 || k > 16384 || k&(k-1) != 0) {
		return fmt.Errorf("p2p_piece_kib %d: want a power of two from 16 to 16384", k)
	}
	switch c.After {
	case "", "reboot", "poweroff", "wait":
	default:
		return fmt.Errorf("after %q: want reboot, poweroff or wait", c.After)
	}
	if err := checkLoopback(c.PprofListen); err != nil {
		return fmt.Errorf("pprof_listen %q: %w", c.PprofListen, err)
	}
	if c.PeerURL != "" {
		if u, err := url.Parse(c.PeerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" {
			return fmt.Errorf("peer_url %q: want http://HOST:PORT or https://HOST:PORT (a base URL, no credentials, no query)", c.PeerURL)
		}
	}
	if c.Token != "" && len(c.Token) < 16 {
		return fmt.Errorf("token: at least 16 characters")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("tls_cert and tls_key: give both or neither")
	}
	switch mode := c.TLSMode(); mode {
	case "off":
		if c.TLSCert != "" {
			return fmt.Errorf("tls \"off\" with tls_cert and tls_key: drop them or set tls \"files\"")
		}
	case "self-signed", "files":
		if mode == "self-signed" && c.TLSCert != "" {
			return fmt.Errorf("tls %q: tls_cert and tls_key are for tls \"files\"", c.TLS)
		}
		if mode == "files" && c.TLSCert == "" {
			return fmt.Errorf("tls \"files\": needs tls_cert and tls_key")
		}
		if len(c.AgentListen) == 0 {
			return fmt.Errorf("tls %q: needs agent_listen (--agent-listen): boards speak plain HTTP, so the agent API cannot share the TLS listener", mode)
		}
	default:
		return fmt.Errorf("tls %q: want off, self-signed or files", c.TLS)
	}
	return nil
}

// DefaultPeerURL is the peer URL of a server whose management listener listens on
// addr (as bound, e.g. "[::]:8080"), with TLS or not: the host of addr, or, when
// that is empty or a wildcard address, hostname.
func DefaultPeerURL(addr string, tls bool, hostname string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = hostname
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// TLSMode is the effective TLS setting: "off", "self-signed", "files", or TLS as
// given when it is none of those (Validate refuses it).
func (c Config) TLSMode() string {
	switch {
	case c.TLS == "" && c.TLSCert != "":
		return "files"
	case c.TLS == "":
		return "off"
	}
	return c.TLS
}

// checkLoopback accepts "" and HOST:PORT whose host is a loopback IP or localhost.
func checkLoopback(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("not a loopback address")
	}
	return nil
}
