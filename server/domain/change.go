package domain

import (
	"context"
	"runtime"

	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// auditLine is what an operator's change adds to the audit log; an empty Action
// adds nothing. The actor is the context's (WithActor), "system" when none.
type auditLine struct{ Action, Object, Detail string }

// change is the one shape of a change to one row: write (which says what to audit),
// the audit line, and the row read back with read, all in one transaction; after
// the commit, and only then, the row in its wire form is published as event ("" for
// none) and returned. On any error nothing is written and nothing is published.
func change[R, W any](ctx context.Context, s *Service, event string, write func(*store.Tx) (auditLine, error),
	read func(*store.Tx) (R, error), wire func(R) W) (W, error) {
	var row R
	var ord int64 // batchOrder of a batch.changed
	err := s.st.Update(ctx, func(t *store.Tx) error {
		a, err := write(t)
		if err != nil {
			return err
		}
		if a.Action != "" {
			if err := t.Audit(ctx, Actor(ctx), a.Action, a.Object, a.Detail); err != nil {
				return err
			}
		}
		row, err = read(t)
		if event == events.BatchChanged {
			ord = s.batchOrder()
		}
		return err
	})
	if err != nil {
		var zero W
		return zero, err
	}
	w := wire(row)
	if b, ok := any(w).(mgmtapi.Batch); ok && event == events.BatchChanged {
		s.publishBatch(ctx, b.ID, &b, ord)
	} else if event != "" {
		s.publish(event, w)
	}
	return w, nil
}

// changeNoRow is change for a change that leaves no row to show (a delete, a pool
// edit): the audited write in one transaction, then payload published as event.
func changeNoRow(ctx context.Context, s *Service, event string, payload any, write func(*store.Tx) (auditLine, error)) error {
	_, err := change(ctx, s, event, write, func(*store.Tx) (any, error) { return payload, nil }, func(p any) any { return p })
	return err
}

// batchOrder numbers a change to a batch among all changes to batches, for
// publishBatch: it is taken inside the change's write transaction, and the store's
// writer runs those one at a time, in the order they commit, so that of two
// committed changes to a batch the one with the higher number holds the other. A
// transaction that takes one and then fails, or is rolled back, publishes nothing,
// and leaves a number unused.
func (s *Service) batchOrder() int64 { return s.batchOrd.Add(1) }

// readBatch is batch id as read now (nil: it could not be read).
//
//go:noinline
func (s *Service) readBatch(ctx context.Context, id int64) *mgmtapi.Batch {
	b, err := s.st.Batch(ctx, id)
	if err != nil {
		return nil
	}
	w := wireBatch(b)
	return &w
}

// batchDue is a batch.changed event about to be published: the batch as change ord
// (batchOrder) left it, or, when row is nil, to be read after its commit.
type batchDue struct {
	ord int64
	row *mgmtapi.Batch // nil: read it
}

// publishBatch publishes batch.changed for the change numbered ord (batchOrder) to
// batch id, after its commit: row is the batch as its transaction left it, or nil
// to read it now (a read after the commit holds the change and maybe later ones).
// id 0 (no batch) publishes nothing. Events leave in the order of the changes: a
// state older than one already published is not published. Calls for the same batch
// that come while one is due are folded into it, the newest state kept: a burst of
// hellos into one batch then costs an event per group of commits, not one per hello,
// and no read (each hello's transaction knows its batch's row).
func (s *Service) publishBatch(ctx context.Context, id int64, row *mgmtapi.Batch, ord int64) {
	if id == 0 {
		return
	}
	due := batchDue{ord: ord, row: row}
	s.batchPubMu.Lock()
	if ord <= s.batchPublished[id] {
		s.batchPubMu.Unlock()
		return
	}
	if prev, ok := s.batchPubDue[id]; ok {
		if ord > prev.ord {
			s.batchPubDue[id] = due
		}
		s.batchPubMu.Unlock()
		return
	}
	s.batchPubDue[id] = due
	s.batchPubMu.Unlock()
	// Let the calls of the other callers of the same group arrive and fold in.
	runtime.Gosched()
	s.batchPubMu.Lock()
	due = s.batchPubDue[id]
	delete(s.batchPubDue, id)
	s.batchPubMu.Unlock()
	if due.row == nil {
		if due.row = s.readBatch(ctx, id); due.row == nil {
			return
		}
	}
	// Published under the lock, so that a newer state cannot overtake it.
	s.batchPubMu.Lock()
	defer s.batchPubMu.Unlock()
	if due.ord > s.batchPublished[id] {
		s.batchPublished[id] = due.ord
		events.PublishView(s.bus, events.BatchChanged, due.row)
	}
}
