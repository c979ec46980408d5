package provision_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

func newLimitedFixture(t *testing.T, maxPending int) *fixture {
	t.Helper()
	db, err := sqlite.Open(t.Context(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	reg := registry.NewService(db, registry.Options{Now: clk.now, KeyCacheSize: -1})
	tw := &twinsRecorder{calls: map[string][2]string{}}
	svc, err := provision.New(t.Context(), db, provision.Options{Registry: reg, Twins: tw,
		DeviceHost: func() string { return "hub.example:8883" }, Now: clk.now, MaxPending: maxPending})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, reg: reg, twins: tw, clk: clk}
}

// Whoever holds a provisioning token cannot queue operations without end;
// a device asking again replaces its own pending operation with a new id
// and code, so its first answer cannot be collected by another holder of
// the token.
func TestPendingLimit(t *testing.T) {
	f := newLimitedFixture(t, 3)
	ctx := t.Context()
	tok := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "t"}))
	first := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: "pump-1"}))
	for i := 2; i <= 3; i++ {
		must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: fmt.Sprintf("pump-%d", i)}))
	}
	for _, id := range []string{"pump-4", ""} {
		_, err := f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: id})
		wantCode(t, err, provision.CodePendingLimit)
		if !fault.Is(err, fault.Throttled) {
			t.Errorf("over the limit: %v, want throttled (HTTP 429)", err)
		}
	}
	again := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: "pump-1"}))
	if again.OperationID == first.OperationID {
		t.Error("a repeat request was handed the pending operation's id")
	}
	_, err := f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: first.OperationID})
	wantCode(t, err, provision.CodeOperationNotFound)
	poll := must[*provision.PollResult](t)(f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: again.OperationID}))
	if poll.State != provision.StatePending || poll.VerificationCode != again.VerificationCode {
		t.Errorf("poll of the repeat = %+v", poll)
	}
	if ops := must[[]provision.Operation](t)(f.svc.Operations(ctx, "", 0)); len(ops) != 3 {
		t.Errorf("%d operations stored, want 3", len(ops))
	}
	// Expired operations free their places.
	f.clk.add(provision.DefaultOperationTTL)
	must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: "pump-4"}))
}

// PurgeOperations removes operations a retention after they ended and
// keeps the rest.
func TestPurgeOperationsRetention(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tok := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "t"}))
	init := func(id string) string {
		return must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: id})).OperationID
	}
	done := init("done")
	must[*provision.Operation](t)(f.svc.Approve(ctx, done, provision.Approval{}))
	must[*provision.PollResult](t)(f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: done}))
	rejected := init("rejected")
	must[*provision.Operation](t)(f.svc.Reject(ctx, rejected, provision.Rejection{}))
	expired := init("expired")

	f.clk.add(provision.DefaultOperationTTL + 2*time.Hour)
	pending := init("pending")
	if n, err := f.svc.PurgeOperations(ctx, 3*time.Hour); err != nil || n != 0 {
		t.Errorf("purge with a 3 h retention = %d, %v; nothing ended that long ago", n, err)
	}
	if n, err := f.svc.PurgeOperations(ctx, time.Hour); err != nil || n != 3 {
		t.Errorf("purge with a 1 h retention = %d, %v; want the completed, rejected and expired ones", n, err)
	}
	for _, id := range []string{done, rejected, expired} {
		if _, err := f.svc.Operation(ctx, id); !fault.Is(err, fault.NotFound) {
			t.Errorf("operation %s after the purge: %v", id, err)
		}
	}
	if op, err := f.svc.Operation(ctx, pending); err != nil || op.State != provision.StatePending {
		t.Errorf("pending operation after the purge = %+v, %v", op, err)
	}
}
