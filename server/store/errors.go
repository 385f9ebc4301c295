package store

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned when a row asked for by key does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write would break a uniqueness rule.
var ErrConflict = errors.New("conflict")

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
	return sqliteStorage(err) || pgStorage(err) || errors.Is(err, ErrUnavailable) || pgUnavailable(err)
}

// classify marks err with ErrUnavailable when it says the database cannot be
// reached; other errors are returned as they are.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !pgUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
