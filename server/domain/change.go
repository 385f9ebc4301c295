package domain

import (
	"context"
	"runtime"

	"github.com/rpi-deploy/rpi-deploy/server/events"
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
		return err
	})
	if err != nil {
		var zero W
		return zero, err
	}
	w := wire(row)
	if event != "" {
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

// publishBatch publishes batch.changed with batch id as it stands now, read after
// the commit that changed it; id 0 (no batch) publishes nothing. Calls for the
// same batch that come while one is due to read it are folded into that one: its
// read starts after they were called, so after their commits, and it publishes a
// state that holds all their changes. A burst of hellos into one batch then costs
// a read and an event per group of commits, not one per hello.
func (s *Service) publishBatch(ctx context.Context, id int64) {
	if id == 0 {
		return
	}
	s.batchPubMu.Lock()
	if s.batchPubDue[id] {
		s.batchPubMu.Unlock()
		return
	}
	s.batchPubDue[id] = true
	s.batchPubMu.Unlock()
	// Let the calls of the other callers of the same group arrive and fold in.
	runtime.Gosched()
	s.batchPubMu.Lock()
	delete(s.batchPubDue, id)
	s.batchPubMu.Unlock()
	if b, err := s.st.Batch(ctx, id); err == nil {
		s.publish(events.BatchChanged, wireBatch(b))
	}
}
