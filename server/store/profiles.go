package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Profile is a stored first-boot profile. Spec is server/profile.Profile as JSON:
// it holds the password hash and the derived Wi-Fi PSK, so it must not be shown
// as it is (profile.Redact).
type Profile struct {
	Name      string
	Spec      string
	CreatedAt string
	UpdatedAt string
}

// Scopes a profile attaches to, lowest first: the order profiles merge in.
const (
	ScopeProduct = "product"
	ScopeVenue   = "venue"
	ScopeBatch   = "batch"
)

// ProfileLink attaches a profile to a product, venue or batch.
type ProfileLink struct {
	Scope   string
	Target  string // product or venue code, or batch ID
	Profile string
}

func scanProfile(r scanner) (Profile, error) {
	var p Profile
	err := r.Scan(&p.Name, &p.Spec, &p.CreatedAt, &p.UpdatedAt)
	return p, err
}

const profileCols = `name, spec, created_at, updated_at`

// Profiles lists the profiles by name.
func (s *Store) Profiles(ctx context.Context) ([]Profile, error) {
	return collect(ctx, s.r, scanProfile, `SELECT `+profileCols+` FROM profiles ORDER BY name`)
}

// Profile returns one profile.
func (s *Store) Profile(ctx context.Context, name string) (Profile, error) {
	return one(ctx, s.r, scanProfile, `SELECT `+profileCols+` FROM profiles WHERE name = ?`, name)
}

// Profile returns one profile inside the transaction.
func (t *Tx) Profile(ctx context.Context, name string) (Profile, error) {
	return one(ctx, t.tx, scanProfile, `SELECT `+profileCols+` FROM profiles WHERE name = ?`, name)
}

// PutProfile creates or replaces a profile's spec.
func (t *Tx) PutProfile(ctx context.Context, name, spec string) error {
	now := t.nowText()
	_, err := t.tx.ExecContext(ctx, `INSERT INTO profiles (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at`, name, spec, now, now)
	if err != nil {
		return fmt.Errorf("put profile %q: %w", name, err)
	}
	return nil
}

// DeleteProfile removes a profile that is attached to nothing.
func (t *Tx) DeleteProfile(ctx context.Context, name string) error {
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM profile_links WHERE profile = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("profile %q is attached to %d products, venues or batches: %w", name, n, ErrConflict)
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM profiles WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// ProfileLinks lists every attachment.
func (s *Store) ProfileLinks(ctx context.Context) ([]ProfileLink, error) {
	return collect(ctx, s.r, func(r scanner) (ProfileLink, error) {
		var l ProfileLink
		err := r.Scan(&l.Scope, &l.Target, &l.Profile)
		return l, err
	}, `SELECT scope, target, profile FROM profile_links ORDER BY scope, target`)
}

// LinkedProfile returns the profile attached to scope and target, or ErrNotFound.
func (t *Tx) LinkedProfile(ctx context.Context, scope, target string) (Profile, error) {
	return one(ctx, t.tx, scanProfile, `SELECT `+profileCols+` FROM profiles
		WHERE name = (SELECT profile FROM profile_links WHERE scope = ? AND target = ?)`, scope, target)
}

// LinkedProfiles returns the profiles attached to product, venue and batch (""
// for none), in that order (the order they merge in), leaving out the scopes that
// have none: one query for the three LinkedProfile lookups of a new deployment.
func (t *Tx) LinkedProfiles(ctx context.Context, product, venue, batch string) ([]Profile, error) {
	rows, err := collect(ctx, t.tx, func(r scanner) (linkedProfile, error) {
		var l linkedProfile
		err := r.Scan(&l.scope, &l.p.Name, &l.p.Spec, &l.p.CreatedAt, &l.p.UpdatedAt)
		return l, err
	}, `SELECT l.scope, p.name, p.spec, p.created_at, p.updated_at FROM profile_links l JOIN profiles p ON p.name = l.profile
		WHERE (l.scope = ? AND l.target = ?) OR (l.scope = ? AND l.target = ?) OR (l.scope = ? AND l.target = ? AND ? != '')`,
		ScopeProduct, product, ScopeVenue, venue, ScopeBatch, batch, batch)
	if err != nil {
		return nil, err
	}
	var out []Profile
	for _, scope := range []string{ScopeProduct, ScopeVenue, ScopeBatch} {
		for _, l := range rows {
			if l.scope == scope {
				out = append(out, l.p)
			}
		}
	}
	return out, nil
}

// linkedProfile is a row of LinkedProfiles: a profile and the scope it is attached to.
type linkedProfile struct {
	scope string
	p     Profile
}

// LinkProfile attaches profile to scope and target, replacing what was attached.
func (t *Tx) LinkProfile(ctx context.Context, l ProfileLink) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO profile_links (scope, target, profile) VALUES (?, ?, ?)
		ON CONFLICT (scope, target) DO UPDATE SET profile = excluded.profile`, l.Scope, l.Target, l.Profile)
	if err != nil {
		return fmt.Errorf("attach profile %q to %s %s: %w", l.Profile, l.Scope, l.Target, err)
	}
	return nil
}

// UnlinkProfile detaches whatever profile is attached to scope and target.
func (t *Tx) UnlinkProfile(ctx context.Context, scope, target string) error {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM profile_links WHERE scope = ? AND target = ?`, scope, target)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetDeploymentProfile records the effective profile of a deployment.
func (t *Tx) SetDeploymentProfile(ctx context.Context, id int64, spec string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO deployment_profiles (deployment_id, spec) VALUES (?, ?)
		ON CONFLICT (deployment_id) DO UPDATE SET spec = excluded.spec`, id, spec)
	return err
}

// DeploymentProfile returns the effective profile recorded with a deployment, ""
// when it has none.
func (t *Tx) DeploymentProfile(ctx context.Context, id int64) (string, error) {
	return deploymentProfile(ctx, t.tx, id)
}

// DeploymentProfile returns the effective profile recorded with a deployment, ""
// when it has none.
func (s *Store) DeploymentProfile(ctx context.Context, id int64) (string, error) {
	return deploymentProfile(ctx, s.r, id)
}

func deploymentProfile(ctx context.Context, q querier, id int64) (string, error) {
	var spec string
	err := q.QueryRowContext(ctx, `SELECT spec FROM deployment_profiles WHERE deployment_id = ?`, id).Scan(&spec)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return spec, err
}
