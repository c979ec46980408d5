package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	dprov "github.com/ferry-iot/ferry/device/internal/provision"
	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/provision"
)

// movingHub is a hub that can stop and start again on the same data
// directory (on new ports); devices dial whichever instance runs.
type movingHub struct {
	t    *testing.T
	dir  string
	hub  *hubtest.Hub
	stop func() error
	addr atomic.Pointer[string] // MQTT/TLS address of the running instance
}

func newMovingHub(t *testing.T) *movingHub {
	m := &movingHub{t: t, dir: t.TempDir()}
	m.start()
	t.Cleanup(func() {
		if m.stop != nil {
			m.stop()
		}
	})
	return m
}

func (m *movingHub) start() {
	h, stop, err := hubtest.Launch(m.dir)
	if err != nil {
		m.t.Fatal(err)
	}
	m.hub, m.stop = h, stop
	a := h.MQTTAddr("tls").String()
	m.addr.Store(&a)
}

func (m *movingHub) down() {
	if err := m.stop(); err != nil {
		m.t.Fatal(err)
	}
	m.stop = nil
	dead := "127.0.0.1:1" // nothing listens there
	m.addr.Store(&dead)
}

func (m *movingHub) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, *m.addr.Load())
}

// TestProvisioningApproval is the whole flow: a device starts with a
// provisioning token and waits; an operator sees the request and its
// verification code, approves it under another id with desired
// properties; the device connects and sends. Restarted with the hub down,
// it starts from the stored credentials at once and works offline.
func TestProvisioningApproval(t *testing.T) {
	m := newMovingHub(t)
	ctx := context.Background()
	tok, err := m.hub.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "line-3"})
	if err != nil {
		t.Fatal(err)
	}
	ops := make(chan device.ProvisioningOperation, 4)
	desired := make(chan device.TwinProperties, 16)
	cfg := device.Config{
		Provisioning: &device.Provisioning{
			Token: tok.Secret, URL: "https://" + m.hub.HTTPAddr().String(), DeviceID: "line3-sensor",
			Data:        map[string]any{"serial": "SN-0042"},
			OnOperation: func(op device.ProvisioningOperation) { ops <- op },
		},
		StorePath: filepath.Join(t.TempDir(), "device.db"),
		CAFile:    m.hub.CAFile(),
		OnDesired: func(p device.TwinProperties) { desired <- p },
	}
	device.SetTestHooks(&cfg, m.dial, 50*time.Millisecond)

	type started struct {
		c   *device.Client
		err error
	}
	done := make(chan started, 1)
	go func() {
		c, err := device.Start(ctx, cfg)
		done <- started{c, err}
	}()

	// The operator's side.
	var op device.ProvisioningOperation
	select {
	case op = <-ops:
	case <-time.After(15 * time.Second):
		t.Fatal("the device showed no provisioning operation")
	}
	pending, err := m.hub.Client.ProvisioningOperations(ctx, provision.StatePending, 0)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending operations: %v, %v", pending, err)
	}
	if p := pending[0]; p.VerificationCode != op.VerificationCode || p.ID != op.ID || p.RequestedDeviceID != "line3-sensor" ||
		string(p.Data) != `{"serial":"SN-0042"}` {
		t.Fatalf("operator sees %+v; device shows %+v", p, op)
	}
	select {
	case s := <-done:
		t.Fatalf("Start returned before approval: %v", s.err)
	default:
	}
	if _, err := m.hub.Client.ApproveProvisioning(ctx, op.ID, provision.Approval{DeviceID: "line3-7",
		Tags: json.RawMessage(`{"line":3}`), Desired: json.RawMessage(`{"interval":5}`)}); err != nil {
		t.Fatal(err)
	}
	var s started
	select {
	case s = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not return after approval")
	}
	if s.err != nil {
		t.Fatalf("Start: %v", s.err)
	}
	c := s.c
	if c.DeviceID() != "line3-7" {
		t.Fatalf("DeviceID = %q, want the operator's choice", c.DeviceID())
	}
	select {
	case p := <-desired:
		if string(p.JSON) == "" || !json.Valid(p.JSON) {
			t.Fatalf("desired %q", p.JSON)
		}
		var d map[string]any
		json.Unmarshal(p.JSON, &d)
		if d["interval"] != float64(5) {
			t.Fatalf("desired properties %s, want interval 5", p.JSON)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no desired properties after approval")
	}
	sendCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.Stream("", "").Send(sendCtx, device.Message{Body: []byte("hello"), ID: "first"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart with the hub down: the stored credentials are enough.
	m.down()
	startCtx, cancel2 := context.WithTimeout(ctx, 20*time.Second)
	defer cancel2()
	c2, err := device.Start(startCtx, cfg)
	if err != nil {
		t.Fatalf("Start with stored credentials and the hub down: %v", err)
	}
	defer c2.Close()
	if c2.DeviceID() != "line3-7" {
		t.Fatalf("DeviceID after restart = %q", c2.DeviceID())
	}
	if _, err := c2.Stream("", "").Enqueue(ctx, device.Message{Body: []byte("offline"), ID: "second"}); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 0 {
		t.Fatal("the restart opened a new provisioning operation")
	}
	m.start()
	flush(t, c2)
	msgs := readAll(t, m.hub.Client)
	if len(msgs) != 2 || msgs[0].DeviceID != "line3-7" || msgs[1].SystemProperties.MessageID != "second" {
		t.Fatalf("hub holds %+v", msgs)
	}
}

// TestProvisioningRefusals: a rejected request and an unknown token end
// Start with errors the program can tell apart; a bad Config is refused
// before anything else.
func TestProvisioningRefusals(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	url := "https://" + h.HTTPAddr().String()
	tok, err := h.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	start := func(token string, onOp func(device.ProvisioningOperation)) error {
		c, err := device.Start(ctx, device.Config{
			Provisioning: &device.Provisioning{Token: token, URL: url, OnOperation: onOp},
			StorePath:    filepath.Join(t.TempDir(), "d.db"), CAFile: h.CAFile()})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := start("fpt_not-a-token", nil); !errors.Is(err, device.ErrProvisioningToken) {
		t.Fatalf("unknown token: %v, want ErrProvisioningToken", err)
	}
	err = start(tok.Secret, func(op device.ProvisioningOperation) {
		go h.Client.RejectProvisioning(ctx, op.ID, provision.Rejection{Reason: "not ours"})
	})
	if !errors.Is(err, device.ErrProvisioningRejected) {
		t.Fatalf("rejected: %v, want ErrProvisioningRejected", err)
	}
	for _, cfg := range []device.Config{
		{StorePath: filepath.Join(t.TempDir(), "a.db")}, // no credentials at all
		{ConnectionString: "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0", Provisioning: &device.Provisioning{Token: "x", URL: url},
			StorePath: filepath.Join(t.TempDir(), "b.db")},
		{Provisioning: &device.Provisioning{Token: "x"}, StorePath: filepath.Join(t.TempDir(), "c.db")},
		{Provisioning: &device.Provisioning{Token: "x", URL: url}, DPS: &device.DPS{Host: "h", IDScope: "s", RegistrationID: "r", Key: "a2V5"},
			StorePath: filepath.Join(t.TempDir(), "d.db")},
	} {
		if c, err := device.Start(ctx, cfg); err == nil {
			c.Close()
			t.Fatalf("Start(%+v) succeeded", cfg)
		}
	}
}

// TestReprovisionWhenRefused: the operator deletes the device; when the hub
// refuses its credentials, the device asks for approval again and carries
// on under the same id with the new key.
func TestReprovisionWhenRefused(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	tok, err := e.hub.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "re"})
	if err != nil {
		t.Fatal(err)
	}
	var approvals atomic.Int32
	cfg := e.cfg
	cfg.ConnectionString = ""
	cfg.Provisioning = &device.Provisioning{Token: tok.Secret, URL: "https://" + e.hub.HTTPAddr().String(), DeviceID: "re-1",
		OnOperation: func(op device.ProvisioningOperation) {
			approvals.Add(1)
			go e.hub.Client.ApproveProvisioning(ctx, op.ID, provision.Approval{})
		}}
	c, err := device.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Stream("", "").Send(ctx, device.Message{Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := e.hub.Client.DeleteDevice(ctx, "re-1", ""); err != nil {
		t.Fatal(err)
	}
	e.link.cut() // the next CONNECT is refused
	sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Stream("", "").Send(sendCtx, device.Message{Body: []byte("b"), ID: "after"}); err != nil {
		t.Fatalf("Send after the device was deleted and approved again: %v", err)
	}
	if n := approvals.Load(); n != 2 {
		t.Fatalf("%d approvals, want 2", n)
	}
}

// readAll reads every message of the hub's streams.
func readAll(t *testing.T, c *api.Client) []api.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []api.Message
	after := ""
	for {
		p, err := c.ReadStream(ctx, "*", api.ReadQuery{From: "beginning", After: after, Limit: 1000})
		if err != nil {
			t.Fatalf("ReadStream: %v", err)
		}
		all = append(all, p.Messages...)
		if len(p.Messages) == 0 {
			return all
		}
		after = p.Next
	}
}

// TestProvisioningReplacedOperation: another request for the same device
// id replaces the waiting operation; the device learns that its operation
// is gone, opens a new one (showing its new code) and is approved on it.
func TestProvisioningReplacedOperation(t *testing.T) {
	m := newMovingHub(t)
	ctx := context.Background()
	tok, err := m.hub.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "line-4"})
	if err != nil {
		t.Fatal(err)
	}
	ops := make(chan device.ProvisioningOperation, 4)
	cfg := device.Config{
		Provisioning: &device.Provisioning{
			Token: tok.Secret, URL: "https://" + m.hub.HTTPAddr().String(), DeviceID: "line4-sensor",
			OnOperation: func(op device.ProvisioningOperation) { ops <- op },
		},
		StorePath: filepath.Join(t.TempDir(), "device.db"),
		CAFile:    m.hub.CAFile(),
	}
	device.SetTestHooks(&cfg, m.dial, 50*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		c, err := device.Start(ctx, cfg)
		if err == nil {
			err = c.Close()
		}
		done <- err
	}()
	next := func() device.ProvisioningOperation {
		t.Helper()
		select {
		case op := <-ops:
			return op
		case err := <-done:
			t.Fatalf("Start returned while waiting: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the device showed no provisioning operation")
		}
		return device.ProvisioningOperation{}
	}
	first := next()

	// Another claimant of the same id, with the same token.
	other, err := dprov.New("https://"+m.hub.HTTPAddr().String(), dprov.Options{CAFile: m.hub.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Init(ctx, dprov.InitRequest{ProvisioningToken: tok.Secret, DeviceID: "line4-sensor"}); err != nil {
		t.Fatal(err)
	}
	again := next()
	if again.ID == first.ID || again.VerificationCode == first.VerificationCode {
		t.Fatalf("the device shows %+v again after its operation was replaced", again)
	}
	if _, err := m.hub.Client.ApproveProvisioning(ctx, again.ID, provision.Approval{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not return after approval")
	}
}
