package hub_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

func TestTelemetryStoredWithProperties(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "thermo-1")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	// The bag exactly as Node's SDK writes it (PROTOCOL.md §1.4).
	topic := "devices/thermo-1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.sub=thermostat1&a%20b%2Fc=x%26y%3Dz&stream=climate"
	if code, err := c.Publish(topic, []byte(`{"temperature":21.5}`), 1, false); err != nil || code != 0 {
		t.Fatalf("publish: 0x%02x %v", code, err)
	}
	if _, err := c.Publish("devices/thermo-1/messages/events/", []byte("qos0"), 0, false); err != nil {
		t.Fatal(err)
	}
	var msgs []apiMessage
	hubtest.Eventually(t, 20*time.Second, func() error {
		msgs = readAll(t, h)
		return countIs(len(msgs), 2)
	})
	m := msgs[0]
	if m.DeviceID != "thermo-1" || m.Stream != "climate" || string(m.Body) != `{"temperature":21.5}` {
		t.Fatalf("stored message %+v", m)
	}
	sp := m.SystemProperties
	if sp.MessageID != "m1" || sp.ContentType != "application/json" || sp.ContentEncoding != "utf-8" || sp.Component != "thermostat1" || sp.AuthMethod != "sas" {
		t.Fatalf("system properties %+v", sp)
	}
	if m.Properties["a b/c"] != "x&y=z" {
		t.Fatalf("application properties %v", m.Properties)
	}
	if m.EnqueuedTime.IsZero() || time.Since(m.EnqueuedTime) > time.Minute {
		t.Fatalf("enqueued time %v", m.EnqueuedTime)
	}
	if msgs[1].Stream != "default" || string(msgs[1].Body) != "qos0" {
		t.Fatalf("qos 0 message %+v", msgs[1])
	}
}

func TestACLRefusals(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-a")
	h.CreateDevice(t, "dev-b")

	// MQTT 5: a PUBACK with "not authorized", the connection stays.
	c5 := connect(t, h, dev, 5)
	code, err := c5.Publish("devices/dev-b/messages/events/", []byte("spoof"), 1, false)
	if err != nil || code != 0x87 {
		t.Fatalf("v5 publish to another device: 0x%02x %v, want 0x87", code, err)
	}
	for _, f := range []string{"devices/dev-b/messages/devicebound/#", "#", "devices/+/messages/events/#", "$iothub/#x", "other/topic"} {
		granted, err := c5.Subscribe(f)
		if err != nil {
			t.Fatal(err)
		}
		if granted[0] < 0x80 {
			t.Errorf("v5 subscribe %q granted 0x%02x, want a refusal", f, granted[0])
		}
	}
	for _, f := range []string{"devices/dev-a/messages/devicebound/#", "$iothub/twin/res/#", "$iothub/methods/POST/#"} {
		granted, err := c5.Subscribe(f)
		if err != nil {
			t.Fatal(err)
		}
		if granted[0] > 1 {
			t.Errorf("v5 subscribe %q refused 0x%02x", f, granted[0])
		}
	}
	c5.Disconnect()

	// MQTT 3.1.1: SUBACK 0x80 for a foreign filter; publishing elsewhere ends the connection.
	c3 := connect(t, h, dev, 4)
	granted, err := c3.Subscribe("devices/dev-b/#")
	if err != nil || granted[0] != 0x80 {
		t.Fatalf("v3 subscribe to another device: %v %v, want 0x80", granted, err)
	}
	if _, err := c3.Publish("not/a/device/topic", []byte("x"), 1, false); err == nil {
		t.Fatal("v3 publish outside the device's topics must close the connection")
	}
	if err := c3.WaitClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	assertStored(t, h, 0)
}

func TestQoS2AndOversizeRefused(t *testing.T) {
	h := hubtest.Start(t, func(c *hubConfig) { c.MaxMessageBytes = 1024 })
	dev := h.CreateDevice(t, "dev-a")

	c := connect(t, h, dev, 4)
	if _, err := c.Publish("devices/dev-a/messages/events/", []byte("q2"), 2, false); err == nil {
		t.Fatal("a QoS 2 publish must close the connection")
	}
	if err := c.WaitClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	c5 := connect(t, h, dev, 5)
	code, err := c5.Publish("devices/dev-a/messages/events/", bytes.Repeat([]byte("x"), 1025), 1, false)
	if err != nil || code != 0x95 {
		t.Fatalf("v5 oversize publish: 0x%02x %v, want 0x95", code, err)
	}
	code, err = c5.Publish("devices/dev-a/messages/events/bad%zz=1", []byte("x"), 1, false)
	if err != nil || code < 0x80 {
		t.Fatalf("v5 publish with a malformed property bag: 0x%02x %v, want a refusal", code, err)
	}
	code, err = c5.Publish("devices/dev-a/messages/events/stream=no%20spaces", []byte("x"), 1, false)
	if err != nil || code < 0x80 {
		t.Fatalf("v5 publish with a bad stream name: 0x%02x %v, want a refusal", code, err)
	}
	c5.Disconnect()

	c3 := connect(t, h, dev, 4)
	if _, err := c3.Publish("devices/dev-a/messages/events/", bytes.Repeat([]byte("x"), 1025), 1, false); err == nil {
		t.Fatal("v3 oversize publish must close the connection")
	}
	assertStored(t, h, 0)
	if m := scrape(t, h); !strings.Contains(m, `ferry_messages_refused_total{reason="too_large"} 2`) {
		t.Errorf("too_large refusals not counted:\n%s", grep(m, "refused"))
	}
}

func TestRetainAndWill(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-a")
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour),
		WillTopic: "devices/dev-a/messages/events/state=gone", WillPayload: []byte("offline")})
	if err != nil || code != 0 {
		t.Fatalf("connect: 0x%02x %v", code, err)
	}
	if code, err := c.Publish("devices/dev-a/messages/events/", []byte("kept"), 1, true); err != nil || code != 0 {
		t.Fatalf("retained publish: 0x%02x %v", code, err)
	}
	c.Close() // abruptly: the will fires
	var msgs []apiMessage
	hubtest.Eventually(t, 20*time.Second, func() error {
		msgs = readAll(t, h)
		return countIs(len(msgs), 2)
	})
	if msgs[0].Properties["mqtt-retain"] != "true" {
		t.Errorf("retained message lacks mqtt-retain: %v", msgs[0].Properties)
	}
	if msgs[1].Properties["iothub-MessageType"] != "Will" || string(msgs[1].Body) != "offline" || msgs[1].Properties["state"] != "gone" {
		t.Errorf("will message %+v", msgs[1])
	}
}

func TestPersistentSessionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := hubtest.StartDir(t, dir)
	dev := h.CreateDevice(t, "dev-a")
	c := connect(t, h, dev, 4) // clean=false, as Azure's SDKs connect
	if granted, err := c.Subscribe("devices/dev-a/messages/devicebound/#"); err != nil || granted[0] != 1 {
		t.Fatalf("subscribe: %v %v", granted, err)
	}
	c.Disconnect()
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	h2 := hubtest.StartDir(t, dir)
	dev.Host = h2.DeviceHost()
	c2 := connect(t, h2, dev, 4) // no SUBSCRIBE this time
	defer c2.Disconnect()
	if err := h2.Deliver("devices/dev-a/messages/devicebound/%24.mid=c1", []byte("hello"), 1); err != nil {
		t.Fatal(err)
	}
	pk, err := c2.Next(5 * time.Second)
	if err != nil {
		t.Fatal("the subscription did not survive the restart:", err)
	}
	if pk.TopicName != "devices/dev-a/messages/devicebound/%24.mid=c1" || string(pk.Payload) != "hello" {
		t.Fatalf("got %q %q", pk.TopicName, pk.Payload)
	}

	// A clean session forgets it.
	c2.Disconnect()
	c3, code, err := hubtest.Dial(h2.MQTTAddr("tls").String(), h2.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Clean: true})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	defer c3.Disconnect()
	_ = h2.Deliver("devices/dev-a/messages/devicebound/", []byte("nobody"), 1)
	if pk, err := c3.Next(300 * time.Millisecond); err == nil {
		t.Fatalf("clean session received %q", pk.TopicName)
	}
}

func scrape(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.CAPool, ServerName: "localhost"}}}
	resp, err := hc.Get("https://" + h.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSubscriptionSurvivesTraffic: the hub reuses read buffers, so a kept
// subscription must not point into one (a device-bound message would then
// match a filter overwritten by later telemetry).
func TestSubscriptionSurvivesTraffic(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-a")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	if granted, err := c.Subscribe("devices/dev-a/messages/devicebound/#"); err != nil || granted[0] != 1 {
		t.Fatalf("subscribe: %v %v", granted, err)
	}
	for i := 0; i < 50; i++ {
		topic := "devices/dev-a/messages/events/%24.ct=application%2Fjson&filler=" + strings.Repeat("x", i*7)
		if code, err := c.Publish(topic, bytes.Repeat([]byte{'y'}, 100+i*13), 1, false); err != nil || code != 0 {
			t.Fatalf("publish %d: 0x%02x %v", i, code, err)
		}
	}
	if err := h.Deliver("devices/dev-a/messages/devicebound/%24.mid=1", []byte("c2d"), 1); err != nil {
		t.Fatal(err)
	}
	pk, err := c.Next(5 * time.Second)
	if err != nil || string(pk.Payload) != "c2d" {
		t.Fatalf("device-bound message: %q %v", pk.Payload, err)
	}
}

// TestResentMessageStoredOnce: a device that resends a message after a
// reconnect (its PUBACK was lost) gets a PUBACK, and the stream keeps one copy.
func TestResentMessageStoredOnce(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-a")
	topic := "devices/dev-a/messages/events/%24.mid=once-1"
	for i := 0; i < 2; i++ {
		c := connect(t, h, dev, 4)
		if code, err := c.Publish(topic, []byte("reading"), 1, false); err != nil || code != 0 {
			t.Fatalf("publish %d: 0x%02x %v", i, code, err)
		}
		c.Close()
	}
	// Another device may use the same message id.
	other := h.CreateDevice(t, "dev-b")
	c := connect(t, h, other, 4)
	defer c.Disconnect()
	if code, err := c.Publish("devices/dev-b/messages/events/%24.mid=once-1", []byte("reading"), 1, false); err != nil || code != 0 {
		t.Fatalf("publish: 0x%02x %v", code, err)
	}
	msgs := assertStored(t, h, 2)
	if msgs[0].DeviceID != "dev-a" || msgs[1].DeviceID != "dev-b" {
		t.Fatalf("stored %s and %s", msgs[0].DeviceID, msgs[1].DeviceID)
	}
}

func TestPropertyBagLimit(t *testing.T) {
	h := hubtest.Start(t, func(c *hubConfig) { c.MaxPropertyBagBytes = 64 })
	dev := h.CreateDevice(t, "dev-a")
	c := connect(t, h, dev, 5)
	defer c.Disconnect()
	long := "devices/dev-a/messages/events/note=" + strings.Repeat("z", 80)
	if code, err := c.Publish(long, []byte("x"), 1, false); err != nil || code < 0x80 {
		t.Fatalf("publish with an 85-byte bag and a 64-byte limit: 0x%02x %v, want a refusal", code, err)
	}
	if code, err := c.Publish("devices/dev-a/messages/events/note=short", []byte("x"), 1, false); err != nil || code != 0 {
		t.Fatalf("publish with a short bag: 0x%02x %v", code, err)
	}
	assertStored(t, h, 1)
}
