package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func retentionToken(t *testing.T, db *sqlite.DB, name string) *provision.Token {
	t.Helper()
	tok := &provision.Token{ID: "id-" + name, Name: name, CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour),
		SecretHash: []byte("hash-of-" + name)}
	if err := db.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

func pendingOp(id, tokenID, device string, created time.Time) *provision.Operation {
	return &provision.Operation{ID: id, TokenID: tokenID, RequestedDeviceID: device, VerificationCode: "K7MQ2X",
		State: provision.StatePending, CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute)}
}

func countOps(t *testing.T, db *sqlite.DB) int {
	t.Helper()
	ops, err := db.ListOperations(t.Context(), nil, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return len(ops)
}

func hasOp(t *testing.T, db *sqlite.DB, id string) bool {
	t.Helper()
	_, err := db.GetOperation(t.Context(), id)
	if err != nil && !fault.Is(err, fault.NotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// Operations whose expiry is before the cutoff go, whatever their state;
// the others, pending ones above all, stay.
func TestPurgeOperations(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "ferry.db"))
	ctx := t.Context()
	tok := retentionToken(t, db, "line-3")
	day := 24 * time.Hour
	// cutoff is t0; "old" operations expired before it, "new" ones after.
	mk := func(id string, created time.Time, state provision.State) {
		op := pendingOp(id, tok.ID, "dev-"+id, created)
		if err := db.CreateOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
		switch state {
		case provision.StateRejected:
			if _, err := db.DecideOperation(ctx, id, []provision.State{provision.StatePending}, state, "no", created); err != nil {
				t.Fatal(err)
			}
		case provision.StateApproved, provision.StateCompleted:
			if _, err := db.ApproveOperation(ctx, id, "dev-"+id, created, created.Add(15*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if state == provision.StateCompleted {
				if _, err := db.DecideOperation(ctx, id, []provision.State{provision.StateApproved}, state, "", created); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	old, recent := t0.Add(-2*day), t0.Add(-10*time.Minute) // recent expires 5 minutes after the cutoff
	for _, st := range []provision.State{provision.StatePending, provision.StateRejected, provision.StateApproved, provision.StateCompleted} {
		mk("old-"+string(st), old, st)
		mk("new-"+string(st), recent, st)
	}
	mk("live", t0.Add(day), provision.StatePending) // pending, not expired at all

	n, err := db.PurgeOperations(ctx, t0, 100)
	if err != nil || n != 4 {
		t.Fatalf("purge = %d, %v; want the 4 old operations", n, err)
	}
	for _, st := range []provision.State{provision.StatePending, provision.StateRejected, provision.StateApproved, provision.StateCompleted} {
		if hasOp(t, db, "old-"+string(st)) {
			t.Errorf("old %s operation survived the purge", st)
		}
		if !hasOp(t, db, "new-"+string(st)) {
			t.Errorf("recent %s operation was purged", st)
		}
	}
	if !hasOp(t, db, "live") {
		t.Error("a pending operation was purged")
	}
	if n, err := db.PurgeOperations(ctx, t0, 100); err != nil || n != 0 {
		t.Errorf("second purge = %d, %v; want nothing left to purge", n, err)
	}
}

// One purge statement deletes at most its limit, so a large backlog is
// removed in bounded steps.
func TestPurgeOperationsBatches(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "ferry.db"))
	ctx := t.Context()
	tok := retentionToken(t, db, "flood")
	const total = 1234
	for i := range total {
		if err := db.CreateOperation(ctx, pendingOp(fmt.Sprintf("op-%04d", i), tok.ID, "", t0.Add(-time.Duration(i+60)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateOperation(ctx, pendingOp("keep", tok.ID, "", t0)); err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for {
		n, err := db.PurgeOperations(ctx, t0, 500)
		if err != nil {
			t.Fatal(err)
		}
		if n > 500 {
			t.Fatalf("one purge statement deleted %d rows; the limit is 500", n)
		}
		steps = append(steps, n)
		if n < 500 {
			break
		}
	}
	if fmt.Sprint(steps) != "[500 500 234]" {
		t.Errorf("purge steps = %v, want [500 500 234]", steps)
	}
	if got := countOps(t, db); got != 1 || !hasOp(t, db, "keep") {
		t.Errorf("%d operations left, want only the unexpired one", got)
	}
}

// Opening operations: limits on those pending in all and per device id,
// expired ones not counted, and a repeat of the same token and device id
// replacing its pending operation without a limit check or a new row.
func TestOpenOperationLimits(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "ferry.db"))
	ctx := t.Context()
	a, b, c := retentionToken(t, db, "a"), retentionToken(t, db, "b"), retentionToken(t, db, "c")
	lim := provision.PendingLimits{Total: 4, PerDevice: 2}
	open := func(id, tokenID, device string, at time.Time) (string, error) {
		return db.OpenOperation(ctx, pendingOp(id, tokenID, device, at), lim)
	}
	wantLimit := func(err error, what string) {
		t.Helper()
		fe := fault.As(err)
		if fe == nil || fe.Kind != fault.Throttled || fe.Code != provision.CodePendingLimit {
			t.Fatalf("%s = %v, want %s (throttled)", what, err, provision.CodePendingLimit)
		}
	}

	// Expired pending operations count for nothing.
	for i := range 10 {
		if _, err := open(fmt.Sprintf("stale-%d", i), a.ID, "stale", t0.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Beyond the per-device limit of one device id, asked for under a
	// third token. Between asks the limit is checked only against
	// unexpired ones: the stale ten above did not stop these.
	if _, err := open("d-a", a.ID, "dev", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := open("d-b", b.ID, "dev", t0); err != nil {
		t.Fatal(err)
	}
	_, err := open("d-c", c.ID, "dev", t0)
	wantLimit(err, "a third pending operation for one device id")
	if hasOp(t, db, "d-c") {
		t.Error("the refused operation was stored")
	}

	// A repeat of token a for "dev" replaces d-a.
	replaced, err := open("d-a2", a.ID, "dev", t0.Add(time.Minute))
	if err != nil || replaced != "d-a" {
		t.Fatalf("repeat = %q, %v; want it to replace d-a", replaced, err)
	}
	if hasOp(t, db, "d-a") || !hasOp(t, db, "d-a2") {
		t.Error("after the repeat: the old id should be gone and the new one there")
	}
	got, _ := db.GetOperation(ctx, "d-a2")
	if !got.CreatedAt.Equal(t0.Add(time.Minute)) || !got.ExpiresAt.Equal(t0.Add(16*time.Minute)) || got.State != provision.StatePending {
		t.Errorf("replaced operation = %+v, want the new times, pending", got)
	}

	// The overall limit: four pending (d-a2, d-b, x, y).
	if _, err := open("x", a.ID, "x", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := open("y", a.ID, "", t0); err != nil {
		t.Fatal(err)
	}
	before := countOps(t, db)
	_, err = open("z", a.ID, "z", t0)
	wantLimit(err, "a fifth pending operation")
	_, err = open("anon", b.ID, "", t0)
	wantLimit(err, "a fifth pending operation without a device id")
	// A device that is pending already may still ask again, and adds no row.
	if replaced, err := open("x2", a.ID, "x", t0.Add(2*time.Minute)); err != nil || replaced != "x" {
		t.Errorf("repeat over the overall limit = %q, %v; want x replaced", replaced, err)
	}
	if after := countOps(t, db); after != before {
		t.Errorf("%d operations after the refusals and the repeat, want %d", after, before)
	}
	// A repeat under another token is a new request, refused over the limit.
	_, err = open("x-b", b.ID, "x", t0)
	wantLimit(err, "the same device id under another token over the overall limit")

	// Once a pending operation is decided, room opens.
	if _, err := db.DecideOperation(ctx, "y", []provision.State{provision.StatePending}, provision.StateRejected, "", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := open("z", a.ID, "z", t0); err != nil {
		t.Errorf("after a rejection freed a place: %v", err)
	}
	// Revoking a token frees the places of its pending operations.
	if _, err := open("w", b.ID, "w", t0); err == nil {
		t.Fatal("the overall limit is not full; the revocation below proves nothing")
	}
	if _, err := db.RevokeToken(ctx, "a", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := open("w", b.ID, "w", t0); err != nil {
		t.Errorf("after revoking the token of most pending operations: %v", err)
	}
	// And once time passes, the expired ones make room too.
	if _, err := open("later", c.ID, "later", t0.Add(time.Hour)); err != nil {
		t.Errorf("an hour later, all pending ones expired: %v", err)
	}
}

// Expired console sessions go in batches of at most the limit; live ones
// stay.
func TestPurgeConsoleSessionsBatches(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "ferry.db"))
	ctx := t.Context()
	if err := db.PutPolicy(ctx, registry.Policy{KeyName: "owner", PrimaryKey: "a", SecondaryKey: "b"}); err != nil {
		t.Fatal(err)
	}
	mk := func(i int, expires time.Time) {
		id := []byte(fmt.Sprintf("s-%04d", i))
		if err := db.CreateConsoleSession(ctx, sqlite.ConsoleSession{ID: id, Policy: "owner", KeyHash: []byte{1},
			Created: t0.Add(-9 * time.Hour), LastSeen: t0.Add(-9 * time.Hour), Expires: expires}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 700 {
		mk(i, t0.Add(-time.Duration(i+1)*time.Second))
	}
	mk(9999, t0.Add(time.Hour))
	var steps []int64
	for {
		n, err := db.PurgeConsoleSessions(ctx, t0, time.Time{}, 500)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, n)
		if n < 500 {
			break
		}
	}
	if fmt.Sprint(steps) != "[500 200]" {
		t.Errorf("purge steps = %v, want [500 200]", steps)
	}
	if _, ok, _ := db.ConsoleSession(ctx, []byte("s-9999")); !ok {
		t.Error("a live session was purged")
	}
	if _, ok, _ := db.ConsoleSession(ctx, []byte("s-0000")); ok {
		t.Error("an expired session survived")
	}
}
