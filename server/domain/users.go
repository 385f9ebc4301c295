package domain

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// pbkdf2Iter is the PBKDF2-HMAC-SHA256 iteration count for new password hashes.
const pbkdf2Iter = 210000

// SessionTTL is how long a dashboard login lasts.
const SessionTTL = 12 * time.Hour

var userRE = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,31}$`)

// HashPassword encodes a password as pbkdf2-sha256$ITER$SALT$HASH (base64).
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, pw, salt, pbkdf2Iter, 32)
	if err != nil {
		return "", err
	}
	b := base64.RawStdEncoding
	return fmt.Sprintf("pbkdf2-sha256$%d$%s$%s", pbkdf2Iter, b.EncodeToString(salt), b.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches an encoded hash.
func CheckPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	b := base64.RawStdEncoding
	salt, err1 := b.DecodeString(parts[2])
	want, err2 := b.DecodeString(parts[3])
	if err != nil || err1 != nil || err2 != nil || iter < 1 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, pw, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}

// PutUser creates a user or sets its password (at least 8 characters). A new
// password ends every session of the user (a stolen session does not outlive the
// password change that should have locked its thief out).
func (s *Service) PutUser(ctx context.Context, name, password string) error {
	if !userRE.MatchString(name) {
		return invalid("name", "user name %q: want a lower-case letter then [a-z0-9._-], at most 32", name)
	}
	if len(password) < 8 {
		return invalid("password", "password must have at least 8 characters")
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	return changeNoRow(ctx, s, "", nil, func(t *store.Tx) (auditLine, error) {
		if err := t.PutUser(ctx, name, h); err != nil {
			return auditLine{}, err
		}
		n, err := t.DeleteUserSessions(ctx, name)
		if n > 0 {
			return auditLine{"user.put", name, fmt.Sprintf("%d sessions ended", n)}, err
		}
		return auditLine{"user.put", name, ""}, err
	})
}

// SetPasswordInDB opens the database — SQLite in data directory dir, or the
// PostgreSQL database at dbURL when it is not "" — and sets user's password there,
// audited as "cli" (`rpi-deployd user add --data DIR` or `--db URL`: the first login
// of a fresh installation, with or without servers running on it).
func SetPasswordInDB(ctx context.Context, dir, dbURL, user, password string) error {
	st, err := store.OpenDB(ctx, store.Config{Dir: dir, URL: dbURL})
	if err != nil {
		return err
	}
	err = New(st, nil, Options{DataDir: dir}).PutUser(WithActor(ctx, "cli"), user, password)
	return errors.Join(err, st.Close())
}

// DeleteUser removes a user and ends its sessions.
func (s *Service) DeleteUser(ctx context.Context, name string) error {
	return changeNoRow(ctx, s, "", nil, func(t *store.Tx) (auditLine, error) {
		if err := t.DeleteUser(ctx, name); err != nil {
			return auditLine{}, fmt.Errorf("user %q: %w", name, err)
		}
		return auditLine{"user.delete", name, ""}, nil
	})
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Login checks a password and opens a session; it returns the session token.
func (s *Service) Login(ctx context.Context, name, password string) (string, time.Time, error) {
	u, err := s.st.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		CheckPassword("pbkdf2-sha256$210000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", password) // same time either way
		return "", time.Time{}, ErrAuth
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if !CheckPassword(u.Password, password) {
		return "", time.Time{}, ErrAuth
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	exp := s.now().Add(SessionTTL)
	err = s.st.Update(ctx, func(t *store.Tx) error {
		if err := t.AddSession(ctx, tokenHash(token), name, store.FormatTime(exp)); err != nil {
			return err
		}
		return t.Audit(ctx, "user:"+name, "user.login", name, "")
	})
	return token, exp, err
}

// LoginFailed records a failed login from the address from in the audit log
// (user.login_failed; user.login_blocked too when it used up the address's last
// attempt). The attempted user name is cut to 64 bytes; the password is never
// recorded.
func (s *Service) LoginFailed(ctx context.Context, user, from string, last bool) error {
	if len(user) > 64 {
		user = user[:64]
	}
	return s.st.Update(ctx, func(t *store.Tx) error {
		if err := t.Audit(ctx, "anonymous", "user.login_failed", user, "from "+from); err != nil {
			return err
		}
		if last {
			return t.Audit(ctx, "anonymous", "user.login_blocked", from, "too many failed logins; refused until the window ends")
		}
		return nil
	})
}

// SessionUser returns the user of a live session token.
func (s *Service) SessionUser(ctx context.Context, token string) (string, error) {
	u, err := s.st.SessionUser(ctx, tokenHash(token), store.FormatTime(s.now()))
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrAuth
	}
	return u, err
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, token string) error {
	return s.st.Update(ctx, func(t *store.Tx) error { return t.DeleteSession(ctx, tokenHash(token)) })
}
