package provision_test

// The device client against a real hub (internal/hubtest), with api.Client
// as the operator.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device/internal/provision"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	hubprov "github.com/ferry-iot/ferry/internal/provision"
)

// clock is the hub's settable time.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// start runs a hub whose clock the test moves, and a device client for it.
func start(t testing.TB) (*hubtest.Hub, *provision.Client, *clock) {
	t.Helper()
	clk := &clock{}
	h := hubtest.Start(t, func(c *hub.Config) { c.Now = clk.now })
	c, err := provision.New("https://"+h.HTTPAddr().String(), provision.Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	return h, c, clk
}

func newToken(t testing.TB, h *hubtest.Hub, req hubprov.CreateTokenRequest) string {
	t.Helper()
	tok, err := h.Client.CreateProvisioningToken(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	if provision.IsTransient(err) {
		t.Errorf("%v counts as transient", err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if e := fault.As(err); e == nil || e.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestApprovalFlow(t *testing.T) {
	h, c, _ := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	secret := newToken(t, h, hubprov.CreateTokenRequest{Name: "line-3", MaxUses: 10})

	// The device provisions; the operator approves from the show callback,
	// having found the operation among the pending ones by its code.
	var shown *provision.Operation
	reg, err := c.Provision(ctx, provision.InitRequest{ProvisioningToken: secret, DeviceID: "asked-for",
		ModelID: "dtmi:com:example:Thermostat;1", Data: json.RawMessage(`{"serial":"SN-1"}`)},
		func(op *provision.Operation) {
			shown = op
			pending, err := h.Client.ProvisioningOperations(ctx, hubprov.StatePending, 0)
			if err != nil || len(pending) != 1 {
				t.Errorf("pending operations = %+v, %v; want one", pending, err)
				return
			}
			p := pending[0]
			if p.ID != op.ID || p.VerificationCode != op.VerificationCode || p.RequestedDeviceID != "asked-for" ||
				p.TokenName != "line-3" || string(p.Data) != `{"serial":"SN-1"}` {
				t.Errorf("pending operation %+v does not match the device's %+v", p, op)
			}
			_, err = h.Client.ApproveProvisioning(ctx, op.ID, hubprov.Approval{DeviceID: "pump-7",
				Tags: json.RawMessage(`{"site":"plant-2"}`), Desired: json.RawMessage(`{"interval":30}`)})
			if err != nil {
				t.Errorf("approve: %v", err)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if shown == nil || len(shown.VerificationCode) != 6 || time.Until(shown.ExpiresAt) < 10*time.Minute {
		t.Errorf("shown operation = %+v", shown)
	}
	if reg.DeviceID != "pump-7" || reg.RegistrationToken == "" || time.Until(reg.ExpiresAt) < 24*time.Hour {
		t.Fatalf("registration = %+v", reg)
	}
	op, err := h.Client.ProvisioningOperation(ctx, shown.ID)
	if err != nil || op.State != hubprov.StateCompleted || op.DeviceID != "pump-7" {
		t.Errorf("operation after collection = %+v, %v; want completed for pump-7", op, err)
	}

	creds, err := c.Register(ctx, reg.RegistrationToken)
	if err != nil {
		t.Fatal(err)
	}
	if creds.DeviceID != "pump-7" || creds.HostName != h.DeviceHost() || creds.SharedAccessKey == "" {
		t.Fatalf("credentials = %+v", creds)
	}
	cs, err := protocol.ParseConnectionString(creds.ConnectionString)
	if err != nil || cs.DeviceID != "pump-7" || cs.SharedAccessKey != creds.SharedAccessKey {
		t.Fatalf("connection string %q: %+v, %v", creds.ConnectionString, cs, err)
	}

	// A real MQTT connection with these credentials, and the twin the
	// operator set, read by the device.
	conn := connect(t, h, creds)
	if _, err := conn.Subscribe("$iothub/twin/res/#"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Publish("$iothub/twin/GET/?$rid=1", nil, 0, false); err != nil {
		t.Fatal(err)
	}
	pk, err := conn.Next(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pk.TopicName, "$iothub/twin/res/200/") || !strings.Contains(string(pk.Payload), `"interval":30`) {
		t.Errorf("twin GET answer %s: %s", pk.TopicName, pk.Payload)
	}
	conn.Disconnect()
	tw, err := h.Client.GetTwin(ctx, "pump-7")
	if err != nil {
		t.Fatal(err)
	}
	var twin struct {
		ModelID string            `json:"modelId"`
		Tags    map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(tw, &twin); err != nil || twin.Tags["site"] != "plant-2" || twin.ModelID != "dtmi:com:example:Thermostat;1" {
		t.Errorf("twin %s", tw)
	}
	if tok, err := h.Client.ProvisioningToken(ctx, "line-3"); err != nil || tok.Uses != 1 {
		t.Errorf("token after one approval = %+v, %v; want 1 use", tok, err)
	}

	// Refresh, then delete the device: refresh and register fail.
	next, err := c.Refresh(ctx, secret, reg.RegistrationToken)
	if err != nil || next.DeviceID != "pump-7" || next.RegistrationToken == "" {
		t.Fatalf("refresh = %+v, %v", next, err)
	}
	if err := h.Client.DeleteDevice(ctx, "pump-7", ""); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(ctx, secret, next.RegistrationToken)
	wantErr(t, err, provision.ErrInvalidRegistrationToken)
	_, err = c.Register(ctx, next.RegistrationToken)
	wantErr(t, err, provision.ErrInvalidRegistrationToken)
}

// connect dials the hub's TLS listener with credentials.
func connect(t *testing.T, h *hubtest.Hub, creds *provision.Credentials) *hubtest.Conn {
	t.Helper()
	key, err := protocol.DecodeKey(creds.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	d := hubtest.Device{ID: creds.DeviceID, Key: key, Host: creds.HostName}
	conn, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(),
		hubtest.ConnectOptions{ClientID: d.ID, Username: d.Username(), Password: d.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatalf("connect with provisioned credentials: code %d, %v", code, err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func TestBadInput(t *testing.T) {
	h, c, clk := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	init := func(secret, id string) *provision.Operation {
		t.Helper()
		op, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: secret, DeviceID: id})
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	approve := func(op *provision.Operation) error {
		_, err := h.Client.ApproveProvisioning(ctx, op.ID, hubprov.Approval{})
		return err
	}

	t.Run("UnknownToken", func(t *testing.T) {
		_, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: "fpt_nobody-made-this"})
		wantErr(t, err, provision.ErrInvalidProvisioningToken)
	})
	t.Run("BadDeviceID", func(t *testing.T) {
		secret := newToken(t, h, hubprov.CreateTokenRequest{Name: "bad-id"})
		_, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: secret, DeviceID: "white space"})
		var e *provision.Error
		if !errors.As(err, &e) || e.Status != 400 {
			t.Fatalf("init with a bad device id = %v, want HTTP 400", err)
		}
	})
	t.Run("Exhausted", func(t *testing.T) {
		secret := newToken(t, h, hubprov.CreateTokenRequest{Name: "once", MaxUses: 1})
		a, b := init(secret, "once-a"), init(secret, "once-b")
		if err := approve(a); err != nil {
			t.Fatal(err)
		}
		wantCode(t, approve(b), hubprov.CodeTokenUnusable)
		_, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: secret})
		wantErr(t, err, provision.ErrInvalidProvisioningToken)
	})
	t.Run("DoubleApproval", func(t *testing.T) {
		secret := newToken(t, h, hubprov.CreateTokenRequest{Name: "double"})
		op := init(secret, "double")
		if err := approve(op); err != nil {
			t.Fatal(err)
		}
		wantCode(t, approve(op), hubprov.CodeOperationNotPending)
		if _, err := h.Client.RejectProvisioning(ctx, op.ID, hubprov.Rejection{}); !fault.Is(err, fault.Conflict) {
			t.Errorf("reject after approval = %v, want conflict", err)
		}
	})
	t.Run("RejectThenPoll", func(t *testing.T) {
		secret := newToken(t, h, hubprov.CreateTokenRequest{Name: "reject"})
		op := init(secret, "rejected")
		if _, err := h.Client.RejectProvisioning(ctx, op.ID, hubprov.Rejection{Reason: "unknown serial"}); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Poll(ctx, secret, op.ID)
		wantErr(t, err, provision.ErrRejected)
		if !strings.Contains(err.Error(), "unknown serial") {
			t.Errorf("rejection %q does not carry the reason", err)
		}
		_, err = c.Wait(ctx, secret, op, nil)
		wantErr(t, err, provision.ErrRejected)
	})
	t.Run("Revoked", func(t *testing.T) {
		secret := newToken(t, h, hubprov.CreateTokenRequest{Name: "revoked"})
		op := init(secret, "revoked-dev")
		pending := init(secret, "revoked-pending")
		if err := approve(op); err != nil {
			t.Fatal(err)
		}
		reg, _, err := c.Poll(ctx, secret, op.ID)
		if err != nil || reg == nil {
			t.Fatalf("poll after approval = %+v, %v", reg, err)
		}
		if _, err := h.Client.RevokeProvisioningToken(ctx, "revoked"); err != nil {
			t.Fatal(err)
		}
		_, err = c.Init(ctx, provision.InitRequest{ProvisioningToken: secret})
		wantErr(t, err, provision.ErrInvalidProvisioningToken)
		_, err = c.Register(ctx, reg.RegistrationToken)
		wantErr(t, err, provision.ErrInvalidProvisioningToken)
		_, err = c.Refresh(ctx, secret, reg.RegistrationToken)
		wantErr(t, err, provision.ErrInvalidProvisioningToken)
		wantCode(t, approve(pending), hubprov.CodeTokenUnusable)
	})
	t.Run("BadRegistrationToken", func(t *testing.T) {
		for _, bad := range []string{"", "nonsense", "frt1.eyJkIjoieCJ9.AAAA"} {
			_, err := c.Register(ctx, bad)
			wantErr(t, err, provision.ErrInvalidRegistrationToken)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		if _, err := h.Client.ApproveProvisioning(ctx, "nope", hubprov.Approval{DeviceID: "x"}); !fault.Is(err, fault.NotFound) {
			t.Errorf("approve of an unknown operation = %v", err)
		}
		if _, err := h.Client.RevokeProvisioningToken(ctx, "nope"); !fault.Is(err, fault.NotFound) {
			t.Errorf("revoke of an unknown token = %v", err)
		}
	})

	// Time passes (the hub's clock only): these run last.
	expiring := newToken(t, h, hubprov.CreateTokenRequest{Name: "expiring", ExpiresAt: clk.now().Add(20 * time.Minute)})
	late := init(expiring, "late")
	long := newToken(t, h, hubprov.CreateTokenRequest{Name: "long"})
	ok := init(long, "long-lived")
	if err := approve(ok); err != nil {
		t.Fatal(err)
	}
	reg, _, err := c.Poll(ctx, long, ok.ID)
	if err != nil || reg == nil {
		t.Fatalf("poll after approval = %+v, %v", reg, err)
	}
	clk.add(16 * time.Minute)
	t.Run("ApproveExpiredOperation", func(t *testing.T) {
		wantCode(t, approve(late), hubprov.CodeOperationExpired)
		_, _, err := c.Poll(ctx, expiring, late.ID)
		wantErr(t, err, provision.ErrExpired)
		expired, err := h.Client.ProvisioningOperations(ctx, hubprov.StateExpired, 0)
		if err != nil || len(expired) == 0 {
			t.Errorf("expired operations = %+v, %v", expired, err)
		}
	})
	clk.add(5 * time.Minute)
	t.Run("ExpiredToken", func(t *testing.T) {
		_, err := c.Init(ctx, provision.InitRequest{ProvisioningToken: expiring})
		wantErr(t, err, provision.ErrInvalidProvisioningToken)
		if !strings.Contains(err.Error(), "expired") {
			t.Errorf("error %q does not say the token expired", err)
		}
	})
	// From here on the operator's tokens (signed with the real clock) are
	// expired for the hub: only device calls follow.
	clk.add(hubprov.DefaultRegistrationTTL)
	t.Run("ExpiredRegistrationToken", func(t *testing.T) {
		_, err := c.Register(ctx, reg.RegistrationToken)
		wantErr(t, err, provision.ErrInvalidRegistrationToken)
		next, err := c.Refresh(ctx, long, reg.RegistrationToken)
		if err != nil {
			t.Fatalf("refresh of an expired registration token: %v", err)
		}
		if _, err := c.Register(ctx, next.RegistrationToken); err != nil {
			t.Errorf("register with the refreshed token: %v", err)
		}
	})
}

func TestTransient(t *testing.T) {
	c, err := provision.New("https://127.0.0.1:1", provision.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Init(t.Context(), provision.InitRequest{ProvisioningToken: "x"})
	if err == nil || !provision.IsTransient(err) {
		t.Errorf("unreachable hub: %v, want a transient error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Wait(ctx, "x", &provision.Operation{ID: "op"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context = %v", err)
	}
	if _, err := provision.New("ftp://x", provision.Options{}); err == nil {
		t.Error("New accepted an ftp URL")
	}
}
