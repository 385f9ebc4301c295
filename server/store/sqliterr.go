package store

import (
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite reports failures as result codes (https://sqlite.org/rescode.html); the
// driver (modernc.org/sqlite) hands them over as *sqlite.Error with Code, the
// extended code when SQLite gives one, and the writer's own connection as
// *liteError (liteconn.go). The store branches on these codes, never on
// the text of a message.

// sqliteCode is err's SQLite result code, 0 when err does not come from SQLite.
func sqliteCode(err error) int {
	if err == nil {
		return 0 // before se, whose address errors.As takes: it would be allocated for every nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	var le *liteError // the writer's own connection (liteconn.go)
	if errors.As(err, &le) {
		return le.Code()
	}
	return 0
}

// sqliteUnique reports whether err is a UNIQUE or PRIMARY KEY constraint failure
// (SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY); a NOT NULL, CHECK or
// FOREIGN KEY failure is not.
func sqliteUnique(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// sqliteStorage reports whether err comes from SQLite failing to write: SQLITE_FULL,
// SQLITE_IOERR (with its extended codes), SQLITE_READONLY, SQLITE_CANTOPEN or
// SQLITE_CORRUPT.
func sqliteStorage(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT:
		return true
	}
	return false
}
