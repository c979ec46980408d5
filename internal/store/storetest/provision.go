package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
)

// RunProvision runs the provision.Store conformance tests. open must return
// a new, empty store for each call.
func RunProvision(t *testing.T, open func(t *testing.T) provision.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st provision.Store)
	}{
		{"TokenCreateGet", testTokenCreateGet},
		{"TokenRevoke", testTokenRevoke},
		{"OperationCreateGetList", testOperationCreateGetList},
		{"Approve", testOperationApprove},
		{"ApproveRefused", testOperationApproveRefused},
		{"Decide", testOperationDecide},
		{"SigningKey", testSigningKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func newToken(name string, maxUses int) *provision.Token {
	return &provision.Token{ID: "id-" + name, Name: name, CreatedAt: base, ExpiresAt: base.Add(30 * 24 * time.Hour),
		MaxUses: maxUses, SecretHash: []byte("hash-of-" + name)}
}

func newOperation(id, tokenID string, created time.Time) *provision.Operation {
	return &provision.Operation{ID: id, TokenID: tokenID, RequestedDeviceID: "dev-" + id, VerificationCode: "K7MQ2X",
		State: provision.StatePending, CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute),
		ModelID: "dtmi:com:example:Thermostat;1", Data: json.RawMessage(`{"serial":"123"}`)}
}

func diffJSON(got, want any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	return fmt.Sprintf("got:\n%s\nwant:\n%s", g, w)
}

func testTokenCreateGet(t *testing.T, st provision.Store) {
	ctx := t.Context()
	a, b := newToken("line-3", 0), newToken("a-first", 5)
	must(t, st.CreateToken(ctx, a))
	must(t, st.CreateToken(ctx, b))
	for _, get := range []func() (*provision.Token, error){
		func() (*provision.Token, error) { return st.GetToken(ctx, "line-3") },
		func() (*provision.Token, error) { return st.GetTokenByID(ctx, "id-line-3") },
		func() (*provision.Token, error) { return st.GetTokenByHash(ctx, []byte("hash-of-line-3")) },
	} {
		got, err := get()
		must(t, err)
		if !bytes.Equal(got.SecretHash, a.SecretHash) {
			t.Errorf("secret hash = %q, want %q", got.SecretHash, a.SecretHash)
		}
		if d := diffJSON(got, a); d != "" {
			t.Error(d)
		}
	}
	dup := newToken("line-3", 0)
	dup.ID, dup.SecretHash = "other", []byte("other")
	wantKind(t, st.CreateToken(ctx, dup), fault.Conflict, provision.CodeTokenExists)
	_, err := st.GetToken(ctx, "nope")
	wantKind(t, err, fault.NotFound, provision.CodeTokenNotFound)
	_, err = st.GetTokenByHash(ctx, []byte("nope"))
	wantKind(t, err, fault.NotFound, provision.CodeTokenNotFound)
	list, err := st.ListTokens(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "a-first" || list[1].Name != "line-3" {
		t.Errorf("ListTokens = %+v, want a-first, line-3", list)
	}
}

func testTokenRevoke(t *testing.T, st provision.Store) {
	ctx := t.Context()
	must(t, st.CreateToken(ctx, newToken("line-3", 0)))
	got, err := st.RevokeToken(ctx, "line-3", base.Add(time.Hour))
	must(t, err)
	if !got.Revoked || !got.RevokedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("revoked = %v at %v, want true at %v", got.Revoked, got.RevokedAt, base.Add(time.Hour))
	}
	got, err = st.RevokeToken(ctx, "line-3", base.Add(2*time.Hour))
	must(t, err)
	if !got.RevokedAt.Equal(base.Add(time.Hour)) {
		t.Errorf("second revocation moved the time to %v", got.RevokedAt)
	}
	_, err = st.RevokeToken(ctx, "nope", base)
	wantKind(t, err, fault.NotFound, provision.CodeTokenNotFound)
}

func testOperationCreateGetList(t *testing.T, st provision.Store) {
	ctx := t.Context()
	must(t, st.CreateToken(ctx, newToken("line-3", 0)))
	op1 := newOperation("op1", "id-line-3", base)
	op2 := newOperation("op2", "id-line-3", base.Add(time.Second))
	op2.Data, op2.ModelID, op2.RequestedDeviceID = nil, "", ""
	must(t, st.CreateOperation(ctx, op1))
	must(t, st.CreateOperation(ctx, op2))
	got, err := st.GetOperation(ctx, "op1")
	must(t, err)
	if d := diffJSON(got, op1); d != "" {
		t.Error(d)
	}
	_, err = st.GetOperation(ctx, "nope")
	wantKind(t, err, fault.NotFound, provision.CodeOperationNotFound)

	list, err := st.ListOperations(ctx, nil, 10)
	must(t, err)
	if len(list) != 2 || list[0].ID != "op2" || list[1].ID != "op1" {
		t.Fatalf("ListOperations = %+v, want op2, op1 (newest first)", list)
	}
	if list, _ = st.ListOperations(ctx, nil, 1); len(list) != 1 {
		t.Errorf("limit 1 gave %d operations", len(list))
	}
	_, err = st.DecideOperation(ctx, "op1", []provision.State{provision.StatePending}, provision.StateRejected, "", base)
	must(t, err)
	list, err = st.ListOperations(ctx, []provision.State{provision.StatePending}, 10)
	must(t, err)
	if len(list) != 1 || list[0].ID != "op2" {
		t.Errorf("pending = %+v, want op2", list)
	}
	list, err = st.ListOperations(ctx, []provision.State{provision.StateRejected, provision.StateApproved}, 10)
	must(t, err)
	if len(list) != 1 || list[0].ID != "op1" {
		t.Errorf("rejected or approved = %+v, want op1", list)
	}
}

func testOperationApprove(t *testing.T, st provision.Store) {
	ctx := t.Context()
	must(t, st.CreateToken(ctx, newToken("line-3", 2)))
	must(t, st.CreateOperation(ctx, newOperation("op1", "id-line-3", base)))
	now, exp := base.Add(time.Minute), base.Add(16*time.Minute)
	op, err := st.ApproveOperation(ctx, "op1", "pump-7", now, exp)
	must(t, err)
	got, err := st.GetOperation(ctx, "op1")
	must(t, err)
	if d := diffJSON(got, op); d != "" {
		t.Errorf("returned and stored operation differ: %s", d)
	}
	if got.State != provision.StateApproved || got.DeviceID != "pump-7" || !got.DecidedAt.Equal(now) || !got.ExpiresAt.Equal(exp) {
		t.Errorf("approved operation = %+v", got)
	}
	tok, err := st.GetToken(ctx, "line-3")
	must(t, err)
	if tok.Uses != 1 {
		t.Errorf("uses = %d, want 1", tok.Uses)
	}
	// A second approval is refused and counts nothing.
	_, err = st.ApproveOperation(ctx, "op1", "pump-8", now, exp)
	wantKind(t, err, fault.Conflict, provision.CodeOperationNotPending)
	if tok, _ = st.GetToken(ctx, "line-3"); tok.Uses != 1 {
		t.Errorf("uses after a refused approval = %d, want 1", tok.Uses)
	}
	// approved -> completed.
	op, err = st.DecideOperation(ctx, "op1", []provision.State{provision.StateApproved}, provision.StateCompleted, "", now.Add(time.Minute))
	must(t, err)
	if op.State != provision.StateCompleted || !op.DecidedAt.Equal(now) {
		t.Errorf("completed operation = %+v, want decidedAt kept at %v", op, now)
	}
}

func testOperationApproveRefused(t *testing.T, st provision.Store) {
	ctx := t.Context()
	must(t, st.CreateToken(ctx, newToken("once", 1)))
	must(t, st.CreateToken(ctx, newToken("revoked", 0)))
	for _, id := range []string{"a", "b", "late"} {
		must(t, st.CreateOperation(ctx, newOperation(id, "id-once", base)))
	}
	must(t, st.CreateOperation(ctx, newOperation("r", "id-revoked", base)))
	_, err := st.ApproveOperation(ctx, "late", "d", base.Add(15*time.Minute), base.Add(time.Hour))
	wantKind(t, err, fault.Conflict, provision.CodeOperationNotPending)
	_, err = st.ApproveOperation(ctx, "a", "d", base, base.Add(time.Hour))
	must(t, err)
	_, err = st.ApproveOperation(ctx, "b", "d", base, base.Add(time.Hour))
	wantKind(t, err, fault.Conflict, provision.CodeTokenUnusable)
	_, err = st.RevokeToken(ctx, "revoked", base)
	must(t, err)
	_, err = st.ApproveOperation(ctx, "r", "d", base, base.Add(time.Hour))
	wantKind(t, err, fault.Conflict, provision.CodeTokenUnusable)
	_, err = st.ApproveOperation(ctx, "nope", "d", base, base.Add(time.Hour))
	wantKind(t, err, fault.NotFound, provision.CodeOperationNotFound)
	if op, _ := st.GetOperation(ctx, "b"); op.State != provision.StatePending {
		t.Errorf("refused operation is %s, want still pending", op.State)
	}
}

func testOperationDecide(t *testing.T, st provision.Store) {
	ctx := t.Context()
	must(t, st.CreateToken(ctx, newToken("line-3", 0)))
	must(t, st.CreateOperation(ctx, newOperation("op1", "id-line-3", base)))
	op, err := st.DecideOperation(ctx, "op1", []provision.State{provision.StatePending}, provision.StateRejected, "not ours", base.Add(time.Minute))
	must(t, err)
	got, err := st.GetOperation(ctx, "op1")
	must(t, err)
	if d := diffJSON(got, op); d != "" {
		t.Error(d)
	}
	if got.State != provision.StateRejected || got.Reason != "not ours" || !got.DecidedAt.Equal(base.Add(time.Minute)) {
		t.Errorf("rejected operation = %+v", got)
	}
	_, err = st.DecideOperation(ctx, "op1", []provision.State{provision.StatePending}, provision.StateRejected, "", base)
	wantKind(t, err, fault.Conflict, provision.CodeOperationNotPending)
	_, err = st.DecideOperation(ctx, "nope", []provision.State{provision.StatePending}, provision.StateRejected, "", base)
	wantKind(t, err, fault.NotFound, provision.CodeOperationNotFound)
}

func testSigningKey(t *testing.T, st provision.Store) {
	ctx := t.Context()
	k1, err := st.SigningKey(ctx, []byte("first-candidate"))
	must(t, err)
	k2, err := st.SigningKey(ctx, []byte("second-candidate"))
	must(t, err)
	if string(k1) != "first-candidate" || string(k2) != "first-candidate" {
		t.Errorf("signing keys = %q, %q; want the first candidate both times", k1, k2)
	}
}
