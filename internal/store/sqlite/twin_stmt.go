package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
)

// twinStmts are the statements of a reported patch, prepared once on the
// writer: parsing SQL was a fifth of a patch's CPU time, spent while
// holding the one writer connection.
type twinStmts struct {
	read, update, history *sql.Stmt

	sync atomic.Bool // whether UpdateTwins commits with synchronous=FULL; see SyncTwins
}

func (db *DB) prepareTwin(ctx context.Context) error {
	var err error
	st := &db.twin
	if st.read, err = db.w.PrepareContext(ctx, `SELECT `+twinColumns+` FROM twins WHERE device_id = ? AND module_id = ?`); err != nil {
		return err
	}
	if st.update, err = db.w.PrepareContext(ctx, `UPDATE twins SET etag = ?, version = ?, tags = ?, tags_version = ?,
		desired = ?, desired_meta = ?, desired_version = ?, reported = ?, reported_meta = ?,
		reported_version = ?, updated_at = ? WHERE device_id = ? AND module_id = ?`); err != nil {
		return err
	}
	st.history, err = db.w.PrepareContext(ctx, `INSERT INTO twin_history
		(device_id, module_id, twin_version, side, version, at, source, patch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	return err
}

func (st *twinStmts) close() {
	for _, s := range []*sql.Stmt{st.read, st.update, st.history} {
		if s != nil {
			s.Close()
		}
	}
}
