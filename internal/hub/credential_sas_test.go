package hub_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Connections end when their credential ends. These tests give a
// credential a few seconds of life and check that the hub closes the
// connection after its end, and not before. The machine may be loaded, so
// the close may come late (up to closeMargin), never early.

// closeMargin bounds how long after a credential's end its connection may
// still be open.
const closeMargin = 10 * time.Second

// shortExpiry is a SAS expiry 2 to 3 seconds from now, in whole seconds as
// tokens carry it.
func shortExpiry() time.Time {
	return time.Now().Add(3 * time.Second).Truncate(time.Second)
}

// checkClosedAt fails the test unless closed lies in [end, end+closeMargin].
func checkClosedAt(t *testing.T, what string, end, closed time.Time) {
	t.Helper()
	if closed.Before(end) {
		t.Errorf("%s: closed %s before its credential ended", what, end.Sub(closed))
	}
	if late := closed.Sub(end); late > closeMargin {
		t.Errorf("%s: closed %s after its credential ended, want within %s", what, late, closeMargin)
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mosquittoSub is a mosquitto_sub running in the background.
type mosquittoSub struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan time.Time
}

// startMosquittoSub starts mosquitto_sub (with -d among args, so its
// output shows the packets) and waits until the hub accepted it once.
func startMosquittoSub(t *testing.T, path string, args []string) *mosquittoSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	// Line-buffered output (stdbuf), so that its lines arrive as they are
	// printed and not at exit.
	args = append([]string{"-oL", path}, args...)
	s := &mosquittoSub{cmd: exec.CommandContext(ctx, needTool(t, "stdbuf"), args...), out: new(lockedBuffer), exited: make(chan time.Time, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.WaitDelay = 2 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); s.exited <- time.Now() }()
	hubtest.Eventually(t, 30*time.Second, func() error {
		return countIs(strings.Count(s.out.String(), "received CONNACK (0)"), 1)
	})
	return s
}

// awaitExit waits for mosquitto_sub to exit, at most 30 s past end, and
// returns when it exited.
func (s *mosquittoSub) awaitExit(t *testing.T, end time.Time) time.Time {
	t.Helper()
	select {
	case at := <-s.exited:
		return at
	case <-time.After(time.Until(end) + 30*time.Second):
		t.Fatalf("mosquitto_sub still runs 30s after its credential ended:\n%s", s.out.String())
		return time.Time{}
	}
}

// awaitServerClose reads c until the hub closes it, at most 30 s past end,
// and returns the packets the hub sent before and when the close came.
func awaitServerClose(t *testing.T, name string, c *hubtest.Conn, end time.Time) ([]packets.Packet, time.Time, bool) {
	t.Helper()
	var got []packets.Packet
	deadline := end.Add(30 * time.Second)
	for {
		pk, err := c.Next(time.Until(deadline))
		if err == hubtest.ErrClosed {
			return got, time.Now(), true
		}
		if err != nil {
			t.Errorf("%s: still open 30s after its credential ended", name)
			return got, time.Time{}, false
		}
		got = append(got, pk)
	}
}

// checkServerDisconnect checks what the hub sent before it closed a
// connection: MQTT 5 one DISCONNECT with code and reason; 3.1.1 nothing.
func checkServerDisconnect(t *testing.T, name string, got []packets.Packet, v5 bool, code byte, reason string) {
	t.Helper()
	if !v5 {
		if len(got) != 0 {
			t.Errorf("%s: got %d packets before the close, want none (3.1.1 has no server DISCONNECT)", name, len(got))
		}
		return
	}
	if len(got) != 1 || got[0].FixedHeader.Type != packets.Disconnect {
		t.Errorf("%s: got %d packets %v, want one DISCONNECT", name, len(got), got)
		return
	}
	if d := got[0]; d.ReasonCode != code || d.Properties.ReasonString != reason {
		t.Errorf("%s: DISCONNECT 0x%02x %q, want 0x%02x %q", name, d.ReasonCode, d.Properties.ReasonString, code, reason)
	}
}

// TestSASExpiryMosquittoSub subscribes with Debian's mosquitto_sub (MQTT
// 3.1.1 and 5) using a token that expires in 2-3 s, and waits: the hub
// closes the connection once the token expired (MQTT 5 with DISCONNECT
// 0xA0), mosquitto_sub's 3.1.1 reconnect with the same token is refused,
// and it exits.
func TestSASExpiryMosquittoSub(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ep := tlsEndpoint(t, h)
	path := needTool(t, "mosquitto_sub")
	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			dev := h.CreateDevice(t, "sub-expiry-"+strings.TrimPrefix(version, "mqtt"))
			exp := shortExpiry()
			token := protocol.SignSAS(dev.Key, protocol.DeviceResource(dev.Host, dev.ID, ""), exp, "")
			args := append(ep.args(), "-d", "-V", version, "-q", "1", "-i", dev.ID, "-u", dev.Username(), "-P", token,
				"-c", "-t", "devices/"+dev.ID+"/messages/devicebound/#")
			sub := startMosquittoSub(t, path, args)
			end := sub.awaitExit(t, exp)
			checkClosedAt(t, "mosquitto_sub "+version, exp, end)
			o := sub.out.String()
			// Connected once: had the hub closed the connection before the
			// token expired, the reconnect would have been accepted too.
			if n := strings.Count(o, "received CONNACK (0)"); n != 1 {
				t.Errorf("accepted %d times, want once:\n%s", n, o)
			}
			// MQTT 5: the hub's DISCONNECT 0xA0 (160), after which it exits.
			// 3.1.1 has none: it sees the close, reconnects with the same
			// token, is refused (CONNACK 4) and exits with an error.
			if version == "mqttv5" && !strings.Contains(o, "Received DISCONNECT (160)") {
				t.Errorf("no DISCONNECT 0xA0:\n%s", o)
			}
			if version == "mqttv311" && (sub.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(o, "received CONNACK (4)")) {
				t.Errorf("exit %d; want the reconnect with the expired token refused:\n%s", sub.cmd.ProcessState.ExitCode(), o)
			}
			t.Logf("mosquitto_sub %s:\n%s", version, o)
		})
	}
	m := scrape(t, h)
	if v := metric(t, m, `ferry_mqtt_credential_disconnects_total{reason="sas_expired"}`); v != 2 {
		t.Errorf(`ferry_mqtt_credential_disconnects_total{reason="sas_expired"} %v, want 2`, v)
	}
}

// TestSASExpiryDisconnectReason connects a device, a module and a policy
// client with MQTT 5 and a device with 3.1.1, each with a token expiring in
// 2-3 s, and one device with a token for an hour: the MQTT 5 clients get
// DISCONNECT 0xA0 "SAS token expired" after expiry, the 3.1.1 one sees the
// connection close, and the long-lived one stays connected.
func TestSASExpiryDisconnectReason(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	addr := h.MQTTAddr("tls").String()
	host := h.DeviceHost()

	dev5 := h.CreateDevice(t, "expiry-v5")
	dev3 := h.CreateDevice(t, "expiry-v3")
	steady := h.CreateDevice(t, "expiry-steady")
	mod, err := h.Client.CreateModule(ctx, registry.Module{DeviceID: dev5.ID, ModuleID: "filter"})
	if err != nil {
		t.Fatal(err)
	}
	modKey, err := protocol.DecodeKey(mod.Authentication.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}

	exp := shortExpiry()
	type client struct {
		name string
		c    *hubtest.Conn
		v5   bool
	}
	connect := func(name, clientID, user string, key []byte, modID string, version byte, until time.Time) client {
		devID, _, _ := strings.Cut(clientID, "/")
		c, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{
			ClientID: clientID, Username: user, Version: version,
			Password: protocol.SignSAS(key, protocol.DeviceResource(host, devID, modID), until, ""),
		})
		if err != nil || code != 0 {
			t.Fatalf("%s: CONNACK 0x%02x %v", name, code, err)
		}
		t.Cleanup(c.Close)
		return client{name, c, version == 5}
	}
	expiring := []client{
		connect("device v5", dev5.ID, dev5.Username(), dev5.Key, "", 5, exp),
		connect("device v3.1.1", dev3.ID, dev3.Username(), dev3.Key, "", 4, exp),
		connect("module v5", dev5.ID+"/filter", host+"/"+dev5.ID+"/filter/?api-version=2021-04-12", modKey, "filter", 5, exp),
	}
	long := connect("steady", steady.ID, steady.Username(), steady.Key, "", 5, time.Now().Add(time.Hour))
	// An ordinary MQTT client signed with an access policy (served by mochi).
	pc, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: "dashboard", Username: host + "/dashboard/?api-version=2021-04-12", Version: 5, Clean: true,
		Password: protocol.SignSAS(policyKey(t, h, "service"), host, exp, "service"),
	})
	if err != nil || code != 0 {
		t.Fatalf("policy client: CONNACK 0x%02x %v", code, err)
	}
	t.Cleanup(pc.Close)
	expiring = append(expiring, client{"policy client v5", pc, true})

	var wg sync.WaitGroup
	for _, cl := range expiring {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, closed, ok := awaitServerClose(t, cl.name, cl.c, exp)
			if !ok {
				return
			}
			checkClosedAt(t, cl.name, exp, closed)
			checkServerDisconnect(t, cl.name, got, cl.v5, 0xA0, "SAS token expired")
		}()
	}
	wg.Wait()

	// The device with a long-lived token is still served.
	if code, err := long.c.Publish("devices/"+steady.ID+"/messages/events/", []byte("still here"), 1, false); err != nil || code != 0 {
		t.Fatalf("long-lived token's connection: PUBACK 0x%02x %v", code, err)
	}
	m := scrape(t, h)
	if v := metric(t, m, `ferry_mqtt_credential_disconnects_total{reason="sas_expired"}`); v != 4 {
		t.Errorf(`ferry_mqtt_credential_disconnects_total{reason="sas_expired"} %v, want 4`, v)
	}
}
