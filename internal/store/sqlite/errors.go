package sqlite

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/ferry-iot/ferry/internal/fault"
)

// wrap prefixes err with the operation and classifies the driver errors that
// callers can act on. Errors that already carry a fault kind keep it.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if fault.As(err) == nil {
		var se *sqlite.Error
		if errors.As(err, &se) {
			switch se.Code() & 0xff { // the primary result code
			case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
				err = &fault.Error{Kind: fault.Unavailable, Msg: "the database is busy; try again", Err: err}
			case sqlite3.SQLITE_FULL:
				err = &fault.Error{Kind: fault.Unavailable, Msg: "the database disk is full", Err: err}
			}
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// isUniqueViolation reports whether err is a primary key or unique
// constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}
