package hub_test

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// TestPolicyClientsUseHubAsBroker: clients that sign with an access policy
// holding ServiceConnect use the hub as an ordinary MQTT broker outside the
// device namespaces, and cannot reach device topics.
func TestPolicyClientsUseHubAsBroker(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	host := h.DeviceHost()
	key := policyKey(t, h, "service")
	token := protocol.SignSAS(key, host, time.Now().Add(time.Hour), "service")
	addr := h.MQTTAddr("tls").String()
	dial := func(id string, version byte) *hubtest.Conn {
		c, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{
			ClientID: id, Username: host + "/" + id + "/?api-version=2021-04-12", Password: token, Version: version, Clean: true})
		if err != nil || code != 0 {
			t.Fatalf("policy client %s: CONNACK 0x%02x %v", id, code, err)
		}
		return c
	}
	sub := dial("dashboard", 5)
	defer sub.Disconnect()
	if granted, err := sub.Subscribe("factory/#"); err != nil || granted[0] > 1 {
		t.Fatalf("subscribe factory/#: %v %v", granted, err)
	}
	for _, f := range []string{"devices/#", "devices/dev-1/messages/events/#", "$iothub/methods/POST/#", "#"} {
		if granted, err := sub.Subscribe(f); err != nil || granted[0] < 0x80 {
			t.Errorf("policy client subscribe %q: %v %v, want a refusal", f, granted, err)
		}
	}
	pub := dial("line-controller", 4)
	defer pub.Disconnect()
	if code, err := pub.Publish("factory/line1/state", []byte("running"), 1, false); err != nil || code != 0 {
		t.Fatalf("publish: 0x%02x %v", code, err)
	}
	pk, err := sub.Next(5 * time.Second)
	if err != nil || pk.TopicName != "factory/line1/state" || string(pk.Payload) != "running" {
		t.Fatalf("subscriber got %q %q %v", pk.TopicName, pk.Payload, err)
	}

	// A policy without ServiceConnect may not use the broker.
	readKey := policyKey(t, h, "registryRead")
	_, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: "reader", Username: host + "/reader/?api-version=2021-04-12",
		Password: protocol.SignSAS(readKey, host, time.Now().Add(time.Hour), "registryRead"), Version: 5})
	if err != nil || code != 0x87 {
		t.Fatalf("registryRead policy client: CONNACK 0x%02x %v, want 0x87", code, err)
	}
	// Nothing of this is telemetry.
	assertStored(t, h, 0)
}

// TestMalformedPacketsDoNotCrashTheHub: a SUBSCRIBE body that makes the MQTT
// codec index out of range (found by fuzzing) ends only that connection,
// whether it comes from a device or from a policy client.
func TestMalformedPacketsDoNotCrashTheHub(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-1")
	host := h.DeviceHost()
	token := protocol.SignSAS(policyKey(t, h, "service"), host, time.Now().Add(time.Hour), "service")
	bad := []byte{0x82, 0x06, '0', '0', 0x00, 0x00, 0x01, '0'}
	for _, o := range []hubtest.ConnectOptions{
		{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Version: 5},
		{ClientID: "plain", Username: host + "/plain/?api-version=2021-04-12", Password: token, Version: 5, Clean: true},
	} {
		c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), o)
		if err != nil || code != 0 {
			t.Fatalf("%s: connect 0x%02x %v", o.ClientID, code, err)
		}
		if err := c.WriteRaw(bad); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitClosed(5 * time.Second); err != nil {
			t.Fatalf("%s: %v", o.ClientID, err)
		}
	}
	// The hub still serves.
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	if code, err := c.Publish("devices/dev-1/messages/events/", []byte("alive"), 1, false); err != nil || code != 0 {
		t.Fatalf("publish after the malformed packets: 0x%02x %v", code, err)
	}
}
