package netboot

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/dhcp"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// maxHeldLeases bounds the lease writes held while the database is unreachable
// (one per DHCP REQUEST or RELEASE); past it the oldest is dropped and logged.
const maxHeldLeases = 4096

// heldRetry is how often held writes are tried again.
const heldRetry = time.Second

// heldLeases is the DHCP server's lease store over the database's (next) that keeps
// full-mode DHCP answering while the database cannot be reached (a PostgreSQL
// restart, a network cut to it): a write that fails with store.ErrUnavailable is
// held in memory, in order, and reported done, so the board gets its ACK from the
// DHCP server's table; the held writes reach the database, oldest first, as soon as
// it takes writes again (every heldRetry, and before any later write). Until then
// the table in memory is ahead of the database; a server that stops before the
// database is back loses the held writes (logged), and a board's lease is written
// again when it renews. Other errors are returned as they are.
type heldLeases struct {
	next dhcp.LeaseStore
	log  *slog.Logger
	mu   sync.Mutex // held over every write to next: writes reach it in order
	held []leaseWrite
}

// leaseWrite is one held PutLease (del false) or DeleteLease.
type leaseWrite struct {
	del   bool
	lease dhcp.Lease // only MAC for a delete
}

func (h *heldLeases) LoadLeases(ctx context.Context) ([]dhcp.Lease, error) {
	return h.next.LoadLeases(ctx)
}

func (h *heldLeases) PutLease(ctx context.Context, l dhcp.Lease) error {
	return h.write(ctx, leaseWrite{lease: l})
}

func (h *heldLeases) DeleteLease(ctx context.Context, mac string) error {
	return h.write(ctx, leaseWrite{del: true, lease: dhcp.Lease{MAC: mac}})
}

func (h *heldLeases) write(ctx context.Context, w leaseWrite) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.flushLocked(ctx)
	if err == nil {
		err = h.apply(ctx, w)
	}
	if !errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if len(h.held) == 0 {
		h.log.Warn("dhcp: database unavailable; lease writes are held in memory until it is back", "err", err)
	}
	if len(h.held) == maxHeldLeases {
		h.log.Warn("dhcp: too many lease writes held, dropping the oldest", "mac", h.held[0].lease.MAC)
		h.held = h.held[1:]
	}
	h.held = append(h.held, w)
	return nil
}

func (h *heldLeases) apply(ctx context.Context, w leaseWrite) error {
	if w.del {
		return h.next.DeleteLease(ctx, w.lease.MAC)
	}
	return h.next.PutLease(ctx, w.lease)
}

// flushLocked writes the held writes, oldest first, until the database is
// unavailable again (that error is returned). A held write failing otherwise is
// logged and dropped. h.mu is held.
func (h *heldLeases) flushLocked(ctx context.Context) error {
	n := len(h.held)
	for len(h.held) > 0 {
		err := h.apply(ctx, h.held[0])
		if errors.Is(err, store.ErrUnavailable) {
			return err
		}
		if err != nil {
			h.log.Warn("dhcp: held lease write failed, dropped", "mac", h.held[0].lease.MAC, "err", err)
		}
		h.held = h.held[1:]
	}
	if n > 0 {
		h.held = nil
		h.log.Info("dhcp: database back; held lease writes written", "writes", n)
	}
	return nil
}

// run writes held writes every heldRetry until ctx ends; then it logs what is still
// held (lost with the process).
func (h *heldLeases) run(ctx context.Context) error {
	t := time.NewTicker(heldRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			if n := len(h.held); n > 0 {
				h.log.Warn("dhcp: stopping with lease writes the database never took", "writes", n)
			}
			h.mu.Unlock()
			return nil
		case <-t.C:
			h.mu.Lock()
			h.flushLocked(ctx)
			h.mu.Unlock()
		}
	}
}
