package hub_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// sessionExpiry is the hub's maximum session expiry in these tests: short,
// so that abandoned sessions end within the tests' deadlines.
const sessionExpiry = 2 * time.Second

func withSessionExpiry(d time.Duration) hubtest.Option {
	return func(c *hub.Config) { c.MaxSessionExpiry = d }
}

// persistentDevice connects a device with clean session false (MQTT 3.1.1)
// and subscribes to its cloud-to-device topic.
func persistentDevice(t *testing.T, h *hubtest.Hub, dev hubtest.Device, subscribe bool) *hubtest.Conn {
	t.Helper()
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatalf("%s: CONNACK 0x%02x %v", dev.ID, code, err)
	}
	if subscribe {
		if got, err := c.Subscribe("devices/" + dev.ID + "/messages/devicebound/#"); err != nil || !bytes.Equal(got, []byte{1}) {
			t.Fatalf("%s: SUBSCRIBE: %v %v", dev.ID, got, err)
		}
	}
	return c
}

// TestAbandonedSessionsExpire: persistent sessions whose clients do not come
// back within the hub's maximum session expiry are deleted, with their
// stored subscriptions: a device's (on the hub's own loop) and policy
// clients' over MQTT 3.1.1 and MQTT 5 (mosquitto_sub; mochi times them).
// Clients that came back, or never left, keep theirs.
func TestAbandonedSessionsExpire(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t, withSessionExpiry(sessionExpiry))
	host := h.DeviceHost()
	token := protocol.SignSAS(policyKey(t, h, "service"), host, time.Now().Add(time.Hour), "service")
	ep := tlsEndpoint(t, h)
	policyArgs := func(version, id string, extra ...string) []string {
		a := append(ep.args(), "-V", version, "-d", "-c", "-q", "1", "-i", id,
			"-u", host+"/"+id+"/?api-version=2021-04-12", "-P", token)
		return append(a, extra...)
	}

	gone := h.CreateDevice(t, "expiry-gone")
	back := h.CreateDevice(t, "expiry-back")
	persistentDevice(t, h, gone, true).Disconnect()
	persistentDevice(t, h, back, true).Disconnect()
	// Back at once (well within the expiry), and stays.
	stay := persistentDevice(t, h, back, false)
	defer stay.Disconnect()

	// Policy clients: two that leave (-E: exit once subscribed; MQTT 5
	// asks for an hour, which the hub's maximum caps), one that stays.
	for _, r := range []toolResult{
		runTool(t, "", "mosquitto_sub", policyArgs("mqttv311", "expiry-policy-v4", "-E", "-t", "factory/a")...),
		runTool(t, "", "mosquitto_sub", policyArgs("mqttv5", "expiry-policy-v5", "-E", "-x", "3600", "-t", "factory/b")...),
	} {
		if !strings.Contains(r.stdout+r.stderr, "Subscribed (mid: 1): 1") {
			t.Fatalf("mosquitto_sub did not subscribe:\n%s", r)
		}
	}
	sub := startMosquittoSub(t, needTool(t, "mosquitto_sub"), policyArgs("mqttv311", "expiry-policy-stays", "-t", "factory/c"))
	defer func() { _ = sub.cmd.Process.Kill() }()
	hubtest.Eventually(t, 30*time.Second, func() error {
		if rows := storedFilters(t, h)["expiry-policy-stays"]; len(rows) != 1 {
			return fmt.Errorf("the staying client's subscription is not stored yet: %q", rows)
		}
		return nil
	})

	// The abandoned sessions end (after at least the expiry; the deadline is long).
	left := []string{gone.ID, "expiry-policy-v4", "expiry-policy-v5"}
	hubtest.Eventually(t, 30*time.Second, func() error {
		rows := storedFilters(t, h)
		for _, id := range left {
			if len(rows[id]) > 0 {
				return fmt.Errorf("%s still has stored subscriptions %q", id, rows[id])
			}
		}
		return nil
	})
	rows := storedFilters(t, h)
	if len(rows[back.ID]) != 1 || len(rows["expiry-policy-stays"]) != 1 {
		t.Fatalf("clients that came back or stayed lost their subscriptions: %q", rows)
	}
	// The device that came back still gets its cloud-to-device messages.
	if _, err := h.Client.SendC2D(t.Context(), back.ID, []byte("still here"), api.C2DOptions{}); err != nil {
		t.Fatal(err)
	}
	pk, err := stay.Next(30 * time.Second)
	if err != nil || string(pk.Payload) != "still here" {
		t.Fatalf("device that came back: got %q %v, want its cloud-to-device message", pk.Payload, err)
	}
}

// TestExpiredSessionsPurgedAtStartup: sessions that ended while the hub was
// down are deleted when it starts, before any client can inherit them.
func TestExpiredSessionsPurgedAtStartup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h, stop, err := hubtest.Launch(dir, withSessionExpiry(sessionExpiry))
	if err != nil {
		t.Fatal(err)
	}
	dev := h.CreateDevice(t, "purge-dev")
	persistentDevice(t, h, dev, true).Disconnect()
	hubtest.Eventually(t, 30*time.Second, func() error {
		if rows := storedFilters(t, h)[dev.ID]; len(rows) != 1 {
			return fmt.Errorf("subscription not stored: %q", rows)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(sessionExpiry + time.Second) // the session ends while the hub is down

	var log lockedBuffer
	h2 := hubtest.StartDir(t, dir, withSessionExpiry(time.Hour), func(c *hub.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	if !strings.Contains(log.String(), "expired mqtt sessions deleted") {
		t.Fatalf("no startup purge in the log:\n%s", log.String())
	}
	if rows := storedFilters(t, h2)[dev.ID]; len(rows) != 0 {
		t.Fatalf("expired session's subscriptions kept: %q", rows)
	}
}
