package domain

import (
	"context"
	"encoding/json"
	"errors"
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

// Hello answers a board's hello: its open deployment if it has one, boot-local if
// its card already holds a verified image (and no re-image is asked for), a new
// deployment from the best active batch, or retry. Input is checked before anything
// is written; a bad serial or MAC leaves no row behind. Image URLs in the answer are
// paths relative to the server. A deploy answer carries a fresh deployment secret
// (a re-hello replaces the previous one). The source address of ctx (WithSource)
// is held to NewSerialsPerMinute and MaxOpenPerSource; answers over those limits
// are held OverLimitDelay.
func (s *Service) Hello(ctx context.Context, h agentapi.Hello) (agentapi.HelloResponse, error) {
	serial, err := agentapi.NormalizeSerial(h.Serial)
	if err != nil {
		return agentapi.HelloResponse{}, invalid("serial", "%v", err)
	}
	mac, err := agentapi.NormalizeMAC(h.MAC)
	if err != nil {
		return agentapi.HelloResponse{}, invalid("mac", "%v", err)
	}
	if h.Disk.SizeBytes < 0 {
		return agentapi.HelloResponse{}, invalid("disk.size_bytes", "disk size %d is negative", h.Disk.SizeBytes)
	}
	for _, f := range []struct{ name, v string }{{"model", h.Model}, {"revision", h.Revision}, {"agent_version", h.AgentVersion}, {"ip", h.IP}, {"disk.device", h.Disk.Device}, {"disk.cid", h.Disk.CID}} {
		if len(f.v) > 200 {
			return agentapi.HelloResponse{}, invalid(f.name, "%s is longer than 200 bytes", f.name)
		}
	}

	source := sourceOf(ctx)
	var (
		decide    func(t *store.Tx) error
		resp      agentapi.HelloResponse
		created   *store.Deployment
		board     store.Board
		retryNote string
		batch     *store.Batch
		limited   bool // the source is over its open-deployment limit
	)
	retry := func(reason string) error {
		retryNote = reason
		resp = agentapi.HelloResponse{Action: agentapi.ActionRetry, Reason: reason, RetryAfterMS: s.opt.RetryAfter.Milliseconds()}
		return nil
	}
	// A serial never seen before costs its source a token: random serials cannot
	// flood the boards table or the pools faster than the limit. Checked on the
	// reader before the write transaction, so that a flood over its budget does not
	// queue for the writer.
	if _, err := s.st.Board(ctx, serial); errors.Is(err, store.ErrNotFound) {
		if !s.newSerials.allow(source, s.now()) {
			s.log.Debug("new serial over its source's limit", "serial", serial, "source", source)
			s.overLimit(ctx)
			return agentapi.HelloResponse{Action: agentapi.ActionRetry, RetryAfterMS: s.opt.RetryAfter.Milliseconds(),
				Reason: fmt.Sprintf("too many new boards from %s (limit %d a minute)", source, s.opt.NewSerialsPerMinute)}, nil
		}
	} else if err != nil {
		return agentapi.HelloResponse{}, err
	}
	// decide picks the answer, inside the transaction below.
	decide = func(t *store.Tx) error {
		resp, created, batch, retryNote, limited = agentapi.HelloResponse{}, nil, nil, "", false
		b, err := t.SeeBoardReturning(ctx, store.Board{Serial: serial, MAC: mac, Model: h.Model, Revision: h.Revision, IP: h.IP,
			LastEvent: "hello"})
		if err != nil {
			return err
		}
		board = b
		// The same board again while its deployment is open: the same answer.
		if d, err := t.OpenDeployment(ctx, serial); err == nil {
			if err := t.Touch(ctx, d.ID); err != nil {
				return err
			}
			// Only the secret's hash is stored: the board (which may have rebooted and
			// lost it) gets a new one, and the old one stops working.
			secret, hash := newSecret()
			if err := t.SetDeploymentSecret(ctx, d.ID, hash); err != nil {
				return err
			}
			resp, err = s.deployResponse(ctx, t, d)
			if resp.Deployment != nil {
				resp.Deployment.Secret = secret
			}
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if b.Deployed && !b.Reimage {
			resp = agentapi.HelloResponse{Action: agentapi.ActionBootLocal,
				Reason: fmt.Sprintf("card holds verified image %q as %s", b.Image, b.Hostname)}
			return nil
		}
		if source != "" && s.opt.MaxOpenPerSource > 0 {
			n, err := t.CountOpenFromSource(ctx, source, s.opt.MaxOpenPerSource)
			if err != nil {
				return err
			}
			if n >= s.opt.MaxOpenPerSource {
				limited = true
				return retry(fmt.Sprintf("%d deployments open from %s, the limit is %d", n, source, s.opt.MaxOpenPerSource))
			}
		}
		open, err := t.CountSlots(ctx, store.FormatTime(t.Now.Add(-s.opt.ClaimWindow)), store.FormatTime(t.Now.Add(-s.opt.StaleAfter)),
			s.opt.MaxStreams)
		if err != nil {
			return err
		}
		if open >= s.opt.MaxStreams {
			return retry(fmt.Sprintf("%d boards streaming, the limit is %d", open, s.opt.MaxStreams))
		}
		batches, err := t.OpenBatches(ctx)
		if err != nil {
			return err
		}
		last, lastErr := t.LastDeployment(ctx, serial)
		if lastErr != nil && !errors.Is(lastErr, store.ErrNotFound) {
			return lastErr
		}
		// A board flagged for re-imaging is re-imaged where it was, under its name,
		// with the product's active image, outside any batch.
		if b.Reimage && lastErr == nil {
			batches = append([]store.Batch{{Venue: last.Venue, Product: last.Product}}, batches...)
		}
		if len(batches) == 0 {
			return retry("no active batch has room")
		}
		// A board whose last deployment failed goes back to its batch if it can.
		if lastErr == nil && last.BatchID != 0 && !b.Reimage {
			for i, bt := range batches {
				if bt.ID == last.BatchID {
					batches[0], batches[i] = batches[i], batches[0]
					break
				}
			}
		}
		var reasons []string
		for _, bt := range batches {
			d, img, p, why, err := s.allocate(ctx, t, bt, serial)
			if err != nil {
				return err
			}
			if why != "" {
				if bt.ID == 0 {
					reasons = append(reasons, "re-image: "+why)
				} else {
					reasons = append(reasons, fmt.Sprintf("batch %d: %s", bt.ID, why))
				}
				continue
			}
			created, batch = &d, &bt
			// The card is about to be overwritten: until a verified result it holds nothing.
			if err := t.SetBoardAllocated(ctx, serial, d.Hostname); err != nil {
				return err
			}
			board.Hostname, board.Deployed = d.Hostname, false
			secret, hash := newSecret()
			if err := t.SetDeploymentClaim(ctx, d.ID, hash, source); err != nil {
				return err
			}
			if resp, err = deployResponseWith(d, img, p, s.opt.After); err != nil {
				return err
			}
			if resp.Deployment != nil {
				resp.Deployment.Secret = secret
			}
			return applyProfile(ctx, t, &resp, d, img)
		}
		return retry(strings.Join(reasons, "; "))
	}
	err = s.st.Update(ctx, func(t *store.Tx) error {
		if err := decide(t); err != nil {
			return err
		}
		// Retries are not history (a waiting board asks every few seconds): the
		// board's last_event says why it waits.
		if resp.Action == agentapi.ActionRetry {
			return t.SetBoardLastEvent(ctx, serial, "retry: "+resp.Reason)
		}
		detail := fmt.Sprintf("%s; agent %s, disk %s %d bytes", resp.Action, h.AgentVersion, h.Disk.Device, h.Disk.SizeBytes)
		if resp.Deployment != nil {
			detail = fmt.Sprintf("deploy %d as %s; agent %s, disk %s %d bytes", resp.Deployment.ID, resp.Deployment.Hostname,
				h.AgentVersion, h.Disk.Device, h.Disk.SizeBytes)
		}
		_, err := t.AddBoardEvent(ctx, store.BoardEvent{Serial: serial, MAC: mac, Kind: "agent.hello", Detail: detail})
		return err
	})
	if err != nil {
		return agentapi.HelloResponse{}, err
	}
	if limited {
		s.overLimit(ctx) // after the commit: the writer is not held
	}
	s.publish(events.BoardChanged, wireBoard(board))
	switch {
	case created != nil:
		s.log.Info("deployment created", "deployment", created.ID, "serial", serial, "mac", mac, "hostname", created.Hostname,
			"batch", created.BatchID, "image", created.Image)
		s.publish(events.DeploymentCreated, wireDeployment(*created))
		s.publishBatch(ctx, batch.ID)
	case retryNote != "":
		s.publish(events.HelloRetry, map[string]string{"serial": serial, "mac": mac, "reason": retryNote})
	}
	return resp, nil
}

// allocate tries to open a deployment for serial in batch bt. A non-empty reason
// says why it cannot (no image, pool exhausted) without being an error.
func (s *Service) allocate(ctx context.Context, t *store.Tx, bt store.Batch, serial string) (d store.Deployment, img store.Image, p store.Product, reason string, err error) {
	p, err = t.Product(ctx, bt.Product)
	if err != nil {
		return d, img, p, "", fmt.Errorf("product %q: %w", bt.Product, err)
	}
	imgName := bt.Image
	if imgName == "" {
		imgName = p.Image
	}
	if imgName == "" {
		return d, img, p, fmt.Sprintf("product %s has no active image", p.Code), nil
	}
	img, err = t.Image(ctx, imgName)
	if errors.Is(err, store.ErrNotFound) || (err == nil && img.State != store.ImageReady) {
		return d, img, p, fmt.Sprintf("image %q is not ready", imgName), nil
	}
	if err != nil {
		return d, img, p, "", err
	}
	var hostname string
	switch p.Naming {
	case store.NamingSerial:
		if hostname, err = s.uniqueSerialHostname(ctx, t, p.Code, bt.Venue, serial); err != nil {
			return d, img, p, "", err
		}
	case store.NamingPool:
		n, err := t.HeldName(ctx, bt.Venue, p.Code, serial)
		if errors.Is(err, store.ErrNotFound) {
			n, err = t.BindNextName(ctx, bt.Venue, p.Code, serial)
			if errors.Is(err, store.ErrNotFound) {
				return d, img, p, fmt.Sprintf("pool %s/%s has no free name", bt.Venue, p.Code), nil
			}
		}
		if err != nil {
			return d, img, p, "", err
		}
		hostname = n.Name
	default:
		return d, img, p, "", fmt.Errorf("product %q: unknown naming %q", p.Code, p.Naming)
	}
	d = store.Deployment{Serial: serial, BatchID: bt.ID, Venue: bt.Venue, Product: p.Code, Hostname: hostname,
		Image: img.Name, Phase: agentapi.PhaseHello, Total: img.Size}
	id, err := t.AddDeployment(ctx, d)
	if err != nil {
		return d, img, p, "", err
	}
	if err := recordProfile(ctx, t, id, p.Code, bt.Venue, bt.ID); err != nil {
		return d, img, p, "", err
	}
	d, err = t.Deployment(ctx, id)
	return d, img, p, "", err
}

// SerialHostname is the name of a serial-named product's board: PRODUCT-VENUE- and
// the low 8 hex digits of the serial in upper case.
func SerialHostname(product, venue, serial string) string {
	return serialHostname(product, venue, serial, 8)
}

// serialHostname is PRODUCT-VENUE- and the low digits hex digits of the serial.
func serialHostname(product, venue, serial string, digits int) string {
	s := strings.ToUpper(serial)
	if len(s) > digits {
		s = s[len(s)-digits:]
	}
	return fmt.Sprintf("%s-%s-%s", product, venue, s)
}

// uniqueSerialHostname is the board's serial name, made unique: the low 8 hex digits
// of the serial, or, when another board holds that name (two serials alike in their
// low 32 bits), the low 12, then all 16, which no other board can share. A board
// keeps the candidate it holds while no other board holds it too.
func (s *Service) uniqueSerialHostname(ctx context.Context, t *store.Tx, product, venue, serial string) (string, error) {
	b, err := t.Board(ctx, serial)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	candidates := []string{serialHostname(product, venue, serial, 8), serialHostname(product, venue, serial, 12),
		serialHostname(product, venue, serial, 16)}
	taken := func(c string) (bool, error) { return t.HostnameTaken(ctx, c, serial) }
	for _, c := range candidates[:2] {
		if b.Hostname != c {
			continue
		}
		if tk, err := taken(c); err != nil || !tk {
			return c, err
		}
	}
	for _, c := range candidates[:2] {
		if tk, err := taken(c); err != nil || !tk {
			return c, err
		}
	}
	return candidates[2], nil
}

// PoolHostname is the name with sequence number seq in a pool: PRODUCT-VENUE-NNN.
func PoolHostname(product, venue string, digits, seq int) string {
	if digits <= 0 {
		digits = 3
	}
	return fmt.Sprintf("%s-%s-%0*d", product, venue, digits, seq)
}

func (s *Service) deployResponse(ctx context.Context, t *store.Tx, d store.Deployment) (agentapi.HelloResponse, error) {
	img, err := t.Image(ctx, d.Image)
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
	var (
		d     store.Deployment
		board store.Board
		bt    *store.Batch
		again bool
	)
	err = s.st.Update(ctx, func(t *store.Tx) error {
		var err error
		bt, again = nil, false
		d, err = t.Deployment(ctx, id)
		if err != nil {
			return fmt.Errorf("deployment %d: %w", id, err)
		}
		served, err := checkSecret(ctx, t, id, secret)
		if err != nil {
			return err
		}
		if serial != d.Serial {
			return fmt.Errorf("deployment %d belongs to board %s, not %s: %w", id, d.Serial, serial, ErrConflict)
		}
		if d.State != store.DeployOpen {
			if (d.State == store.DeployVerified) == r.Success && d.State != store.DeployAbandoned {
				again = true
				return nil
			}
			return fmt.Errorf("deployment %d is already %s: %w", id, d.State, ErrConflict)
		}
		img, err := t.Image(ctx, d.Image)
		if err != nil {
			return fmt.Errorf("deployment %d image %q: %w", id, d.Image, err)
		}
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
		if err := t.Finish(ctx, d); err != nil {
			return err
		}
		if d.State == store.DeployFailed && !r.Success {
			if _, err := s.releaseUnstreamed(ctx, t, d, served >= img.CompressedSize); err != nil {
				return err
			}
		}
		if d.State == store.DeployVerified {
			if err := t.SetBoardDeployed(ctx, d.Serial, d.Hostname, d.Image); err != nil {
				return err
			}
			if d.BatchID != 0 {
				b, err := t.Batch(ctx, d.BatchID)
				if err != nil {
					return err
				}
				b.Done++
				if b.Count > 0 && b.Done >= b.Count && (b.State == store.BatchActive || b.State == store.BatchPaused) {
					b.State = store.BatchComplete
				}
				if err := t.UpdateBatch(ctx, b); err != nil {
					return err
				}
				bt = &b
			}
		}
		if _, err := t.AddBoardEvent(ctx, store.BoardEvent{Serial: d.Serial, Kind: "deployment." + d.State,
			Detail: fmt.Sprintf("deployment %d %s %s %s", d.ID, d.Hostname, d.Image, d.Error)}); err != nil {
			return err
		}
		if d, err = t.Deployment(ctx, id); err != nil {
			return err
		}
		board, err = t.Board(ctx, d.Serial)
		return err
	})
	if err != nil {
		return mgmtapi.Deployment{}, err
	}
	if again {
		return wireDeployment(d), nil
	}
	s.log.Info("deployment finished", "deployment", id, "serial", d.Serial, "hostname", d.Hostname, "state", d.State, "error", d.Error)
	s.publish(events.DeploymentFinished, wireDeployment(d))
	s.publish(events.BoardChanged, wireBoard(board))
	if bt != nil {
		s.publish(events.BatchChanged, wireBatch(*bt))
	} else {
		s.publishBatch(ctx, d.BatchID)
	}
	return wireDeployment(d), nil
}
