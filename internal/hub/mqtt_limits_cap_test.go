package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// storedFilters reads, from the hub's database, the subscriptions stored
// for each client id.
func storedFilters(t *testing.T, h *hubtest.Hub) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subs, err := openDB(t, h).LoadSubscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]string)
	for _, s := range subs {
		out[s.ClientID] = append(out[s.ClientID], s.Filter)
	}
	return out
}

func withMaxSubscriptions(n int) hubtest.Option {
	return func(c *hub.Config) { c.MaxSubscriptions = n }
}

// TestSubscriptionCapDevice: a device with a persistent session cannot hold
// more than MaxSubscriptions distinct filters; the filters over the cap get
// a failure code in the SUBACK and are not stored, the others of the same
// SUBSCRIBE are granted, and re-subscribing a held filter does not count.
func TestSubscriptionCapDevice(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t, withMaxSubscriptions(3))
	addr := h.MQTTAddr("tls").String()
	for _, tc := range []struct {
		version byte
		refused byte
	}{{4, 0x80}, {5, 0x97}} {
		dev := h.CreateDevice(t, fmt.Sprintf("cap-dev-v%d", tc.version))
		c, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{
			ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Version: tc.version})
		if err != nil || code != 0 {
			t.Fatalf("v%d: CONNACK 0x%02x %v", tc.version, code, err)
		}
		c2d := "devices/" + dev.ID + "/messages/devicebound/"
		got, err := c.Subscribe(c2d+"a", c2d+"b")
		if err != nil || !bytes.Equal(got, []byte{1, 1}) {
			t.Fatalf("v%d: first SUBSCRIBE: %v %v, want [1 1]", tc.version, got, err)
		}
		// a and b again (no new filter), c (the third, at the cap), d and a
		// method filter (over it), and another device's filter (ACL).
		got, err = c.Subscribe(c2d+"a", c2d+"c", c2d+"d", "$iothub/methods/POST/#", c2d+"b", "devices/other/messages/devicebound/#")
		want := []byte{1, 1, tc.refused, tc.refused, 1, aclRefusal(tc.version)}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("v%d: SUBSCRIBE over the cap: % x %v, want % x", tc.version, got, err, want)
		}
		// An UNSUBSCRIBE makes room again.
		unsubscribe(t, c, tc.version, c2d+"a")
		got, err = c.Subscribe(c2d+"d", c2d+"e")
		if want := []byte{1, tc.refused}; err != nil || !bytes.Equal(got, want) {
			t.Fatalf("v%d: SUBSCRIBE after UNSUBSCRIBE: % x %v, want % x", tc.version, got, err, want)
		}
		hubtest.Eventually(t, 30*time.Second, func() error {
			rows := storedFilters(t, h)[dev.ID]
			if len(rows) != 3 {
				return fmt.Errorf("stored filters of %s: %q, want the 3 granted", dev.ID, rows)
			}
			return nil
		})
		c.Disconnect()
	}
	// Two refusals per version in the SUBSCRIBE over the cap, one after the
	// UNSUBSCRIBE; the ACL refusals are not among them.
	if v := metric(t, scrape(t, h), "ferry_mqtt_subscriptions_refused_total"); v != 6 {
		t.Errorf("ferry_mqtt_subscriptions_refused_total %v, want 6", v)
	}
}

// unsubscribe sends an UNSUBSCRIBE and waits for its UNSUBACK.
func unsubscribe(t *testing.T, c *hubtest.Conn, version byte, filter string) {
	t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1},
		ProtocolVersion: version,
		PacketID:        900,
		Filters:         packets.Subscriptions{{Filter: filter}},
	}
	var buf bytes.Buffer
	if err := pk.UnsubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRaw(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	for {
		in, err := c.Next(30 * time.Second)
		if err != nil {
			t.Fatalf("no UNSUBACK: %v", err)
		}
		if in.FixedHeader.Type == packets.Unsuback && in.PacketID == 900 {
			return
		}
	}
}

func aclRefusal(version byte) byte {
	if version >= 5 {
		return 0x87
	}
	return 0x80
}

var subscribedLine = regexp.MustCompile(`Subscribed \(mid: \d+\): ([0-9, ]+)`)

// TestSubscriptionCapPolicyClient: the same cap for access-policy clients,
// which mochi serves, with Debian's mosquitto_sub as the client (one
// SUBSCRIBE with five filters; -E exits once it is acknowledged).
func TestSubscriptionCapPolicyClient(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t, withMaxSubscriptions(3))
	host := h.DeviceHost()
	token := protocol.SignSAS(policyKey(t, h, "service"), host, time.Now().Add(time.Hour), "service")
	ep := tlsEndpoint(t, h)
	for _, tc := range []struct {
		version, id, want string
	}{
		// factory/a twice: the same filter never counts twice.
		{"mqttv311", "cap-policy-v4", "1, 1, 1, 128, 1, 128"},
		{"mqttv5", "cap-policy-v5", "1, 1, 1, 151, 1, 151"},
	} {
		args := append(ep.args(), "-V", tc.version, "-d", "-E", "-c", "-q", "1", "-i", tc.id,
			"-u", host+"/"+tc.id+"/?api-version=2021-04-12", "-P", token,
			"-t", "factory/a", "-t", "factory/b", "-t", "factory/c", "-t", "factory/d", "-t", "factory/a", "-t", "factory/e")
		if tc.version == "mqttv5" {
			args = append(args, "-x", "3600")
		}
		r := runTool(t, "", "mosquitto_sub", args...)
		m := subscribedLine.FindStringSubmatch(r.stdout + r.stderr)
		if m == nil || m[1] != tc.want {
			t.Fatalf("%s: want SUBACK %q:\n%s", tc.version, tc.want, r)
		}
		hubtest.Eventually(t, 30*time.Second, func() error {
			rows := storedFilters(t, h)[tc.id]
			if len(rows) != 3 {
				return fmt.Errorf("stored filters of %s: %q, want the 3 granted", tc.id, rows)
			}
			return nil
		})
	}
	// Back with the same id, the held filters still count.
	args := append(ep.args(), "-V", "mqttv311", "-d", "-E", "-c", "-q", "1", "-i", "cap-policy-v4",
		"-u", host+"/cap-policy-v4/?api-version=2021-04-12", "-P", token, "-t", "factory/z", "-t", "factory/b")
	r := runTool(t, "", "mosquitto_sub", args...)
	if m := subscribedLine.FindStringSubmatch(r.stdout + r.stderr); m == nil || m[1] != "128, 1" {
		t.Fatalf("reconnected client: want SUBACK \"128, 1\":\n%s", r)
	}
	if v := metric(t, scrape(t, h), "ferry_mqtt_subscriptions_refused_total"); v != 5 {
		t.Errorf("ferry_mqtt_subscriptions_refused_total %v, want 5", v)
	}
}
