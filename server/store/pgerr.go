package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL reports failures as SQLSTATE codes
// (https://www.postgresql.org/docs/15/errcodes-appendix.html), which pgx hands over
// as *pgconn.PgError; a connection that cannot be made or was lost comes as
// *pgconn.ConnectError, a network error, io.EOF or pgconn.ErrConnClosed. The store
// branches on these, never on the text of a message.

// pgCode is err's SQLSTATE, "" when err does not come from the PostgreSQL server.
func pgCode(err error) string {
	if err == nil {
		return "" // before pe, whose address errors.As takes: it would be allocated for every nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// pgUnique reports whether err is a unique violation (23505; a primary key is a
// unique constraint too); a not-null (23502), check (23514) or foreign-key (23503)
// violation is not.
func pgUnique(err error) bool { return pgCode(err) == "23505" }

// isSerializationFailure reports whether err is PostgreSQL aborting a transaction
// for a conflict with a concurrent one: serialization failure (40001) or deadlock
// (40P01). Running the transaction again may succeed.
func isSerializationFailure(err error) bool {
	switch pgCode(err) {
	case "40001", "40P01":
		return true
	}
	return false
}

// pgBadText reports whether err is PostgreSQL refusing text: a character not in
// the database's encoding, NUL included (22021), or one it cannot translate (22P05).
func pgBadText(err error) bool {
	switch pgCode(err) {
	case "22021", "22P05":
		return true
	}
	return false
}

// pgStorage reports whether err is PostgreSQL failing to write: disk full (53100),
// I/O error (58030), or a read-only transaction (25006, a standby).
func pgStorage(err error) bool {
	switch pgCode(err) {
	case "53100", "58030", "25006":
		return true
	}
	return false
}

// pgUnavailable reports whether err says the PostgreSQL server cannot be reached or
// cannot serve now: no connection (refused, lost, closed), a connection exception
// (class 08), the server shutting down or starting (57P01–57P03), or out of
// resources (class 53: too many connections, out of memory, disk full). A
// connection that could not be made in time (ConnectTimeout) is; otherwise a
// cancelled or timed-out context of the caller is not.
func pgUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if code := pgCode(err); code != "" {
		return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53") ||
			code == "57P01" || code == "57P02" || code == "57P03"
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
