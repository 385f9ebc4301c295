// Package domain is rpi-deployd's one layer of rules: hostname allocation, batches,
// deployments, boards, images, venues, products, pools, users and the audit log. The
// agent API, the management API, the CLI (through the API) and the dashboard (through
// the event stream) all go through it. Every change is written to the store in one
// transaction and then published on the event bus.
package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Sentinel errors; the API maps them to HTTP status codes.
var (
	ErrInvalid  = store.ErrInvalid                    // 400
	ErrNotFound = store.ErrNotFound                   // 404
	ErrConflict = store.ErrConflict                   // 409
	ErrAuth     = errors.New("authentication failed") // 401
	// ErrUnavailable: the database (PostgreSQL) cannot be reached; 503 with
	// Retry-After, and nothing was changed.
	ErrUnavailable = store.ErrUnavailable
)

// FieldError is bad input in one field. It wraps ErrInvalid.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Defaults of Options, the one place they are set: server/config fills its zero
// fields from these too.
const (
	DefaultMaxStreams          = 64
	DefaultStaleAfter          = 15 * time.Minute
	DefaultRetryAfter          = 10 * time.Second
	DefaultClaimWindow         = 2 * time.Minute
	DefaultClaimTimeout        = 10 * time.Minute
	DefaultMaxOpenPerSource    = 4
	DefaultNewSerialsPerMinute = 120
	DefaultOverLimitDelay      = time.Second
	DefaultEventsPerBoard      = 1000
	DefaultForgetBoardsAfter   = 7 * 24 * time.Hour
	DefaultSite                = store.DefaultSite
)

// Options tune the service. Zero values mean the documented defaults.
type Options struct {
	// DataDir holds images/ (packed images and manifests). Required.
	DataDir string
	// MaxStreams is how many deployments may hold a stream slot at once; beyond it
	// a new board's hello is answered "retry". A deployment holds a slot while its
	// board fetches the image and reports (until StaleAfter of silence), and, before
	// its first image byte, only for ClaimWindow after its hello. Default 64.
	MaxStreams int
	// StaleAfter: an open deployment that fetched its image and has been silent
	// this long no longer counts toward MaxStreams. Default 15 minutes.
	StaleAfter time.Duration
	// RetryAfter is the delay a "retry" answer asks for. Default 10 s.
	RetryAfter time.Duration
	// After is what an agent does once its card is verified: agentapi.AfterReboot
	// (default), AfterPoweroff or AfterWait.
	After string
	// DiskReserve is how many bytes of the data directory's file system uploads
	// leave free, for the database: an upload that would eat into it is refused
	// (ErrNoSpace). Default DefaultDiskReserve (64 MiB).
	DiskReserve int64
	// ClaimWindow: a deployment whose board has not fetched its image yet holds a
	// stream slot for this long after its hello, then no longer. Default 2 minutes.
	ClaimWindow time.Duration
	// ClaimTimeout: a deployment whose board has not fetched its image this long
	// after its hello is abandoned and its pool name released. Default 10 minutes.
	ClaimTimeout time.Duration
	// MaxOpenPerSource is how many open deployments the hellos of one network
	// address may hold; beyond it that address is answered "retry". A board holds
	// one. Default 4; negative: no limit.
	MaxOpenPerSource int
	// NewSerialsPerMinute is how many never seen serials one address may introduce
	// per minute (a bucket of as many, refilled evenly); beyond it a hello of a new
	// serial is answered "retry" and nothing is written. Default 120; negative: no
	// limit.
	NewSerialsPerMinute int
	// OverLimitDelay is how long the answer to a hello over one of the per-source
	// limits (NewSerialsPerMinute, MaxOpenPerSource) is held. Default 1 s; negative:
	// none.
	OverLimitDelay time.Duration
	// EventsPerBoard is how many history events are kept per board. Default 1000.
	EventsPerBoard int
	// ForgetBoardsAfter: a board that never got a deployment nor a name is deleted
	// after this long without a hello. Default 7 days (168h).
	ForgetBoardsAfter time.Duration
	// PeerURL is the base URL at which this server answers the other sites' servers
	// (rpi-deployd --peer-url): recorded with every image this site holds, so that a
	// site without it can pull it from here. "" records none (no site pulls from here).
	PeerURL string
	// PeerClient makes the requests of pulls from other sites. nil: a client that
	// gives up on a connection silent for a minute.
	PeerClient *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
	// Site is the server's site name (rpi-deployd serve --site, [a-z0-9-]{1,32}),
	// recorded on every board it sees, deployment it runs and event it records. Servers
	// sharing one database tell their rows apart by it. Default DefaultSite ("main").
	Site string
	// Now is the service's clock (rate limits, sessions, the fleet snapshot); nil
	// means time.Now. Tests pass a clock they advance, and give the store the same
	// one (store.Store.SetClock), instead of sleeping.
	Now func() time.Time
}

// Service is the domain layer.
type Service struct {
	st   *store.Store
	bus  *events.Bus
	opt  Options
	log  *slog.Logger
	imgs string // image directory

	newSerials sourceLimiter // NewSerialsPerMinute per source

	uploadMu sync.Mutex
	uploads  map[string]bool // image names with an append in progress

	eepromMu sync.Mutex // serialises firmware uploads (one card at a time per data directory)

	batchOrd       atomic.Int64 // batchOrder's last number
	batchPubMu     sync.Mutex
	batchPubDue    map[int64]batchDue // batches whose batch.changed is about to be published (publishBatch)
	batchPublished map[int64]int64    // the batchOrder of each batch's last batch.changed

	siteMu   sync.Mutex
	local    map[string]string   // image name → compressed SHA-256 this data directory holds whole and verified
	pulls    map[string]*pullRun // the last pull of each image, running or finished
	token    string              // the database's peer credential, once read
	peerHTTP *http.Client

	bg     context.Context // ends at Close: background pulls run in it
	bgStop context.CancelFunc
	bgWG   sync.WaitGroup
}

// New builds the service over an open store and an event bus (nil bus: no events).
func New(st *store.Store, bus *events.Bus, opt Options) *Service {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&opt.StaleAfter, DefaultStaleAfter}, {&opt.RetryAfter, DefaultRetryAfter}, {&opt.ClaimWindow, DefaultClaimWindow},
		{&opt.ClaimTimeout, DefaultClaimTimeout}, {&opt.ForgetBoardsAfter, DefaultForgetBoardsAfter}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if opt.MaxStreams <= 0 {
		opt.MaxStreams = DefaultMaxStreams
	}
	if opt.After == "" {
		opt.After = agentapi.AfterReboot
	}
	if opt.DiskReserve <= 0 {
		opt.DiskReserve = DefaultDiskReserve
	}
	if opt.MaxOpenPerSource == 0 {
		opt.MaxOpenPerSource = DefaultMaxOpenPerSource
	}
	if opt.NewSerialsPerMinute == 0 {
		opt.NewSerialsPerMinute = DefaultNewSerialsPerMinute
	}
	if opt.OverLimitDelay == 0 {
		opt.OverLimitDelay = DefaultOverLimitDelay
	}
	if opt.EventsPerBoard <= 0 {
		opt.EventsPerBoard = DefaultEventsPerBoard
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Site == "" {
		opt.Site = DefaultSite
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	peerHTTP := opt.PeerClient
	if peerHTTP == nil {
		peerHTTP = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 30 * time.Second, ResponseHeaderTimeout: time.Minute, IdleConnTimeout: time.Minute}}
	}
	bg, stop := context.WithCancel(context.Background())
	return &Service{st: st, bus: bus, opt: opt, log: log, imgs: filepath.Join(opt.DataDir, "images"), uploads: map[string]bool{},
		batchPubDue: map[int64]batchDue{}, batchPublished: map[int64]int64{},
		newSerials: sourceLimiter{perMinute: opt.NewSerialsPerMinute},
		local:      map[string]string{}, pulls: map[string]*pullRun{}, peerHTTP: peerHTTP, bg: bg, bgStop: stop}
}

// Bus is the event bus.
func (s *Service) Bus() *events.Bus { return s.bus }

// Options returns the effective options.
func (s *Service) Options() Options { return s.opt }

type actorKey struct{}

// WithActor tags ctx with who acts ("token", "user:NAME"), for the audit log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Actor returns the actor of ctx, "system" when none.
func Actor(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// now is the service's clock, in UTC.
func (s *Service) now() time.Time { return s.opt.Now().UTC() }

// publish is called after a commit.
func (s *Service) publish(typ string, data any) { s.bus.Publish(typ, data) }

// Store is the store the service runs on.
func (s *Service) Store() *store.Store { return s.st }
