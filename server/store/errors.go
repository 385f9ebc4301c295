package store

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned when a row asked for by key does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would break a uniqueness rule.
var ErrConflict = errors.New("conflict")

// ErrInvalid is returned (wrapped) when the database refuses a value as such:
// PostgreSQL's text cannot hold a NUL character (SQLSTATE 22021) or invalid UTF-8
// (22P05 and 22021). Nothing of the call was written. SQLite stores such text.
var ErrInvalid = errors.New("invalid request")

// ErrUnavailable is returned (wrapped) when the database cannot be reached: a
// PostgreSQL server that is down, restarting or out of connections. Nothing of the
// failed call was written; the same call may succeed later, and the store
// reconnects by itself. SQLite, a file, never returns it.
var ErrUnavailable = errors.New("database unavailable")

// isUnique reports whether err is a duplicate key of either dialect.
func isUnique(err error) bool { return sqliteUnique(err) || pgUnique(err) }

// isStorageError reports whether err is the database failing to store (either
// dialect), or unreachable.
func isStorageError(err error) bool {
	return sqliteStorage(err) || pgStorage(err) || errors.Is(err, ErrUnavailable) || pgUnavailable(err) ||
		errors.Is(err, ErrSyncFailed)
}

// classify marks err with ErrUnavailable when it says the database cannot be
// reached, and with ErrInvalid when the database refused a value; other errors are
// returned as they are.
func classify(err error) error {
	switch {
	case err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid):
		return err
	case pgUnavailable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case pgBadText(err):
		return fmt.Errorf("%w: text with a NUL character or invalid UTF-8: %w", ErrInvalid, err)
	}
	return err
}
