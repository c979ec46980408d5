package provision_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// twinsRecorder records SetInitial calls.
type twinsRecorder struct {
	mu    sync.Mutex
	calls map[string][2]string
}

func (r *twinsRecorder) SetInitial(_ context.Context, id string, tags, desired json.RawMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[id] = [2]string{string(tags), string(desired)}
	return nil
}

type fixture struct {
	svc   *provision.Service
	reg   *registry.Service
	twins *twinsRecorder
	clk   *clock
}

func newFixture(t *testing.T) *fixture {
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
		DeviceHost: func() string { return "hub.example:8883" }, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, reg: reg, twins: tw, clk: clk}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// wantCode fails unless err is a *fault.Error with code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if e := fault.As(err); e == nil || e.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestWholeFlow(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tok := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "line-3"}))
	if !strings.HasPrefix(tok.Secret, "fpt_") || tok.ExpiresAt.Sub(f.clk.now()) != provision.DefaultTokenTTL {
		t.Fatalf("token = %+v", tok)
	}
	init := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret,
		DeviceID: "asked", ModelID: "dtmi:com:example:Thermostat;1", Data: json.RawMessage(`{ "serial": "42" }`)}))
	if len(init.VerificationCode) != provision.CodeLen || strings.ContainsAny(init.VerificationCode, "01OIL") {
		t.Errorf("verification code %q", init.VerificationCode)
	}
	poll := must[*provision.PollResult](t)(f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: init.OperationID}))
	if poll.State != provision.StatePending || poll.RetryAfterSeconds != 5 || poll.RegistrationToken != "" {
		t.Errorf("poll while pending = %+v", poll)
	}
	pending := must[[]provision.Operation](t)(f.svc.Operations(ctx, provision.StatePending, 0))
	if len(pending) != 1 || pending[0].TokenName != "line-3" || string(pending[0].Data) != `{"serial":"42"}` {
		t.Fatalf("pending = %+v", pending)
	}
	op := must[*provision.Operation](t)(f.svc.Approve(ctx, init.OperationID, provision.Approval{DeviceID: "pump-7",
		Tags: json.RawMessage(`{"site":"A"}`), Desired: json.RawMessage(`{"rate":5}`)}))
	if op.State != provision.StateApproved || op.DeviceID != "pump-7" {
		t.Errorf("approved = %+v", op)
	}
	if got := f.twins.calls["pump-7"]; got != [2]string{`{"site":"A"}`, `{"rate":5}`} {
		t.Errorf("twin set to %q", got)
	}
	d := must[*registry.Device](t)(f.reg.Get(ctx, "pump-7"))
	if d.ModelID != "dtmi:com:example:Thermostat;1" {
		t.Errorf("model id = %q", d.ModelID)
	}
	poll = must[*provision.PollResult](t)(f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: init.OperationID}))
	if poll.State != provision.StateApproved || poll.DeviceID != "pump-7" || !strings.HasPrefix(poll.RegistrationToken, "frt1.") {
		t.Fatalf("poll after approval = %+v", poll)
	}
	if op := must[*provision.Operation](t)(f.svc.Operation(ctx, init.OperationID)); op.State != provision.StateCompleted {
		t.Errorf("operation after collection is %s, want completed", op.State)
	}
	creds := must[*provision.Credentials](t)(f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: poll.RegistrationToken}))
	if creds.DeviceID != "pump-7" || creds.HostName != "hub.example:8883" || creds.SharedAccessKey != d.Authentication.SymmetricKey.PrimaryKey ||
		!strings.Contains(creds.ConnectionString, "DeviceId=pump-7") {
		t.Errorf("credentials = %+v", creds)
	}
	if tok := must[*provision.Token](t)(f.svc.Token(ctx, "line-3")); tok.Uses != 1 {
		t.Errorf("uses = %d, want 1", tok.Uses)
	}

	// The registration token expires; Register refuses it, Refresh renews it.
	f.clk.add(provision.DefaultRegistrationTTL + time.Second)
	_, err := f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: poll.RegistrationToken})
	wantCode(t, err, provision.CodeInvalidRegistrationToken)
	reg := must[*provision.Registration](t)(f.svc.Refresh(ctx, provision.RefreshRequest{ProvisioningToken: tok.Secret, RegistrationToken: poll.RegistrationToken}))
	must[*provision.Credentials](t)(f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: reg.RegistrationToken}))

	// A device deleted and created again under the same id is not the one
	// the registration token was issued for.
	if err := f.reg.Delete(ctx, "pump-7", ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Refresh(ctx, provision.RefreshRequest{ProvisioningToken: tok.Secret, RegistrationToken: reg.RegistrationToken})
	wantCode(t, err, provision.CodeInvalidRegistrationToken)
	must[*registry.Device](t)(f.reg.Create(ctx, registry.Device{DeviceID: "pump-7"}))
	_, err = f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: reg.RegistrationToken})
	wantCode(t, err, provision.CodeInvalidRegistrationToken)
}

func TestTokenRules(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, req := range []provision.CreateTokenRequest{
		{Name: ""}, {Name: "has space"}, {Name: strings.Repeat("x", 65)},
		{Name: "past", ExpiresAt: f.clk.now().Add(-time.Second)}, {Name: "neg", MaxUses: -1},
	} {
		if _, err := f.svc.CreateToken(ctx, req); !fault.Is(err, fault.Invalid) {
			t.Errorf("CreateToken(%+v) = %v, want invalid", req, err)
		}
	}
	must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "dup"}))
	_, err := f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "dup"})
	wantCode(t, err, provision.CodeTokenExists)

	short := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "short", ExpiresAt: f.clk.now().Add(time.Hour)}))
	once := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "once", MaxUses: 1}))
	for _, secret := range []string{"", "fpt_unknown", short.Secret + "x"} {
		_, err := f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: secret})
		wantCode(t, err, provision.CodeInvalidProvisioningToken)
	}
	// Exhausted: one approval allowed, a second operation can neither be
	// approved nor opened.
	a := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: once.Secret, DeviceID: "a"}))
	b := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: once.Secret, DeviceID: "b"}))
	must[*provision.Operation](t)(f.svc.Approve(ctx, a.OperationID, provision.Approval{}))
	_, err = f.svc.Approve(ctx, b.OperationID, provision.Approval{})
	wantCode(t, err, provision.CodeTokenUnusable)
	_, err = f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: once.Secret})
	wantCode(t, err, provision.CodeInvalidProvisioningToken)
	// Expired.
	f.clk.add(time.Hour)
	_, err = f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: short.Secret})
	wantCode(t, err, provision.CodeInvalidProvisioningToken)
}

func TestOperationRules(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tok := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "t"}))
	init := func(id string) string {
		return must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: id})).OperationID
	}
	poll := func(op string) error {
		_, err := f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: op})
		return err
	}
	for _, req := range []provision.InitRequest{
		{DeviceID: "bad id"}, {ModelID: "not-a-dtmi"}, {Data: json.RawMessage(`[1]`)}, {Data: json.RawMessage(`{"x":`)},
	} {
		req.ProvisioningToken = tok.Secret
		if _, err := f.svc.Init(ctx, req); !fault.Is(err, fault.Invalid) {
			t.Errorf("Init(%+v) = %v, want invalid", req, err)
		}
	}
	big := json.RawMessage(`{"x":"` + strings.Repeat("a", provision.MaxDataBytes) + `"}`)
	if _, err := f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, Data: big}); !fault.Is(err, fault.TooLarge) {
		t.Errorf("Init with %d bytes of data = %v, want too large", len(big), err)
	}

	// No id requested and none given; bad approval documents.
	anon := init("")
	_, err := f.svc.Approve(ctx, anon, provision.Approval{})
	if !fault.Is(err, fault.Invalid) {
		t.Errorf("approval without any device id = %v, want invalid", err)
	}
	if _, err := f.svc.Approve(ctx, anon, provision.Approval{DeviceID: "x", Tags: json.RawMessage(`"no"`)}); !fault.Is(err, fault.Invalid) {
		t.Errorf("approval with string tags = %v, want invalid", err)
	}

	// Double approval; reject then poll; reject after approval.
	op := init("d1")
	must[*provision.Operation](t)(f.svc.Approve(ctx, op, provision.Approval{}))
	_, err = f.svc.Approve(ctx, op, provision.Approval{})
	wantCode(t, err, provision.CodeOperationNotPending)
	_, err = f.svc.Reject(ctx, op, provision.Rejection{})
	wantCode(t, err, provision.CodeOperationNotPending)
	rej := init("d2")
	must[*provision.Operation](t)(f.svc.Reject(ctx, rej, provision.Rejection{Reason: "unknown serial"}))
	err = poll(rej)
	wantCode(t, err, provision.CodeOperationRejected)
	if !strings.Contains(err.Error(), "unknown serial") {
		t.Errorf("rejection error %q does not carry the reason", err)
	}
	// Another token cannot see the operation.
	other := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "other"}))
	_, err = f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: other.Secret, OperationID: op})
	wantCode(t, err, provision.CodeOperationNotFound)

	// Expiry: approval and rejection refused, poll says expired, listing says expired.
	late := init("d3")
	f.clk.add(provision.DefaultOperationTTL)
	_, err = f.svc.Approve(ctx, late, provision.Approval{})
	wantCode(t, err, provision.CodeOperationExpired)
	_, err = f.svc.Reject(ctx, late, provision.Rejection{})
	wantCode(t, err, provision.CodeOperationExpired)
	wantCode(t, poll(late), provision.CodeOperationExpired)
	expired := must[[]provision.Operation](t)(f.svc.Operations(ctx, provision.StateExpired, 0))
	if len(expired) != 2 { // anon and late
		t.Errorf("expired = %d operations, want 2", len(expired))
	}
	if _, err := f.svc.Operations(ctx, "bogus", 0); !fault.Is(err, fault.Invalid) {
		t.Errorf("list with a bad state = %v", err)
	}
	// The approved operation stays collectable after the pending window.
	if err := poll(op); err != nil {
		t.Errorf("poll of an approved operation after its first expiry: %v", err)
	}
}

func TestRevocationAndBinding(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tok := must[*provision.NewToken](t)(f.svc.CreateToken(ctx, provision.CreateTokenRequest{Name: "t"}))
	existing := must[*registry.Device](t)(f.reg.Create(ctx, registry.Device{DeviceID: "existing"}))
	op := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: "existing"}))
	pending := must[*provision.InitResult](t)(f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret, DeviceID: "p"}))
	must[*provision.Operation](t)(f.svc.Approve(ctx, op.OperationID, provision.Approval{}))
	res := must[*provision.PollResult](t)(f.svc.Poll(ctx, provision.PollRequest{ProvisioningToken: tok.Secret, OperationID: op.OperationID}))
	creds := must[*provision.Credentials](t)(f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: res.RegistrationToken}))
	if creds.SharedAccessKey != existing.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("bound device got key %q, want its own %q", creds.SharedAccessKey, existing.Authentication.SymmetricKey.PrimaryKey)
	}
	// A tampered registration token.
	tampered := res.RegistrationToken[:len(res.RegistrationToken)-2] + "AA"
	for _, bad := range []string{"", "garbage", "frt1.", "frt1.e30.", tampered} {
		_, err := f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: bad})
		wantCode(t, err, provision.CodeInvalidRegistrationToken)
	}
	// Disabled device.
	existing.Status = registry.StatusDisabled
	must[*registry.Device](t)(f.reg.Update(ctx, *existing, ""))
	_, err := f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: res.RegistrationToken})
	if e := fault.As(err); e == nil || e.Code != "DeviceDisabled" {
		t.Errorf("register of a disabled device = %v", err)
	}
	// Revocation stops everything.
	must[*provision.Token](t)(f.svc.RevokeToken(ctx, "t"))
	_, err = f.svc.Register(ctx, provision.RegisterRequest{RegistrationToken: res.RegistrationToken})
	wantCode(t, err, provision.CodeInvalidProvisioningToken)
	_, err = f.svc.Refresh(ctx, provision.RefreshRequest{ProvisioningToken: tok.Secret, RegistrationToken: res.RegistrationToken})
	wantCode(t, err, provision.CodeInvalidProvisioningToken)
	_, err = f.svc.Init(ctx, provision.InitRequest{ProvisioningToken: tok.Secret})
	wantCode(t, err, provision.CodeInvalidProvisioningToken)
	_, err = f.svc.Approve(ctx, pending.OperationID, provision.Approval{})
	wantCode(t, err, provision.CodeTokenUnusable)
}
