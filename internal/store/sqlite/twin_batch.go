package sqlite

import (
	"context"
	"database/sql"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

var _ twin.BatchStore = (*DB)(nil)

// UpdateTwins implements twin.BatchStore. The batch runs in one IMMEDIATE
// transaction on the writer connection: each twin is read once, each
// update's history rows are inserted as it applies, and each changed twin
// row is written once at the end, so a batch costs one commit (one WAL
// append) however many patches it holds.
func (db *DB) UpdateTwins(ctx context.Context, us []twin.Update) ([]error, error) {
	errs, err := db.updateTwins(ctx, us)
	if err != nil {
		return nil, wrap("update twins", err)
	}
	return errs, nil
}

// batchTwin is the state of one twin within a batch.
type batchTwin struct {
	key     [2]string  // device and module
	t       *twin.Twin // as the updates so far left it; nil for an unknown device
	err     error      // why t is nil
	exists  bool       // whether the twins row exists
	changed bool       // whether t must be written
	updates []int      // indexes of its updates, in batch order
}

// minParallel is the least number of twins in a batch worth spreading
// over several goroutines.
const minParallel = 8

// applyAll calls the update functions, setting errs and changes by update
// index. The functions of one twin run in batch order on one goroutine;
// different twins run on up to GOMAXPROCS goroutines, since merging JSON
// is most of a batch's CPU time and the SQL around it stays on the
// writer's goroutine.
func applyAll(us []twin.Update, order []*batchTwin, errs []error, changes [][]twin.Change) {
	workers := min(runtime.GOMAXPROCS(0), len(order)/minParallel)
	if workers <= 1 {
		for _, bt := range order {
			apply(us, bt, errs, changes)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(order)); i = next.Add(1) - 1 {
				apply(us, order[i], errs, changes)
			}
		})
	}
	wg.Wait()
}

// apply runs the updates of one twin in order.
func apply(us []twin.Update, bt *batchTwin, errs []error, changes [][]twin.Change) {
	for _, i := range bt.updates {
		if bt.t == nil {
			errs[i] = bt.err
			continue
		}
		// Fn works on a copy: a failing Fn may leave it half-changed,
		// and the next update of this twin must see the last good state.
		t := bt.t.Clone()
		cs, err := us[i].Fn(t)
		switch {
		case err != nil:
			errs[i] = wrap("update twin", err)
		case len(cs) > 0:
			changes[i] = cs
			bt.t, bt.changed = t, true
		}
	}
}

// SyncTwins sets whether UpdateTwins fsyncs the WAL at each commit, so
// that a batch of reported patches is on disk when UpdateTwins returns and
// survives power loss and OS crashes, as telemetry does with fsync
// durability. Off (the default), a batch commit, like every other commit
// of this database (WAL with synchronous=NORMAL), survives a crash of the
// process but not of the machine. Only UpdateTwins is affected: one fsync
// per batch is affordable, one per write elsewhere would not be.
func (db *DB) SyncTwins(on bool) { db.twin.sync.Store(on) }

func (db *DB) updateTwins(ctx context.Context, us []twin.Update) ([]error, error) {
	conn, err := db.w.Conn(ctx) // the writer: the pragma must apply to this transaction's connection
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if db.twin.sync.Load() {
		// synchronous is per connection: FULL for this commit only, then
		// back to the NORMAL of every other write.
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous=FULL`); err != nil {
			return nil, err
		}
		// A failure to restore is ignored: the batch may be committed
		// already, and must not be reported failed (its patches would be
		// retried); the connection merely stays slower and safer.
		defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous=NORMAL`) //nolint:errcheck
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	read := tx.StmtContext(ctx, db.twin.read)
	history := tx.StmtContext(ctx, db.twin.history)
	errs := make([]error, len(us))
	changes := make([][]twin.Change, len(us))
	twins := make(map[[2]string]*batchTwin, len(us))
	var order []*batchTwin // first-touch order, so writes are deterministic
	for i, u := range us {
		k := [2]string{u.DeviceID, u.ModuleID}
		bt := twins[k]
		if bt == nil {
			bt = &batchTwin{key: k}
			bt.t, bt.exists, err = readTwin(ctx, tx, read, u.DeviceID, u.ModuleID)
			if err != nil {
				if !fault.Is(err, fault.NotFound) {
					return nil, err
				}
				bt.t, bt.err = nil, wrap("update twin", err)
			}
			twins[k] = bt
			order = append(order, bt)
		}
		bt.updates = append(bt.updates, i)
	}
	applyAll(us, order, errs, changes)
	for i, u := range us {
		for _, c := range changes[i] {
			if _, err := history.ExecContext(ctx, u.DeviceID, u.ModuleID, c.TwinVersion, string(c.Side), c.Version,
				formatTime(c.Time), c.Source, string(c.Patch)); err != nil {
				return nil, err
			}
		}
	}
	for _, bt := range order {
		if bt.changed {
			if err := writeTwin(ctx, tx, tx.StmtContext(ctx, db.twin.update), bt.key, bt.t, bt.exists); err != nil {
				return nil, err
			}
		}
	}
	return errs, tx.Commit()
}

// writeTwin stores t as the twin of key (device, module) inside tx: update (db.twin.update in tx) when its row
// exists, else an insert.
func writeTwin(ctx context.Context, tx *sql.Tx, update *sql.Stmt, key [2]string, t *twin.Twin, exists bool) error {
	args := []any{t.ETag, t.Version, string(t.Tags), t.TagsVersion,
		string(t.Desired.Doc), string(t.Desired.Metadata), t.Desired.Version,
		string(t.Reported.Doc), string(t.Reported.Metadata), t.Reported.Version,
		formatTime(t.UpdatedAt), key[0], key[1]}
	var err error
	if exists {
		_, err = update.ExecContext(ctx, args...)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO twins (`+twinColumns+`, device_id, module_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	}
	return err
}
