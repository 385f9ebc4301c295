package domain

import (
	"context"
	"fmt"

	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// SwarmMember returns deployment id when secret is its deployment secret and the
// deployment may take part in its image's swarm: open (its board is flashing) or
// verified (its board may keep serving pieces). Others get ErrConflict; a wrong
// secret ErrSecret.
func (s *Service) SwarmMember(ctx context.Context, id int64, secret string) (store.Deployment, error) {
	var d store.Deployment
	err := s.st.Update(ctx, func(t *store.Tx) error {
		if _, err := checkSecret(ctx, t, id, secret); err != nil {
			return err
		}
		var err error
		d, err = t.Deployment(ctx, id)
		return err
	})
	if err != nil {
		return store.Deployment{}, err
	}
	if d.State != store.DeployOpen && d.State != store.DeployVerified {
		return store.Deployment{}, fmt.Errorf("deployment %d is %s: not in a swarm: %w", id, d.State, ErrConflict)
	}
	return d, nil
}
