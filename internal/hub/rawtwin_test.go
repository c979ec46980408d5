package hub_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

// twinScript is one Paho client that subscribes to the twin response topic,
// publishes one request and prints the first answer as "TOPIC PAYLOAD".
// (mosquitto_rr refuses wildcard response topics, and two mosquitto clients
// with one device id would take each other's connection over.)
const twinScript = `
import sys, threading
import paho.mqtt.client as mqtt
host, port, ca, cid, user, pw, topic, body = sys.argv[1:9]
got = threading.Event()
def on_message(c, u, m):
    print(m.topic, m.payload.decode(), flush=True)
    got.set()
def on_subscribe(c, u, mid, q):
    c.publish(topic, body, qos=0)
c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, clean_session=True)
c.tls_set(ca_certs=ca)
c.username_pw_set(user, pw)
c.on_message = on_message
c.on_subscribe = on_subscribe
c.on_connect = lambda c, u, f, rc: c.subscribe("$iothub/twin/res/#", qos=0)
c.connect(host, int(port), 30)
c.loop_start()
ok = got.wait(10)
c.disconnect()
c.loop_stop()
sys.exit(0 if ok else 1)
`

// TestRawTwinTopics checks the raw twin topics with Debian's Paho, as a
// device that uses no Azure SDK would.
func TestRawTwinTopics(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "rr-1")
	ep := tlsEndpoint(t, h)
	script := filepath.Join(t.TempDir(), "twin.py")
	if err := os.WriteFile(script, []byte(twinScript), 0o600); err != nil {
		t.Fatal(err)
	}
	rr := func(topic, body string) toolResult {
		return runTool(t, "", "/usr/bin/python3", script, ep.host, ep.port, ep.ca, dev.ID, dev.Username(), dev.Token(time.Hour), topic, body)
	}
	r := rr("$iothub/twin/PATCH/properties/reported/?$rid=7", `{"fw":"2.1"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "$iothub/twin/res/204/?$rid=7&$version=2") {
		t.Fatalf("reported patch with paho: %s", r)
	}
	r = rr("$iothub/twin/GET/?$rid=8", " ")
	if r.code != 0 || !strings.Contains(r.stdout, "$iothub/twin/res/200/?$rid=8") || !strings.Contains(r.stdout, `"fw":"2.1"`) {
		t.Fatalf("twin GET with paho: %s", r)
	}
	big := `{"blob":"` + strings.Repeat("x", 33*1024) + `"}`
	r = rr("$iothub/twin/PATCH/properties/reported/?$rid=9", big)
	if r.code != 0 || !strings.Contains(r.stdout, "$iothub/twin/res/400/?$rid=9") || !strings.Contains(r.stdout, "errorCode") {
		t.Fatalf("a 33 KiB reported patch with paho: %s", r)
	}
	// A twin request without $rid is malformed: the device is disconnected and nothing changes.
	c := connect(t, h, dev, 4)
	if _, err := c.Publish("$iothub/twin/GET/", []byte(" "), 1, false); err == nil {
		t.Fatal("a twin GET without $rid was accepted")
	}
	if err := c.WaitClosed(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	tw := getTwin(t, h, dev.ID)
	if rep := tw["properties"].(map[string]any)["reported"].(map[string]any); rep["$version"] != 2.0 || rep["blob"] != nil {
		t.Fatalf("reported after the refusals: %v", rep)
	}
}
