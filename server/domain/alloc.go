package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rpi-deploy/rpi-deploy/agent/agentapi"
	"github.com/rpi-deploy/rpi-deploy/server/profile"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Allocation: which batch a board joins, which name it gets (the next free name of
// the venue's pool, or one made from its serial) and the deployment that binds the
// two. It all happens inside the hello's one IMMEDIATE transaction, so two boards
// never get the same name and a board that asks again gets its own back.

// allocateHello opens a deployment for the board of in from the first batch that
// can take it (see candidateBatches), or answers retry with every batch's reason.
// last is the board's most recent deployment (nil: it never had one).
func (s *Service) allocateHello(ctx context.Context, t *store.Tx, in hello, out helloOutcome, last *store.Deployment) (helloOutcome, error) {
	batches, err := candidateBatches(ctx, t, out.batches, last, out.board.Reimage)
	if err != nil {
		return out, err
	}
	if len(batches) == 0 {
		out.resp = s.retry("no active batch has room")
		return out, nil
	}
	var reasons []string
	for _, hb := range batches {
		bt := hb.Batch
		a, why, err := s.allocate(ctx, t, hb, in, out.board, out.profiles, out.name)
		if err != nil {
			return out, err
		}
		if why != "" {
			if bt.ID == 0 {
				reasons = append(reasons, "re-image: "+why)
			} else {
				reasons = append(reasons, fmt.Sprintf("batch %d: %s", bt.ID, why))
			}
			continue
		}
		// Only the deployment outlives the hello's transaction: a copy of its own
		// goes to the heap, not the whole allocation (about 1.2 KB).
		created := a.d
		out.created, out.batchID = &created, bt.ID
		if bt.ID != 0 {
			// The batch as this transaction leaves it: as HelloBatches gave it (the
			// row as the transaction stood), with the deployment AddClaimedDeployment
			// counted in it.
			bt.InFlight++
			out.batch, out.batchOrd = wireBatch(bt), s.batchOrder()
		}
		out.p2p = P2PModes{Batch: bt.P2P, Image: a.img.P2P, Known: true}
		out.board, out.saved = a.board, true
		if out.resp, err = deployResponseWith(a.d, a.img, a.product, s.opt.After); err != nil {
			return out, err
		}
		out.resp.Deployment.Secret = secretOf(a.d.ID, in.key)
		if a.hasProfile {
			err = renderProfile(&out.resp, a.profile, a.d, a.img)
		}
		return out, err
	}
	out.resp = s.retry(strings.Join(reasons, "; "))
	return out, nil
}

// candidateBatches lists the batches a board may join, best first: the active
// batches by priority; a board flagged for re-imaging first of all re-imaged where
// it was, under its name, with the product's active image, outside any batch (ID
// 0); a board whose last deployment failed back in its batch if it can. last is
// the board's most recent deployment (nil: none). batches are the active batches
// as the hello read them (store.Tx.HelloBatches, its own copy: reordered here), each
// with its product and image head, read with the batches in one statement.
func candidateBatches(ctx context.Context, t *store.Tx, batches []store.HelloBatch, last *store.Deployment,
	reimage bool) ([]store.HelloBatch, error) {
	if last == nil {
		return batches, nil
	}
	if reimage {
		re := store.HelloBatch{Batch: store.Batch{Venue: last.Venue, Product: last.Product}, ProductKnown: true}
		var err error
		re.Product, re.Image, re.ImageFound, err = t.ProductImageHead(ctx, last.Product, "")
		if errors.Is(err, store.ErrNotFound) {
			re.ProductKnown, err = false, nil
		}
		if err != nil {
			return nil, err
		}
		return append([]store.HelloBatch{re}, batches...), nil
	}
	if last.BatchID != 0 {
		for i, bt := range batches {
			if bt.ID == last.BatchID {
				batches[0], batches[i] = batches[i], batches[0]
				break
			}
		}
	}
	return batches, nil
}

// allocation is a deployment just opened, with what its answer is made of.
type allocation struct {
	d          store.Deployment
	board      store.Board // the board as written with d
	img        store.Image
	product    store.Product
	profile    profile.Profile // the effective first-boot profile recorded with d
	hasProfile bool
}

// allocate tries to open a deployment for the board b of hello in in batch bt,
// with the hash of in's secret key and in's source recorded. A non-empty reason
// says why it cannot (no image, pool exhausted) without being an error. b is the
// board as the hello leaves it, not yet written: allocate writes it, with the name
// it gets and its card no longer deployed, before the deployment (which references
// it). Board and deployment are returned as stored, not read back. profiles is
// whether any profile is attached to anything (store.HelloFacts.Profiles): when
// not, the deployment's profile is not looked up. checked is a name already checked
// in the hello's transaction.
func (s *Service) allocate(ctx context.Context, t *store.Tx, hb store.HelloBatch, in hello, b store.Board, profiles bool,
	checked nameCheck) (a allocation, reason string, err error) {
	bt := hb.Batch
	if !hb.ProductKnown {
		return a, "", fmt.Errorf("product %q: %w", bt.Product, store.ErrNotFound)
	}
	a.product, a.img = hb.Product, hb.Image
	found := hb.ImageFound
	imgName := bt.Image
	if imgName == "" {
		imgName = a.product.Image
	}
	if imgName == "" {
		return a, fmt.Sprintf("product %s has no active image", a.product.Code), nil
	}
	if !found || a.img.State != store.ImageReady {
		return a, fmt.Sprintf("image %q is not ready", imgName), nil
	}
	if !s.isLocal(a.img) {
		if why, err := s.imageHere(ctx, t, a.img); err != nil || why != "" {
			return a, why, err
		}
	}
	hostname, reason, err := s.hostnameFor(ctx, t, a.product, bt.Venue, b, checked)
	if err != nil || reason != "" {
		return a, reason, err
	}
	// The card is about to be overwritten: until a verified result it holds nothing.
	b.Hostname, b.Deployed = hostname, false
	if a.board, err = t.SaveBoard(ctx, b); err != nil {
		return a, "", err
	}
	a.d, err = t.AddClaimedDeployment(ctx, store.Deployment{Serial: b.Serial, MAC: b.MAC, BatchID: bt.ID, Venue: bt.Venue,
		Product: a.product.Code, Hostname: hostname, Image: a.img.Name, Phase: agentapi.PhaseHello, Total: a.img.Size,
		Site: s.opt.Site}, in.keyHash, in.source)
	if err != nil {
		return a, "", err
	}
	if !profiles {
		return a, "", nil // no profile attached anywhere: none to record
	}
	a.profile, a.hasProfile, err = recordProfile(ctx, t, a.d.ID, a.product.Code, bt.Venue, bt.ID)
	return a, "", err
}

// hostnameFor is the name board b of product p gets at venue: from the venue's pool
// (the one it holds, or the next free one) or from its serial. A non-empty reason
// says why there is none (the pool is exhausted). checked is a name already checked
// in the transaction.
func (s *Service) hostnameFor(ctx context.Context, t *store.Tx, p store.Product, venue string, b store.Board,
	checked nameCheck) (name, reason string, err error) {
	serial := b.Serial
	switch p.Naming {
	case store.NamingSerial:
		name, err = s.uniqueSerialHostname(ctx, t, p.Code, venue, b, checked)
		return name, "", err
	case store.NamingPool:
		n, err := t.HeldName(ctx, venue, p.Code, serial)
		if errors.Is(err, store.ErrNotFound) {
			n, err = t.BindNextName(ctx, venue, p.Code, serial)
			if errors.Is(err, store.ErrNotFound) {
				return "", fmt.Sprintf("pool %s/%s has no free name", venue, p.Code), nil
			}
		}
		return n.Name, "", err
	}
	return "", "", fmt.Errorf("product %q: unknown naming %q", p.Code, p.Naming)
}

// serialHostname is PRODUCT-VENUE- and the low digits hex digits of the serial
// (normalised: lower-case hex), upper-case. It runs in the writer for every new
// board's hello: concatenated, not formatted.
func serialHostname(product, venue, serial string, digits int) string {
	s := strings.ToUpper(serial)
	if len(s) > digits {
		s = s[len(s)-digits:]
	}
	return product + "-" + venue + "-" + s
}

// uniqueSerialHostname is the board's serial name, made unique: the low 8 hex digits
// of the serial, or, when another board holds that name (two serials alike in their
// low 32 bits), the low 12, then all 16, which no other board can share. A board
// keeps the candidate it holds while no other board holds it too. b is the board as
// its transaction left it (its hostname is the one it holds). The answer for
// checked.name, read with the hello's facts, is not asked again.
func (s *Service) uniqueSerialHostname(ctx context.Context, t *store.Tx, product, venue string, b store.Board,
	checked nameCheck) (string, error) {
	serial := b.Serial
	// The candidates, made when first needed: a new board (no hostname) whose low
	// 8 digits are free needs only the first.
	var candidates [3]string
	candidate := func(i int) string {
		if candidates[i] == "" {
			candidates[i] = serialHostname(product, venue, serial, [3]int{8, 12, 16}[i])
		}
		return candidates[i]
	}
	taken := func(c string) (bool, error) {
		if c == checked.name {
			return checked.taken, nil
		}
		return t.HostnameTaken(ctx, c, serial)
	}
	for i := range 2 {
		if b.Hostname == "" || b.Hostname != candidate(i) {
			continue
		}
		if tk, err := taken(candidate(i)); err != nil || !tk {
			return candidate(i), err
		}
	}
	for i := range 2 {
		if tk, err := taken(candidate(i)); err != nil || !tk {
			return candidate(i), err
		}
	}
	return candidate(2), nil
}

// PoolHostname is the name with sequence number seq in a pool: PRODUCT-VENUE-NNN.
func PoolHostname(product, venue string, digits, seq int) string {
	if digits <= 0 {
		digits = 3
	}
	return fmt.Sprintf("%s-%s-%0*d", product, venue, digits, seq)
}
