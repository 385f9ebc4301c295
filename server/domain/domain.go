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
	"path/filepath"
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Sentinel errors; the API maps them to HTTP status codes.
var (
	ErrInvalid  = errors.New("invalid request")       // 400
	ErrNotFound = store.ErrNotFound                   // 404
	ErrConflict = store.ErrConflict                   // 409
	ErrAuth     = errors.New("authentication failed") // 401
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

// Options tune the service. Zero values mean the documented defaults.
type Options struct {
	// DataDir holds images/ (packed images and manifests). Required.
	DataDir string
	// MaxStreams is how many deployments may be open (streaming) at once; beyond it
	// a new board's hello is answered "retry". Default 64.
	MaxStreams int
	// StaleAfter: an open deployment without any event for this long no longer counts
	// toward MaxStreams. Default 15 minutes.
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
	// Logger; nil discards.
	Logger *slog.Logger
}

// Service is the domain layer.
type Service struct {
	st   *store.Store
	bus  *events.Bus
	opt  Options
	log  *slog.Logger
	imgs string // image directory

	uploadMu sync.Mutex
	uploads  map[string]bool // image names with an append in progress
}

// New builds the service over an open store and an event bus (nil bus: no events).
func New(st *store.Store, bus *events.Bus, opt Options) *Service {
	if opt.MaxStreams <= 0 {
		opt.MaxStreams = 64
	}
	if opt.StaleAfter <= 0 {
		opt.StaleAfter = 15 * time.Minute
	}
	if opt.RetryAfter <= 0 {
		opt.RetryAfter = 10 * time.Second
	}
	if opt.After == "" {
		opt.After = agentapi.AfterReboot
	}
	if opt.DiskReserve <= 0 {
		opt.DiskReserve = DefaultDiskReserve
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{st: st, bus: bus, opt: opt, log: log, imgs: filepath.Join(opt.DataDir, "images"), uploads: map[string]bool{}}
}

// Store gives read access to the store (for list and show endpoints).
func (s *Service) Store() *store.Store { return s.st }

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

// publish is called after a commit.
func (s *Service) publish(typ string, data any) { s.bus.Publish(typ, data) }
