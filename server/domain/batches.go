package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// BatchSpec is what an operator asks for.
type BatchSpec = mgmtapi.BatchSpec

// AddBatch creates a batch: active, or pending when Paused (resume starts it).
func (s *Service) AddBatch(ctx context.Context, bs BatchSpec) (mgmtapi.Batch, error) {
	if !agentapi.ValidVenue(bs.Venue) {
		return mgmtapi.Batch{}, invalid("venue", "venue code %q: want 4 upper-case letters", bs.Venue)
	}
	if bs.Count < 0 {
		return mgmtapi.Batch{}, invalid("count", "count %d is negative (0 = open-ended)", bs.Count)
	}
	var id int64
	return change(ctx, s, events.BatchChanged, func(t *store.Tx) (auditLine, error) {
		img, err := batchImage(ctx, t, bs)
		if err != nil {
			return auditLine{}, err
		}
		state := store.BatchActive
		if bs.Paused {
			state = store.BatchPending
		}
		id, err = t.AddBatch(ctx, store.Batch{Venue: bs.Venue, Product: bs.Product, Image: bs.Image, Count: bs.Count,
			Priority: bs.Priority, State: state, Note: bs.Note})
		note := ""
		if img.FirstBoot == manifest.FirstBootNone {
			note = " allow_no_first_boot"
		}
		return auditLine{"batch.add", fmt.Sprint(id), fmt.Sprintf("%s %s count %d image %q priority %d%s",
			bs.Venue, bs.Product, bs.Count, bs.Image, bs.Priority, note)}, err
	}, func(t *store.Tx) (store.Batch, error) { return t.Batch(ctx, id) }, wireBatch)
}

// batchImage checks a batch's venue and product and returns the image it would
// deploy now: its own, or the product's active one.
func batchImage(ctx context.Context, t *store.Tx, bs BatchSpec) (store.Image, error) {
	if _, err := t.Venue(ctx, bs.Venue); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Image{}, invalid("venue", "venue %q does not exist", bs.Venue)
		}
		return store.Image{}, err
	}
	p, err := t.Product(ctx, bs.Product)
	if errors.Is(err, store.ErrNotFound) {
		return store.Image{}, invalid("product", "product %q does not exist", bs.Product)
	}
	if err != nil {
		return store.Image{}, err
	}
	imgName := bs.Image
	if imgName == "" {
		imgName = p.Image
	}
	if imgName == "" {
		return store.Image{}, invalid("image", "product %q has no active image: name one", bs.Product)
	}
	img, err := t.Image(ctx, imgName)
	if errors.Is(err, store.ErrNotFound) {
		return img, invalid("image", "image %q does not exist", imgName)
	} else if err != nil {
		return img, err
	}
	if img.FirstBoot == manifest.FirstBootNone && !bs.AllowNoFirstBoot {
		return img, noFirstBoot(img.Name, "use it", "rpi-deployd batch add --allow-no-first-boot (API: \"allow_no_first_boot\": true)")
	}
	return img, nil
}

// Batch actions.
const (
	BatchPause    = mgmtapi.BatchPause
	BatchResume   = mgmtapi.BatchResume
	BatchCancel   = mgmtapi.BatchCancel
	BatchPriority = mgmtapi.BatchPriority
)

// ChangeBatch pauses, resumes, cancels or reprioritises a batch. Open deployments of
// a paused or cancelled batch run to their end; no new board joins it.
func (s *Service) ChangeBatch(ctx context.Context, id int64, action string, priority int) (mgmtapi.Batch, error) {
	return change(ctx, s, events.BatchChanged, func(t *store.Tx) (auditLine, error) {
		b, err := t.Batch(ctx, id)
		if err != nil {
			return auditLine{}, fmt.Errorf("batch %d: %w", id, err)
		}
		finished := b.State == store.BatchComplete || b.State == store.BatchCancelled
		switch action {
		case BatchPause:
			if finished {
				return auditLine{}, fmt.Errorf("batch %d is %s: %w", id, b.State, ErrConflict)
			}
			b.State = store.BatchPaused
		case BatchResume:
			if finished {
				return auditLine{}, fmt.Errorf("batch %d is %s: %w", id, b.State, ErrConflict)
			}
			b.State = store.BatchActive
		case BatchCancel:
			if b.State == store.BatchComplete {
				return auditLine{}, fmt.Errorf("batch %d is complete: %w", id, ErrConflict)
			}
			b.State = store.BatchCancelled
		case BatchPriority:
			b.Priority = priority
		default:
			return auditLine{}, invalid("action", "action %q: want pause, resume, cancel or priority", action)
		}
		return auditLine{"batch." + action, fmt.Sprint(id), fmt.Sprintf("state %s priority %d", b.State, b.Priority)},
			t.UpdateBatch(ctx, b)
	}, func(t *store.Tx) (store.Batch, error) { return t.Batch(ctx, id) }, wireBatch)
}

// SetReimage flags (or unflags) a board for re-imaging on its next boot.
func (s *Service) SetReimage(ctx context.Context, serial string, reimage bool) (mgmtapi.Board, error) {
	serial, err := agentapi.NormalizeSerial(serial)
	if err != nil {
		return mgmtapi.Board{}, invalid("serial", "%v", err)
	}
	return change(ctx, s, events.BoardChanged, func(t *store.Tx) (auditLine, error) {
		if err := t.SetBoardReimage(ctx, serial, reimage); err != nil {
			return auditLine{}, fmt.Errorf("board %q: %w", serial, err)
		}
		return auditLine{"board.reimage", serial, fmt.Sprint(reimage)}, nil
	}, func(t *store.Tx) (store.Board, error) { return t.Board(ctx, serial) }, wireBoard)
}

// AbandonDeployment closes an open deployment that will not finish (a board pulled
// from the rack). The board keeps its name.
func (s *Service) AbandonDeployment(ctx context.Context, id int64, reason string) (mgmtapi.Deployment, error) {
	return change(ctx, s, events.DeploymentFinished, func(t *store.Tx) (auditLine, error) {
		d, err := t.Deployment(ctx, id)
		if err != nil {
			return auditLine{}, fmt.Errorf("deployment %d: %w", id, err)
		}
		if d.State != store.DeployOpen {
			return auditLine{}, fmt.Errorf("deployment %d is %s: %w", id, d.State, ErrConflict)
		}
		d.State, d.ErrorPhase, d.Error = store.DeployAbandoned, d.Phase, "abandoned by operator: "+reason
		d.Phase = agentapi.PhaseFailed
		return auditLine{"deployment.abandon", fmt.Sprint(id), reason}, t.Finish(ctx, d)
	}, func(t *store.Tx) (store.Deployment, error) { return t.Deployment(ctx, id) }, wireDeployment)
}

// AbandonSilent closes every open deployment without any event for longer than
// silence as abandoned (a board pulled from the rack, an agent that died), which
// frees its batch slot. The boards keep their names. It returns how many it closed.
func (s *Service) AbandonSilent(ctx context.Context, silence time.Duration) (int, error) {
	closed, ord, err := s.abandon(ctx,
		func(t *store.Tx) ([]store.Deployment, error) {
			return t.SilentDeployments(ctx, store.FormatTime(t.Now.Add(-silence)))
		},
		fmt.Sprintf("abandoned: no word from the board for %s", silence),
		func(t *store.Tx, d store.Deployment) error {
			return t.Audit(ctx, "system", "deployment.abandon", fmt.Sprint(d.ID), d.Error)
		})
	if err != nil {
		return 0, err
	}
	for _, d := range closed {
		s.log.Warn("deployment abandoned", "deployment", d.ID, "serial", d.Serial, "hostname", d.Hostname, "silence", silence)
		s.publish(events.DeploymentFinished, wireDeployment(d))
		s.publishBatch(ctx, d.BatchID, nil, ord)
	}
	return len(closed), nil
}

// abandon closes, in one transaction, every open deployment find returns as
// abandoned with reason as its error (its error phase the phase it was in, its
// phase failed), runs then on each in the same transaction, and returns them as
// stored afterwards, with the batchOrder of the change to their batches. The caller
// logs and publishes after the commit.
func (s *Service) abandon(ctx context.Context, find func(*store.Tx) ([]store.Deployment, error), reason string,
	then func(*store.Tx, store.Deployment) error) (closed []store.Deployment, ord int64, err error) {
	err = s.st.Update(ctx, func(t *store.Tx) error {
		closed, ord = nil, s.batchOrder()
		ds, err := find(t)
		if err != nil {
			return err
		}
		for _, d := range ds {
			d.State, d.ErrorPhase, d.Phase, d.Error = store.DeployAbandoned, d.Phase, agentapi.PhaseFailed, reason
			if err := t.Finish(ctx, d); err != nil {
				return err
			}
			if err := then(t, d); err != nil {
				return err
			}
			if d, err = t.Deployment(ctx, d.ID); err != nil {
				return err
			}
			closed = append(closed, d)
		}
		return nil
	})
	return closed, ord, err
}
