package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// MQTT 5 CONNACK reason codes and their MQTT 3.1.1 equivalents.
const (
	badCredentials   = 0x86
	notAuthorized    = 0x87
	v3BadCredentials = 0x04
	v3NotAuthorized  = 0x05
)

func TestConnectRefusals(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.MaxTokenLifetime = 24 * time.Hour })
	dev := h.CreateDevice(t, "dev-a")
	other := h.CreateDevice(t, "dev-b")
	disabled := h.CreateDevice(t, "dev-off")
	d, err := h.Client.GetDevice(context.Background(), disabled.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.Status = registry.StatusDisabled
	if _, err := h.Client.UpdateDevice(context.Background(), *d, ""); err != nil {
		t.Fatal(err)
	}
	sign := func(key []byte, id string, exp time.Time) string {
		return protocol.SignSAS(key, protocol.DeviceResource(dev.Host, id, ""), exp, "")
	}
	forged := []byte("not the device key, just 32 byte")
	cases := []struct {
		name     string
		clientID string
		user     string
		pass     string
		v5, v3   byte
	}{
		{"expired", dev.ID, dev.Username(), sign(dev.Key, dev.ID, time.Now().Add(-time.Minute)), badCredentials, v3BadCredentials},
		{"forged", dev.ID, dev.Username(), sign(forged, dev.ID, time.Now().Add(time.Hour)), badCredentials, v3BadCredentials},
		{"not yet valid", dev.ID, dev.Username(), sign(dev.Key, dev.ID, time.Now().Add(48*time.Hour)), badCredentials, v3BadCredentials},
		{"wrong device token", dev.ID, dev.Username(), other.Token(time.Hour), badCredentials, v3BadCredentials},
		{"token of another device's resource", other.ID, other.Username(), sign(dev.Key, other.ID, time.Now().Add(time.Hour)), badCredentials, v3BadCredentials},
		{"username names another device", dev.ID, other.Username(), dev.Token(time.Hour), badCredentials, v3BadCredentials},
		{"unknown device", "ghost", dev.Host + "/ghost/?api-version=2021-04-12", sign(dev.Key, "ghost", time.Now().Add(time.Hour)), badCredentials, v3BadCredentials},
		{"garbage password", dev.ID, dev.Username(), "SharedAccessSignature nonsense", badCredentials, v3BadCredentials},
		{"no password", dev.ID, dev.Username(), "", badCredentials, v3BadCredentials},
		{"disabled", disabled.ID, disabled.Username(), disabled.Token(time.Hour), notAuthorized, v3NotAuthorized},
	}
	addr := h.MQTTAddr("tls").String()
	for _, tc := range cases {
		for _, v := range []byte{5, 4} {
			want := tc.v5
			if v == 4 {
				want = tc.v3
			}
			c, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{ClientID: tc.clientID, Username: tc.user, Password: tc.pass, Version: v})
			if err != nil {
				t.Fatalf("%s v%d: %v", tc.name, v, err)
			}
			if c != nil {
				c.Close()
				t.Errorf("%s v%d: connection accepted, want refusal 0x%02x", tc.name, v, want)
				continue
			}
			if code != want {
				t.Errorf("%s v%d: CONNACK 0x%02x, want 0x%02x", tc.name, v, code, want)
			}
		}
	}
	// The good credentials work, so the refusals above are about what they changed.
	c, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatalf("valid credentials refused: code 0x%02x, %v", code, err)
	}
	c.Disconnect()

	metrics := scrape(t, h)
	for _, reason := range []string{"expired", "bad_signature", "not_yet_valid", "wrong_device", "unknown_device", "disabled", "bad_token", "no_credentials"} {
		if !strings.Contains(metrics, `ferry_mqtt_auth_failures_total{reason="`+reason+`"}`) {
			t.Errorf("metrics lack auth failures with reason %s", reason)
		}
	}
	assertStored(t, h, 0)
}

func TestDisableDisconnects(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-1")
	c := connect(t, h, dev, 4)
	d, err := h.Client.GetDevice(context.Background(), dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ConnectionState != "Connected" {
		t.Fatalf("connectionState %q, want Connected", d.ConnectionState)
	}
	d.Status = registry.StatusDisabled
	if _, err := h.Client.UpdateDevice(context.Background(), *d, d.ETag); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitClosed(5 * time.Second); err != nil {
		t.Fatal("a disabled device must be disconnected:", err)
	}
	// And it cannot come back.
	_, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != v3NotAuthorized {
		t.Fatalf("reconnect of a disabled device: code 0x%02x, %v", code, err)
	}
}

func TestSecondConnectionTakesOver(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-1")
	first := connect(t, h, dev, 4)
	second := connect(t, h, dev, 4)
	defer second.Disconnect()
	if err := first.WaitClosed(5 * time.Second); err != nil {
		t.Fatal("the first connection must be closed:", err)
	}
	if code, err := second.Publish("devices/dev-1/messages/events/", []byte("x"), 1, false); err != nil || code != 0 {
		t.Fatalf("second connection publish: 0x%02x %v", code, err)
	}
}

func connect(t *testing.T, h *hubtest.Hub, dev hubtest.Device, version byte) *hubtest.Conn {
	t.Helper()
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Version: version})
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("connect %s: CONNACK 0x%02x", dev.ID, code)
	}
	return c
}

// readAll returns every stored message of every stream.
func readAll(t *testing.T, h *hubtest.Hub) []api.Message {
	t.Helper()
	var out []api.Message
	after := ""
	for {
		page, err := h.Client.ReadStream(context.Background(), "*", api.ReadQuery{From: "beginning", After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Messages...)
		if len(page.Messages) == 0 {
			return out
		}
		after = page.Next
	}
}

func assertStored(t *testing.T, h *hubtest.Hub, n int) []api.Message {
	t.Helper()
	msgs := readAll(t, h)
	if len(msgs) != n {
		t.Fatalf("%d messages stored, want %d", len(msgs), n)
	}
	return msgs
}
