package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// ImagePath is where the API serves a packed image; ManifestPath its manifest.
func ImagePath(name string) string    { return "/images/" + name + ".img.zst" }
func ManifestPath(name string) string { return "/images/" + name + ".manifest.json" }

func (s *Service) deployResponse(ctx context.Context, t *store.Tx, d store.Deployment) (agentapi.HelloResponse, error) {
	img, err := t.ImageHead(ctx, d.Image)
	if err != nil {
		return agentapi.HelloResponse{}, fmt.Errorf("deployment %d image %q: %w", d.ID, d.Image, err)
	}
	p, err := t.Product(ctx, d.Product)
	if err != nil {
		return agentapi.HelloResponse{}, err
	}
	resp, err := deployResponseWith(d, img, p, s.opt.After)
	if err != nil {
		return resp, err
	}
	return resp, applyProfile(ctx, t, &resp, d, img)
}

// deployResponseWith builds the deploy answer from the deployment, its image and product;
// after is what the agent does once the card is verified.
func deployResponseWith(d store.Deployment, img store.Image, p store.Product, after string) (agentapi.HelloResponse, error) {
	var fb agentapi.FirstBoot
	if p.FirstBoot != "" {
		if err := json.Unmarshal([]byte(p.FirstBoot), &fb); err != nil {
			return agentapi.HelloResponse{}, fmt.Errorf("product %q first_boot: %w", p.Code, err)
		}
	}
	fb.Hostname = d.Hostname
	return agentapi.HelloResponse{Action: agentapi.ActionDeploy, Deployment: &agentapi.Deployment{
		ID: d.ID, Hostname: d.Hostname, Product: d.Product, Venue: d.Venue,
		Image: agentapi.Image{Name: img.Name, URL: ImagePath(img.Name), ManifestURL: ManifestPath(img.Name),
			SHA256: img.SHA256, Size: img.Size, CompressedSize: img.CompressedSize},
		FirstBoot: fb, After: after,
	}}, nil
}

func validPhase(p string) bool {
	for _, q := range agentapi.Phases {
		if p == q {
			return true
		}
	}
	return false
}

// maxPhases bounds the phase history of one deployment (a real one records about 8).
const maxPhases = 64

// Event records a phase change or progress report of an open deployment. secret
// must be the deployment's (ErrSecret otherwise).
func (s *Service) Event(ctx context.Context, id int64, secret string, e agentapi.Event) (mgmtapi.Deployment, error) {
	if !validPhase(e.Phase) {
		return mgmtapi.Deployment{}, invalid("phase", "phase %q: want one of %s (results go to /result)", e.Phase, strings.Join(agentapi.Phases, ", "))
	}
	if e.Bytes < 0 || e.Total < 0 || e.RateBps < 0 {
		return mgmtapi.Deployment{}, invalid("bytes", "bytes, total and rate_bps must not be negative")
	}
	if len(e.Message) > 2000 {
		e.Message = e.Message[:2000]
	}
	var d store.Deployment
	var changed bool
	err := s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		d, err = t.Deployment(ctx, id)
		if err != nil {
			return fmt.Errorf("deployment %d: %w", id, err)
		}
		if _, err := checkSecret(ctx, t, id, secret); err != nil {
			return err
		}
		if d.State != store.DeployOpen {
			return fmt.Errorf("deployment %d is %s: %w", id, d.State, ErrConflict)
		}
		changed = d.Phase != e.Phase
		if changed {
			n, err := t.CountPhases(ctx, id)
			if err != nil {
				return err
			}
			if n < maxPhases {
				if err := t.AddPhase(ctx, id, e.Phase, e.Bytes, e.Message); err != nil {
					return err
				}
			}
		}
		total := e.Total
		if total == 0 && !changed {
			total = d.Total
		}
		if err := t.Progress(ctx, id, e.Phase, e.Bytes, total, e.RateBps, e.Message); err != nil {
			return err
		}
		d, err = t.Deployment(ctx, id)
		return err
	})
	if err != nil {
		return mgmtapi.Deployment{}, err
	}
	if changed {
		s.log.Info("deployment phase", "deployment", id, "serial", d.Serial, "hostname", d.Hostname, "phase", e.Phase)
	}
	s.publish(events.DeploymentProgress, wireDeployment(d))
	return wireDeployment(d), nil
}

// Result closes an open deployment. Success counts only with the image's SHA256: a
// success report with another digest is recorded as a failure. The board keeps its
// name either way; only a verified result marks it deployed and counts toward its
// batch. Sending the same result again is harmless; a different one for a closed
// deployment is a conflict. secret must be the deployment's (ErrSecret otherwise)
// and r.Serial its board's. A failure before the board received the whole image
// releases the pool name it was given (see releaseUnstreamed).
func (s *Service) Result(ctx context.Context, id int64, secret string, r agentapi.Result) (mgmtapi.Deployment, error) {
	serial, err := agentapi.NormalizeSerial(r.Serial)
	if err != nil {
		return mgmtapi.Deployment{}, invalid("serial", "%v", err)
	}
	if !r.Success && r.Error == "" {
		return mgmtapi.Deployment{}, invalid("error", "a failure needs an error")
	}
	if r.Success && r.SHA256 == "" {
		return mgmtapi.Deployment{}, invalid("sha256", "a success needs the measured sha256")
	}
	if len(r.Error) > 4000 {
		r.Error = r.Error[:4000]
	}
	var out resultOutcome
	err = s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		out, err = s.finish(ctx, t, id, secret, serial, r)
		out.batchOrd = s.batchOrder()
		return err
	})
	if err != nil {
		return mgmtapi.Deployment{}, err
	}
	d := out.d
	if out.again {
		return wireDeployment(d), nil
	}
	s.log.Info("deployment finished", "deployment", id, "serial", d.Serial, "hostname", d.Hostname, "state", d.State, "error", d.Error)
	s.publish(events.DeploymentFinished, wireDeployment(d))
	s.publish(events.BoardChanged, wireBoard(out.board))
	if out.batch != nil {
		b := wireBatch(*out.batch)
		s.publishBatch(ctx, b.ID, &b, out.batchOrd)
	} else {
		s.publishBatch(ctx, d.BatchID, nil, out.batchOrd)
	}
	return wireDeployment(d), nil
}

// resultOutcome is what one result transaction did.
type resultOutcome struct {
	d     store.Deployment // as stored afterwards
	board store.Board
	batch *store.Batch // the batch a verified card counted toward
	// batchOrd is the batchOrder of the change to d's batch (publishBatch).
	batchOrd int64
	again    bool // the same result for a closed deployment: nothing changed
}

// finish records result r of deployment id in its transaction (see Result).
func (s *Service) finish(ctx context.Context, t *store.Tx, id int64, secret, serial string, r agentapi.Result) (resultOutcome, error) {
	var out resultOutcome
	d, err := t.Deployment(ctx, id)
	if err != nil {
		return out, fmt.Errorf("deployment %d: %w", id, err)
	}
	out.d = d
	served, err := checkSecret(ctx, t, id, secret)
	if err != nil {
		return out, err
	}
	if serial != d.Serial {
		return out, fmt.Errorf("deployment %d belongs to board %s, not %s: %w", id, d.Serial, serial, ErrConflict)
	}
	if d.State != store.DeployOpen {
		if (d.State == store.DeployVerified) == r.Success && d.State != store.DeployAbandoned {
			out.again = true
			return out, nil
		}
		return out, fmt.Errorf("deployment %d is already %s: %w", id, d.State, ErrConflict)
	}
	img, err := t.Image(ctx, d.Image)
	if err != nil {
		return out, fmt.Errorf("deployment %d image %q: %w", id, d.Image, err)
	}
	judge(&d, img, r)
	if err := t.Finish(ctx, d); err != nil {
		return out, err
	}
	if d.State == store.DeployFailed && !r.Success {
		if _, err := s.releaseUnstreamed(ctx, t, d, served >= img.CompressedSize); err != nil {
			return out, err
		}
	}
	if d.State == store.DeployVerified {
		if out.batch, err = countVerified(ctx, t, d); err != nil {
			return out, err
		}
	}
	if _, err := t.AddBoardEvent(ctx, store.BoardEvent{Serial: d.Serial, Kind: "deployment." + d.State,
		Detail: fmt.Sprintf("deployment %d %s %s %s", d.ID, d.Hostname, d.Image, d.Error), Site: s.opt.Site}); err != nil {
		return out, err
	}
	if out.d, err = t.Deployment(ctx, id); err != nil {
		return out, err
	}
	out.board, err = t.Board(ctx, d.Serial)
	return out, err
}

// judge sets the closing state of d from the agent's result: verified only when
// the measured SHA256 is the image's; a success with another digest is a failure
// in phase verifying.
func judge(d *store.Deployment, img store.Image, r agentapi.Result) {
	d.SHA256, d.BytesWritten, d.BytesFetched, d.DurationMS = strings.ToLower(r.SHA256), r.BytesWritten, r.BytesFetched, r.DurationMS
	switch {
	case r.Success && d.SHA256 == img.SHA256:
		d.State, d.Phase, d.Error, d.ErrorPhase = store.DeployVerified, agentapi.PhaseVerified, "", ""
	case r.Success:
		d.State, d.Phase, d.ErrorPhase = store.DeployFailed, agentapi.PhaseFailed, agentapi.PhaseVerifying
		d.Error = fmt.Sprintf("reported sha256 %s does not match image %q sha256 %s", d.SHA256, img.Name, img.SHA256)
	default:
		d.State, d.Phase, d.Error, d.ErrorPhase = store.DeployFailed, agentapi.PhaseFailed, r.Error, r.Phase
	}
}

// countVerified marks d's board deployed and counts d toward its batch, which is
// complete once Count boards are verified. It returns the batch (nil: none).
func countVerified(ctx context.Context, t *store.Tx, d store.Deployment) (*store.Batch, error) {
	if err := t.SetBoardDeployed(ctx, d.Serial, d.Hostname, d.Image); err != nil {
		return nil, err
	}
	if d.BatchID == 0 {
		return nil, nil
	}
	b, err := t.Batch(ctx, d.BatchID)
	if err != nil {
		return nil, err
	}
	b.Done++
	if b.Count > 0 && b.Done >= b.Count && (b.State == store.BatchActive || b.State == store.BatchPaused) {
		b.State = store.BatchComplete
	}
	return &b, t.UpdateBatch(ctx, b)
}
