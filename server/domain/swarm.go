package domain

import (
	"context"
	"fmt"
	"slices"

	"github.com/rpi-deploy/rpi-deploy/server/events"
	"github.com/rpi-deploy/rpi-deploy/server/mgmtapi"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// SwarmMember returns deployment id when secret is its deployment secret and the
// deployment may take part in its image's swarm: open (its board is flashing) or
// verified (its board may keep serving pieces). Others get ErrConflict; a wrong
// secret ErrSecret. fromPeers (nil: none), given the deployment's image, is how many
// compressed image bytes the board received from other boards so far, as far as the
// server believes it; it is recorded for an open deployment, so that a failure after
// most bytes came from peers keeps the board's name as one after the server served
// them all does (releaseUnstreamed).
func (s *Service) SwarmMember(ctx context.Context, id int64, secret string, fromPeers func(image string) int64) (store.Deployment, error) {
	var d store.Deployment
	err := s.st.Update(ctx, func(t *store.Tx) error {
		if _, err := checkSecret(ctx, t, id, secret); err != nil {
			return err
		}
		var err error
		if d, err = t.Deployment(ctx, id); err != nil {
			return err
		}
		if fromPeers == nil || d.State != store.DeployOpen {
			return nil
		}
		if n := fromPeers(d.Image); n > 0 {
			return t.SetPeerBytes(ctx, id, n)
		}
		return nil
	})
	if err != nil {
		return store.Deployment{}, err
	}
	if d.State != store.DeployOpen && d.State != store.DeployVerified {
		return store.Deployment{}, fmt.Errorf("deployment %d is %s: not in a swarm: %w", id, d.State, ErrConflict)
	}
	return d, nil
}

// validP2P checks a peer-to-peer mode: "on", "off" or "inherit".
func validP2P(mode string) error {
	if !slices.Contains(mgmtapi.P2PModes, mode) {
		return invalid("p2p", "p2p %q: want on, off or inherit", mode)
	}
	return nil
}

// SetImageP2P sets image name's peer-to-peer mode (on, off or inherit: the server's
// --p2p decides); a batch's own mode, unless it inherits, goes before it.
func (s *Service) SetImageP2P(ctx context.Context, name, mode string) (mgmtapi.Image, error) {
	if err := validP2P(mode); err != nil {
		return mgmtapi.Image{}, err
	}
	return change(ctx, s, events.ImageChanged, func(t *store.Tx) (auditLine, error) {
		if err := t.SetImageP2P(ctx, name, mode); err != nil {
			return auditLine{}, fmt.Errorf("image %q: %w", name, err)
		}
		return auditLine{"image.p2p", name, "p2p " + mode}, nil
	}, func(t *store.Tx) (store.Image, error) { return t.Image(ctx, name) }, wireImage)
}

// SetBatchP2P sets batch id's peer-to-peer mode (on, off or inherit: its image's
// mode decides, else the server's --p2p). It applies to the hellos that follow.
func (s *Service) SetBatchP2P(ctx context.Context, id int64, mode string) (mgmtapi.Batch, error) {
	if err := validP2P(mode); err != nil {
		return mgmtapi.Batch{}, err
	}
	return change(ctx, s, events.BatchChanged, func(t *store.Tx) (auditLine, error) {
		if err := t.SetBatchP2P(ctx, id, mode); err != nil {
			return auditLine{}, fmt.Errorf("batch %d: %w", id, err)
		}
		return auditLine{"batch.p2p", fmt.Sprint(id), "p2p " + mode}, nil
	}, func(t *store.Tx) (store.Batch, error) { return t.Batch(ctx, id) }, wireBatch)
}

// P2PFor reports whether deployment id's board is invited into its image's swarm:
// its batch's mode unless that inherits, else its image's unless that inherits, else
// def (rpi-deployd --p2p).
func (s *Service) P2PFor(ctx context.Context, id int64, def bool) (bool, error) {
	batch, image, err := s.st.DeploymentP2P(ctx, id)
	if err != nil {
		return false, fmt.Errorf("deployment %d: %w", id, err)
	}
	return resolveP2P(batch, image, def), nil
}

// P2PModes are the peer-to-peer modes of a new deployment's batch ("" outside any
// batch) and image as its allocation read them (HelloP2P); Known is false when the
// hello opened no deployment, and P2PFor tells.
type P2PModes struct {
	Batch, Image string
	Known        bool
}

// On is what P2PFor would answer for these modes and def.
func (m P2PModes) On(def bool) bool { return resolveP2P(m.Batch, m.Image, def) }

// resolveP2P is the mode that decides: the batch's, else the image's, else def.
func resolveP2P(batch, image string, def bool) bool {
	for _, m := range []string{batch, image} {
		switch m {
		case "on":
			return true
		case "off":
			return false
		}
	}
	return def
}
