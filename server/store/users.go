package store

import (
	"context"
	"fmt"
)

// User is an operator who can log in to the dashboard.
type User struct {
	Name      string
	Password  string // encoded hash
	CreatedAt string
}

func scanUser(r scanner) (User, error) {
	var u User
	err := r.Scan(&u.Name, &u.Password, &u.CreatedAt)
	return u, err
}

// Users lists users by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	return collect(ctx, s.r, scanUser, `SELECT name, password, created_at FROM users ORDER BY name`)
}

// User returns one user.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	return one(ctx, s.r, scanUser, `SELECT name, password, created_at FROM users WHERE name = ?`, name)
}

// PutUser creates a user or replaces its password.
func (t *Tx) PutUser(ctx context.Context, name, hash string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO users (name, password, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET password = excluded.password`, name, hash, t.nowText())
	if err != nil {
		return fmt.Errorf("put user %q: %w", name, err)
	}
	return nil
}

// DeleteUser removes a user and its sessions.
func (t *Tx) DeleteUser(ctx context.Context, name string) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM sessions WHERE "user" = ?`, name); err != nil {
		return err
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// AddSession stores a login session by the SHA256 of its token.
func (t *Tx) AddSession(ctx context.Context, tokenSHA256, user, expires string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sessions (token_sha256, "user", created_at, expires_at) VALUES (?, ?, ?, ?)`,
		tokenSHA256, user, t.nowText(), expires)
	return err
}

// DeleteUserSessions ends every session of a user and returns how many there were.
func (t *Tx) DeleteUserSessions(ctx context.Context, user string) (int64, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM sessions WHERE "user" = ?`, user)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeleteSession ends a session.
func (t *Tx) DeleteSession(ctx context.Context, tokenSHA256 string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM sessions WHERE token_sha256 = ?`, tokenSHA256)
	return err
}

// SessionUser returns the user of an unexpired session, or ErrNotFound.
func (s *Store) SessionUser(ctx context.Context, tokenSHA256, now string) (string, error) {
	return one(ctx, s.r, func(r scanner) (string, error) {
		var u string
		err := r.Scan(&u)
		return u, err
	}, `SELECT "user" FROM sessions WHERE token_sha256 = ? AND expires_at > ?`, tokenSHA256, now)
}
