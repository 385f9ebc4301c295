package domain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// BatchSpec is what an operator asks for.
type BatchSpec struct {
	Venue    string `json:"venue"`
	Product  string `json:"product"`
	Image    string `json:"image,omitempty"` // "" = the product's active image at each hello
	Count    int    `json:"count"`           // 0 = open-ended
	Priority int    `json:"priority"`
	Paused   bool   `json:"paused,omitempty"` // create it pending (resume starts it) instead of active
	Note     string `json:"note,omitempty"`
	// AllowNoFirstBoot lets the batch use an image without a first-boot mechanism
	// (boards flashed with it keep the image's own hostname). Default false: refused.
	AllowNoFirstBoot bool `json:"allow_no_first_boot,omitempty"`
}

// AddBatch creates a batch: active, or pending when Paused (resume starts it).
func (s *Service) AddBatch(ctx context.Context, bs BatchSpec) (store.Batch, error) {
	if !agentapi.ValidVenue(bs.Venue) {
		return store.Batch{}, invalid("venue", "venue code %q: want 4 upper-case letters", bs.Venue)
	}
	if bs.Count < 0 {
		return store.Batch{}, invalid("count", "count %d is negative (0 = open-ended)", bs.Count)
	}
	var b store.Batch
	err := s.st.Update(ctx, func(t *store.Tx) error {
		if _, err := t.Venue(ctx, bs.Venue); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return invalid("venue", "venue %q does not exist", bs.Venue)
			}
			return err
		}
		p, err := t.Product(ctx, bs.Product)
		if errors.Is(err, store.ErrNotFound) {
			return invalid("product", "product %q does not exist", bs.Product)
		}
		if err != nil {
			return err
		}
		imgName := bs.Image
		if imgName == "" {
			imgName = p.Image
		}
		if imgName == "" {
			return invalid("image", "product %q has no active image: name one", bs.Product)
		}
		img, err := t.Image(ctx, imgName)
		if errors.Is(err, store.ErrNotFound) {
			return invalid("image", "image %q does not exist", imgName)
		} else if err != nil {
			return err
		}
		if img.FirstBoot == manifest.FirstBootNone && !bs.AllowNoFirstBoot {
			return noFirstBoot(img.Name, "use it", "rpi-deployd batch add --allow-no-first-boot (API: \"allow_no_first_boot\": true)")
		}
		state := store.BatchActive
		if bs.Paused {
			state = store.BatchPending
		}
		id, err := t.AddBatch(ctx, store.Batch{Venue: bs.Venue, Product: bs.Product, Image: bs.Image, Count: bs.Count,
			Priority: bs.Priority, State: state, Note: bs.Note})
		if err != nil {
			return err
		}
		note := ""
		if img.FirstBoot == manifest.FirstBootNone {
			note = " allow_no_first_boot"
		}
		if err := t.Audit(ctx, Actor(ctx), "batch.add", fmt.Sprint(id), fmt.Sprintf("%s %s count %d image %q priority %d%s",
			bs.Venue, bs.Product, bs.Count, bs.Image, bs.Priority, note)); err != nil {
			return err
		}
		b, err = t.Batch(ctx, id)
		return err
	})
	if err == nil {
		s.publish(events.BatchChanged, b)
	}
	return b, err
}

// Batch actions.
const (
	BatchPause    = "pause"
	BatchResume   = "resume"
	BatchCancel   = "cancel"
	BatchPriority = "priority"
)

// ChangeBatch pauses, resumes, cancels or reprioritises a batch. Open deployments of
// a paused or cancelled batch run to their end; no new board joins it.
func (s *Service) ChangeBatch(ctx context.Context, id int64, action string, priority int) (store.Batch, error) {
	var b store.Batch
	err := s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		b, err = t.Batch(ctx, id)
		if err != nil {
			return fmt.Errorf("batch %d: %w", id, err)
		}
		finished := b.State == store.BatchComplete || b.State == store.BatchCancelled
		switch action {
		case BatchPause:
			if finished {
				return fmt.Errorf("batch %d is %s: %w", id, b.State, ErrConflict)
			}
			b.State = store.BatchPaused
		case BatchResume:
			if finished {
				return fmt.Errorf("batch %d is %s: %w", id, b.State, ErrConflict)
			}
			b.State = store.BatchActive
		case BatchCancel:
			if b.State == store.BatchComplete {
				return fmt.Errorf("batch %d is complete: %w", id, ErrConflict)
			}
			b.State = store.BatchCancelled
		case BatchPriority:
			b.Priority = priority
		default:
			return invalid("action", "action %q: want pause, resume, cancel or priority", action)
		}
		if err := t.UpdateBatch(ctx, b); err != nil {
			return err
		}
		if err := t.Audit(ctx, Actor(ctx), "batch."+action, fmt.Sprint(id), fmt.Sprintf("state %s priority %d", b.State, b.Priority)); err != nil {
			return err
		}
		b, err = t.Batch(ctx, id)
		return err
	})
	if err == nil {
		s.publish(events.BatchChanged, b)
	}
	return b, err
}

// SetReimage flags (or unflags) a board for re-imaging on its next boot.
func (s *Service) SetReimage(ctx context.Context, serial string, reimage bool) (store.Board, error) {
	serial, err := agentapi.NormalizeSerial(serial)
	if err != nil {
		return store.Board{}, invalid("serial", "%v", err)
	}
	var b store.Board
	err = s.st.Update(ctx, func(t *store.Tx) error {
		if err := t.SetBoardReimage(ctx, serial, reimage); err != nil {
			return fmt.Errorf("board %q: %w", serial, err)
		}
		if err := t.Audit(ctx, Actor(ctx), "board.reimage", serial, fmt.Sprint(reimage)); err != nil {
			return err
		}
		b, err = t.Board(ctx, serial)
		return err
	})
	if err == nil {
		s.publish(events.BoardChanged, b)
	}
	return b, err
}

// AbandonDeployment closes an open deployment that will not finish (a board pulled
// from the rack). The board keeps its name.
func (s *Service) AbandonDeployment(ctx context.Context, id int64, reason string) (store.Deployment, error) {
	var d store.Deployment
	err := s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		d, err = t.Deployment(ctx, id)
		if err != nil {
			return fmt.Errorf("deployment %d: %w", id, err)
		}
		if d.State != store.DeployOpen {
			return fmt.Errorf("deployment %d is %s: %w", id, d.State, ErrConflict)
		}
		d.State, d.ErrorPhase, d.Error = store.DeployAbandoned, d.Phase, "abandoned by operator: "+reason
		d.Phase = agentapi.PhaseFailed
		if err := t.Finish(ctx, d); err != nil {
			return err
		}
		if err := t.Audit(ctx, Actor(ctx), "deployment.abandon", fmt.Sprint(id), reason); err != nil {
			return err
		}
		d, err = t.Deployment(ctx, id)
		return err
	})
	if err == nil {
		s.publish(events.DeploymentFinished, d)
	}
	return d, err
}

// AbandonSilent closes every open deployment without any event for longer than
// silence as abandoned (a board pulled from the rack, an agent that died), which
// frees its batch slot. The boards keep their names. It returns how many it closed.
func (s *Service) AbandonSilent(ctx context.Context, silence time.Duration) (int, error) {
	var closed []store.Deployment
	err := s.st.Update(ctx, func(t *store.Tx) error {
		closed = nil
		ds, err := t.SilentDeployments(ctx, store.FormatTime(t.Now.Add(-silence)))
		if err != nil {
			return err
		}
		for _, d := range ds {
			d.State, d.ErrorPhase = store.DeployAbandoned, d.Phase
			d.Error = fmt.Sprintf("abandoned: no word from the board for %s", silence)
			d.Phase = agentapi.PhaseFailed
			if err := t.Finish(ctx, d); err != nil {
				return err
			}
			if err := t.Audit(ctx, "system", "deployment.abandon", fmt.Sprint(d.ID), d.Error); err != nil {
				return err
			}
			if d, err = t.Deployment(ctx, d.ID); err != nil {
				return err
			}
			closed = append(closed, d)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, d := range closed {
		s.log.Warn("deployment abandoned", "deployment", d.ID, "serial", d.Serial, "hostname", d.Hostname, "silence", silence)
		s.publish(events.DeploymentFinished, d)
		if d.BatchID != 0 {
			if b, err := s.st.Batch(ctx, d.BatchID); err == nil {
				s.publish(events.BatchChanged, b)
			}
		}
	}
	return len(closed), nil
}
