package domain

import (
	"context"
	"fmt"

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
