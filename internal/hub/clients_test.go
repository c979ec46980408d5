package hub_test

// End-to-end tests with real third-party clients: mosquitto_pub and
// mosquitto_sub (Debian's mosquitto-clients), Paho for Python (Debian's
// python3-paho-mqtt, run with /usr/bin/python3), and the ferry binary itself.
// ./scripts/test installs the clients.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// python is the interpreter that has paho-mqtt (Debian's python3-paho-mqtt);
// a python3 earlier on PATH (pyenv, a venv) may lack it.
const python = "/usr/bin/python3"

// toolTimeout bounds every run of an external client.
const toolTimeout = 30 * time.Second

// toolResult is what one run of an external client produced.
type toolResult struct {
	code           int // exit code; -1 when a signal ended the process
	stdout, stderr string
}

func (r toolResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// needTool returns the path of an external client, failing the test when it
// is missing: these tests are the proof that real clients work.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (./scripts/test installs it): %v", name, err)
	}
	return p
}

// runTool runs an external client with a deadline and returns its exit code
// and output; it fails the test if the client does not finish in time.
func runTool(t *testing.T, stdin string, name string, args ...string) toolResult {
	t.Helper()
	path := needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	r := toolResult{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %s\n%s", name, strings.Join(args, " "), toolTimeout, r)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// endpoint is where an MQTT client connects.
type endpoint struct {
	host, port string
	ca         string // the CA to trust; "" for plain TCP
}

// tlsEndpoint is the hub's MQTT over TLS listener, by the name in its certificate.
func tlsEndpoint(t *testing.T, h *hubtest.Hub) endpoint {
	t.Helper()
	_, port, err := net.SplitHostPort(h.MQTTAddr("tls").String())
	if err != nil {
		t.Fatal(err)
	}
	return endpoint{host: "localhost", port: port, ca: h.CAFile()}
}

// tcpEndpoint is the hub's plain MQTT listener (loopback, as 1883 by default).
func tcpEndpoint(t *testing.T, addr string) endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return endpoint{host: host, port: port}
}

func (e endpoint) args() []string {
	a := []string{"-h", e.host, "-p", e.port}
	if e.ca != "" {
		a = append(a, "--cafile", e.ca)
	}
	return a
}

// mosquittoPub publishes one QoS 1 message as the device.
func mosquittoPub(t *testing.T, ep endpoint, version string, dev hubtest.Device, password, topic, body string) toolResult {
	t.Helper()
	args := append(ep.args(), "-V", version, "-q", "1", "-i", dev.ID, "-u", dev.Username(), "-P", password,
		"-t", topic, "-m", body)
	return runTool(t, "", "mosquitto_pub", args...)
}

// deviceMessages returns every stored message of one device.
func deviceMessages(t *testing.T, h *hubtest.Hub, id string) []api.Message {
	t.Helper()
	var out []api.Message
	after := ""
	for {
		page, err := h.Client.ReadStream(context.Background(), "*", api.ReadQuery{From: "beginning", Device: id, After: after, Limit: 1000})
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

// monitorEvent is one line of `ferry monitor --json`.
type monitorEvent struct {
	Event struct {
		Origin     string `json:"origin"`
		Stream     string `json:"stream"`
		Properties struct {
			System      map[string]string `json:"system"`
			Application map[string]string `json:"application"`
		} `json:"properties"`
		Payload json.RawMessage `json:"payload"`
	} `json:"event"`
}

// monitorFirst runs `ferry monitor --json --from beginning --max 1` for one
// device in-process, with the owner connection string and the hub's CA, and
// returns the one event it printed.
func monitorFirst(t *testing.T, h *hubtest.Hub, device string) monitorEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"monitor", "--json", "--from", "beginning", "--max", "1", "--device", device,
		"--timeout", "20s", "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("ferry monitor: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("ferry monitor printed %d lines, want 1:\n%s", len(lines), stdout.String())
	}
	var ev monitorEvent
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("ferry monitor line %q: %v", lines[0], err)
	}
	return ev
}

// compactJSON returns b without insignificant white space.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("%q is not JSON: %v", b, err)
	}
	return out.String()
}

// TestMosquittoPubTelemetry publishes with mosquitto_pub over TLS and plain
// TCP, with MQTT 3.1.1 and 5, with the property bag both as people write it
// ($.ct) and as the SDKs percent-encode it (%24.ct), and reads each message
// back over REST and through `ferry monitor`.
func TestMosquittoPubTelemetry(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	tlsEP, tcpEP := tlsEndpoint(t, h), tcpEndpoint(t, h.MQTTAddr("tcp").String())
	cases := []struct {
		name    string
		ep      endpoint
		version string
		bag     string // %s is the message id
	}{
		{"tls-311", tlsEP, "mqttv311", "$.ct=application%%2Fjson&$.mid=%s&site=A"},
		{"tls-311-sdk-encoding", tlsEP, "mqttv311", "%%24.ct=application%%2Fjson&%%24.mid=%s&site=A"},
		{"tcp-311", tcpEP, "mqttv311", "$.ct=application%%2Fjson&$.mid=%s&site=A"},
		{"tls-5", tlsEP, "mqttv5", "%%24.ct=application%%2Fjson&%%24.mid=%s&site=A"},
		{"tcp-5", tcpEP, "mqttv5", "$.ct=application%%2Fjson&$.mid=%s&site=A"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev := h.CreateDevice(t, "mosq-"+tc.name)
			mid := "m-" + strconv.Itoa(i+1)
			topic := "devices/" + dev.ID + "/messages/events/" + fmt.Sprintf(tc.bag, mid)
			if r := mosquittoPub(t, tc.ep, tc.version, dev, dev.Token(time.Hour), topic, `{"t":21}`); r.code != 0 || r.stderr != "" {
				t.Fatalf("mosquitto_pub: %s", r)
			}
			// The PUBACK came after the durable append: no waiting.
			msgs := deviceMessages(t, h, dev.ID)
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored, want 1: %+v", len(msgs), msgs)
			}
			m := msgs[0]
			sp := m.SystemProperties
			if m.DeviceID != dev.ID || string(m.Body) != `{"t":21}` || sp.MessageID != mid ||
				sp.ContentType != "application/json" || sp.AuthMethod != "sas" {
				t.Errorf("stored message %+v", m)
			}
			if len(m.Properties) != 1 || m.Properties["site"] != "A" {
				t.Errorf("application properties %v, want exactly site=A", m.Properties)
			}

			ev := monitorFirst(t, h, dev.ID).Event
			if ev.Origin != dev.ID || ev.Properties.System["messageId"] != mid ||
				ev.Properties.System["contentType"] != "application/json" {
				t.Errorf("monitor event %+v", ev)
			}
			if len(ev.Properties.Application) != 1 || ev.Properties.Application["site"] != "A" {
				t.Errorf("monitor application properties %v", ev.Properties.Application)
			}
			if got := compactJSON(t, ev.Payload); got != `{"t":21}` {
				t.Errorf("monitor payload %s, want the body's JSON {\"t\":21}", got)
			}
		})
	}
}

// TestMosquittoPubRefusals checks that mosquitto_pub fails, and nothing is
// stored, with an expired token or when publishing to another device's topic.
func TestMosquittoPubRefusals(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "mosq-dev")
	victim := h.CreateDevice(t, "mosq-victim")
	ep := tlsEndpoint(t, h)
	expired := protocol.SignSAS(dev.Key, protocol.DeviceResource(dev.Host, dev.ID, ""), time.Now().Add(-time.Minute), "")
	own := "devices/" + dev.ID + "/messages/events/"
	foreign := "devices/" + victim.ID + "/messages/events/"

	r := mosquittoPub(t, ep, "mqttv311", dev, expired, own, "expired-311")
	if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "bad user name or password") {
		t.Errorf("expired token, MQTT 3.1.1: want a refusal (CONNACK 4)\n%s", r)
	}
	// mosquitto_pub 2.0.11 aborts on any refused MQTT 5 CONNACK (with
	// mosquitto's own broker too); what matters is that it does not succeed.
	if r := mosquittoPub(t, ep, "mqttv5", dev, expired, own, "expired-5"); r.code == 0 {
		t.Errorf("expired token, MQTT 5: mosquitto_pub succeeded\n%s", r)
	}
	// 3.1.1 has no negative PUBACK: the hub closes the connection.
	if r := mosquittoPub(t, ep, "mqttv311", dev, dev.Token(time.Hour), foreign, "spoof-311"); r.code == 0 {
		t.Errorf("publish to another device's topic, MQTT 3.1.1: mosquitto_pub succeeded\n%s", r)
	}
	// MQTT 5 refuses with PUBACK 0x87, which mosquitto_pub 2.0.11 reports
	// as a warning while it still exits 0.
	if r := mosquittoPub(t, ep, "mqttv5", dev, dev.Token(time.Hour), foreign, "spoof-5"); !strings.Contains(r.stderr, "Not authorized") {
		t.Errorf("publish to another device's topic, MQTT 5: want PUBACK \"Not authorized\"\n%s", r)
	}
	assertStored(t, h, 0)

	// The same client and device with a valid token on its own topic is
	// accepted, so the refusals above were about what they changed.
	if r := mosquittoPub(t, ep, "mqttv311", dev, dev.Token(time.Hour), own, "fine"); r.code != 0 {
		t.Fatalf("valid publish refused:\n%s", r)
	}
	if msgs := assertStored(t, h, 1); string(msgs[0].Body) != "fine" {
		t.Errorf("stored %q, want the valid message", msgs[0].Body)
	}
	m := scrape(t, h)
	for _, want := range []string{`ferry_mqtt_auth_failures_total{reason="expired"} 2`, `ferry_mqtt_acl_denied_total 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s\n%s", want, grep(m, "auth_failures"), grep(m, "acl_denied"))
		}
	}
}

// TestMosquittoSubForeignTopicDenied subscribes with mosquitto_sub -E (exit
// once the SUBACK arrives): a device's own C2D topic is granted, another
// device's is refused.
func TestMosquittoSubForeignTopicDenied(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "sub-dev")
	other := h.CreateDevice(t, "sub-other")
	ep := tlsEndpoint(t, h)
	sub := func(version, filter string) toolResult {
		args := append(ep.args(), "-V", version, "-q", "1", "-i", dev.ID, "-u", dev.Username(), "-P", dev.Token(time.Hour),
			"-t", filter, "-E", "-W", "10")
		return runTool(t, "", "mosquitto_sub", args...)
	}
	const denied = "All subscription requests were denied"
	for _, v := range []string{"mqttv311", "mqttv5"} {
		r := sub(v, "devices/"+other.ID+"/messages/devicebound/#")
		if !strings.Contains(r.stderr, denied) {
			t.Errorf("%s: subscription to another device's topic not denied:\n%s", v, r)
		}
		r = sub(v, "devices/"+dev.ID+"/messages/devicebound/#")
		if r.code != 0 || strings.Contains(r.stderr, denied) {
			t.Errorf("%s: subscription to the device's own topic:\n%s", v, r)
		}
	}
}

// pahoScript is the Paho client the Paho tests run, with /usr/bin/python3.
//
//	publish HOST PORT TRANSPORT PATH CA CLIENTID USER PASS TOPIC BODY
//	  connects (transport tcp or websockets, always TLS), publishes at QoS 1,
//	  waits for the PUBACK and prints "published".
//	session HOST PORT CA CLIENTID USER PASS
//	  connects with clean_session=False, subscribes to its C2D topic,
//	  disconnects, connects again without subscribing, prints
//	  "ready session_present=N" and waits for one message, which it prints
//	  as "message TOPIC QOS PAYLOAD".
const pahoScript = `
import sys, threading
import paho.mqtt.client as mqtt

def client(cid, user, pw, ca, transport="tcp", path=None, clean=True):
    c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, transport=transport, clean_session=clean)
    if path:
        c.ws_set_options(path=path)
    c.tls_set(ca_certs=ca)
    c.username_pw_set(user, pw)
    return c

def connect(c, host, port):
    done = threading.Event()
    state = {}
    def on_connect(c, userdata, flags, rc):
        state["rc"], state["sp"] = rc, flags.get("session present")
        done.set()
    c.on_connect = on_connect
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    if not done.wait(10) or state["rc"] != 0:
        print("connect failed", state, flush=True)
        sys.exit(2)
    return state["sp"]

def publish(host, port, transport, path, ca, cid, user, pw, topic, body):
    c = client(cid, user, pw, ca, transport, path)
    connect(c, host, port)
    info = c.publish(topic, body, qos=1)
    info.wait_for_publish(timeout=10)
    if not info.is_published():
        print("no PUBACK", flush=True)
        sys.exit(1)
    print("published", flush=True)
    c.disconnect()
    c.loop_stop()

def session(host, port, ca, cid, user, pw):
    filt = "devices/%s/messages/devicebound/#" % cid
    c = client(cid, user, pw, ca, clean=False)
    subscribed = threading.Event()
    granted = []
    def on_subscribe(c, userdata, mid, qos):
        granted.extend(qos)
        subscribed.set()
    c.on_subscribe = on_subscribe
    connect(c, host, port)
    c.subscribe(filt, qos=1)
    if not subscribed.wait(10):
        print("no SUBACK", flush=True)
        sys.exit(2)
    print("granted", granted[0], flush=True)
    c.disconnect()
    c.loop_stop()

    c = client(cid, user, pw, ca, clean=False)
    got = threading.Event()
    msgs = []
    def on_message(c, userdata, m):
        msgs.append(m)
        got.set()
    c.on_message = on_message
    sp = connect(c, host, port)
    print("ready session_present=%s" % sp, flush=True)
    if not got.wait(15):
        print("no message", flush=True)
        sys.exit(1)
    m = msgs[0]
    print("message", m.topic, m.qos, m.payload.decode(), flush=True)
    c.disconnect()
    c.loop_stop()

if sys.argv[1] == "publish":
    publish(*sys.argv[2:])
elif sys.argv[1] == "session":
    session(*sys.argv[2:])
else:
    sys.exit("unknown mode " + sys.argv[1])
`

// writePaho writes the Paho script and checks that the interpreter has Paho.
func writePaho(t *testing.T) string {
	t.Helper()
	if r := runTool(t, "", python, "-c", "import paho.mqtt.client"); r.code != 0 {
		t.Fatalf("%s lacks paho-mqtt (./scripts/test installs python3-paho-mqtt):\n%s", python, r)
	}
	path := filepath.Join(t.TempDir(), "paho_client.py")
	if err := os.WriteFile(path, []byte(pahoScript), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPahoWebSockets publishes with Paho over MQTT over WebSockets with TLS,
// at the Azure path /$iothub/websocket and at /mqtt, and waits for the PUBACK.
func TestPahoWebSockets(t *testing.T) {
	t.Parallel()
	script := writePaho(t)
	h := hubtest.Start(t)
	_, port, err := net.SplitHostPort(h.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"/$iothub/websocket", "/mqtt"} {
		dev := h.CreateDevice(t, "paho-ws-"+strconv.Itoa(i))
		mid := "ws-" + strconv.Itoa(i)
		topic := "devices/" + dev.ID + "/messages/events/%24.mid=" + mid + "&%24.ct=text%2Fplain&site=A"
		r := runTool(t, "", python, script, "publish", "localhost", port, "websockets", path, h.CAFile(),
			dev.ID, dev.Username(), dev.Token(time.Hour), topic, "hello over "+path)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "published" {
			t.Fatalf("paho over wss://localhost:%s%s:\n%s", port, path, r)
		}
		msgs := deviceMessages(t, h, dev.ID)
		if len(msgs) != 1 {
			t.Fatalf("%s: %d messages stored, want 1", path, len(msgs))
		}
		m := msgs[0]
		if string(m.Body) != "hello over "+path || m.SystemProperties.MessageID != mid ||
			m.SystemProperties.ContentType != "text/plain" || m.Properties["site"] != "A" {
			t.Errorf("%s: stored %+v", path, m)
		}
	}
}

// TestPahoPersistentSession is the Azure SDKs' token renewal (PROTOCOL.md
// §0.1): Paho connects with clean_session=False, subscribes, disconnects,
// connects again without subscribing, and still receives the C2D message.
func TestPahoPersistentSession(t *testing.T) {
	t.Parallel()
	script := writePaho(t)
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "paho-session")
	ep := tlsEndpoint(t, h)

	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, "session", ep.host, ep.port, ep.ca, dev.ID, dev.Username(), dev.Token(time.Hour))
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out []string
	next := func(prefix string) string {
		t.Helper()
		for line := range lines {
			out = append(out, line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		}
		t.Fatalf("paho ended before printing %q:\n%s\nstderr: %s", prefix, strings.Join(out, "\n"), stderr.String())
		return ""
	}
	if line := next("granted"); line != "granted 1" {
		t.Fatalf("subscription: %q, want QoS 1 granted", line)
	}
	if line := next("ready"); line != "ready session_present=1" {
		t.Errorf("reconnect with clean_session=False: %q, want session present", line)
	}
	topic := "devices/" + dev.ID + "/messages/devicebound/%24.mid=c2d-1&k=v"
	if err := h.Deliver(topic, []byte("hello paho"), 1); err != nil {
		t.Fatal(err)
	}
	if line := next("message"); line != "message "+topic+" 1 hello paho" {
		t.Errorf("received %q", line)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("paho: %v\n%s\nstderr: %s", err, strings.Join(out, "\n"), stderr.String())
	}
}

// httpsClient trusts the hub's CA.
func httpsClient(h *hubtest.Hub) *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.CAPool, ServerName: "localhost"}},
	}
}

// call makes one HTTPS request and returns the status and body.
func call(t *testing.T, hc *http.Client, method, url, auth, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// azureError decodes an error body and checks Azure's "ErrorCode:<code>;"
// prefix (any code when code is "").
func azureError(t *testing.T, b []byte, code string) {
	t.Helper()
	// A map, since the body has "Message" and "message" and a struct
	// field would match both (JSON clients match keys exactly).
	var e map[string]any
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	msg, _ := e["Message"].(string)
	prefix := "ErrorCode:" + code
	if code != "" {
		prefix += ";"
	}
	if !strings.HasPrefix(msg, prefix) || len(msg) <= len("ErrorCode:;") {
		t.Errorf("error Message %q, want it to start with %s", msg, prefix)
	}
}

// metric returns the value of the sample line that starts with name (with
// its labels, if any) in Prometheus' text format.
func metric(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("metrics lack %s", name)
	return 0
}

// openDB opens the running hub's database beside it, for what the REST
// API does not show; it is closed when the test ends.
func openDB(t *testing.T, h *hubtest.Hub) *sqlite.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlite.Open(ctx, filepath.Join(h.Dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// policyKey reads an access policy's primary key from the hub's database:
// the REST API does not expose policies.
func policyKey(t *testing.T, h *hubtest.Hub, name string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pols, err := openDB(t, h).ListPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pols {
		if p.KeyName == name {
			key, err := protocol.DecodeKey(p.PrimaryKey)
			if err != nil {
				t.Fatal(err)
			}
			return key
		}
	}
	t.Fatalf("the hub has no %s policy", name)
	return nil
}

// TestHTTPEndpoints covers the HTTPS port's health, readiness, OpenAPI and
// metrics endpoints after real traffic, and the REST API's refusals in
// Azure's error shape.
func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	hc := httpsClient(h)
	base := "https://" + h.HTTPAddr().String()

	if code, b := call(t, hc, "GET", base+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz: %d %s", code, b)
	}
	if code, b := call(t, hc, "GET", base+"/readyz", "", ""); code != 200 {
		t.Errorf("/readyz: %d %s", code, b)
	}
	code, b := call(t, hc, "GET", base+"/openapi.json", "", "")
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); code != 200 || err != nil {
		t.Errorf("/openapi.json: %d, %v", code, err)
	} else if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("/openapi.json: openapi = %v, want 3.x", doc["openapi"])
	}

	// Traffic: two accepted messages, one refused connection, one device connected.
	dev := h.CreateDevice(t, "http-dev")
	ep := tlsEndpoint(t, h)
	for i := range 2 {
		if r := mosquittoPub(t, ep, "mqttv311", dev, dev.Token(time.Hour), "devices/http-dev/messages/events/", "m"+strconv.Itoa(i)); r.code != 0 {
			t.Fatalf("mosquitto_pub: %s", r)
		}
	}
	expired := protocol.SignSAS(dev.Key, protocol.DeviceResource(dev.Host, dev.ID, ""), time.Now().Add(-time.Minute), "")
	if r := mosquittoPub(t, ep, "mqttv311", dev, expired, "devices/http-dev/messages/events/", "x"); r.code == 0 {
		t.Fatalf("expired token accepted: %s", r)
	}
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	m := scrape(t, h)
	if v := metric(t, m, "ferry_messages_in_total"); v != 2 {
		t.Errorf("ferry_messages_in_total %v, want 2", v)
	}
	if v := metric(t, m, "ferry_mqtt_connected"); v != 1 {
		t.Errorf("ferry_mqtt_connected %v, want 1", v)
	}
	if v := metric(t, m, `ferry_mqtt_auth_failures_total{reason="expired"}`); v != 1 {
		t.Errorf(`ferry_mqtt_auth_failures_total{reason="expired"} %v, want 1`, v)
	}
	if v := metric(t, m, `ferry_stream_append_latency_seconds_bucket{le="+Inf"}`); v < 2 {
		t.Errorf("ferry_stream_append_latency_seconds +Inf bucket %v, want >= 2", v)
	}

	// REST without credentials.
	req, _ := http.NewRequest("GET", base+"/devices/http-dev", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no Authorization: %d %q, want 401 with WWW-Authenticate", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	azureError(t, b, "IotHubUnauthorizedAccess")

	// The registryRead policy reads devices but may not write them or read telemetry.
	host := h.ServiceHost()
	readKey := policyKey(t, h, "registryRead")
	reader := protocol.SignSAS(readKey, host, time.Now().Add(time.Hour), "registryRead")
	if code, b := call(t, hc, "GET", base+"/devices/http-dev", reader, ""); code != 200 || !strings.Contains(string(b), `"deviceId":"http-dev"`) {
		t.Errorf("registryRead GET device: %d %s", code, b)
	}
	code, b = call(t, hc, "PUT", base+"/devices/read-only", reader, `{"deviceId":"read-only"}`)
	if code != 403 {
		t.Errorf("registryRead PUT device: %d %s, want 403", code, b)
	}
	azureError(t, b, "IotHubUnauthorizedAccess")
	if code, b := call(t, hc, "GET", base+"/api/v1/streams", reader, ""); code != 403 {
		t.Errorf("registryRead GET streams: %d %s, want 403", code, b)
	}
	// Signed with another policy's key under the registryRead name: refused.
	ownerCS, err := protocol.ParseConnectionString(h.OwnerConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	ownerKey, err := protocol.DecodeKey(ownerCS.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	forged := protocol.SignSAS(ownerKey, host, time.Now().Add(time.Hour), "registryRead")
	code, b = call(t, hc, "GET", base+"/devices/http-dev", forged, "")
	if code != 401 {
		t.Errorf("owner key with skn=registryRead: %d %s, want 401", code, b)
	}
	azureError(t, b, "IotHubUnauthorizedAccess")

	owner := protocol.SignSAS(ownerKey, host, time.Now().Add(time.Hour), ownerCS.SharedAccessKeyName)
	code, b = call(t, hc, "PUT", base+"/devices/x", owner, `{"deviceId": "x", `)
	if code != 400 {
		t.Errorf("PUT malformed JSON: %d %s, want 400", code, b)
	}
	azureError(t, b, "")
	code, b = call(t, hc, "GET", base+"/devices/no-such-device", owner, "")
	if code != 404 {
		t.Errorf("GET unknown device: %d %s, want 404", code, b)
	}
	azureError(t, b, "DeviceNotFound")
	if _, err := h.Client.GetDevice(context.Background(), "x"); err == nil {
		t.Error("the malformed PUT created device x")
	}
}

// TestGracefulShutdown runs the ferry binary, publishes QoS 1 messages with
// mosquitto_pub, sends SIGTERM while a device is connected, and expects exit
// 0 within 30 s and every message stored after a restart.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ferry binary")
	}
	t.Parallel()
	bin := buildFerry(t)
	dir := t.TempDir()
	p := startProcess(t, bin, dir)
	t.Cleanup(func() { _ = p.cmd.Process.Kill() }) // in case the test stops early; harmless after exit
	d, err := p.client(t).CreateDevice(context.Background(), registry.Device{DeviceID: "shutdown-dev"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := protocol.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
	dev := hubtest.Device{ID: d.DeviceID, Key: key, Host: "localhost"}
	ep := tcpEndpoint(t, p.mqtt)

	const n = 50
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "msg-%d\n", i)
	}
	// -l: one message per stdin line; mosquitto_pub exits once all are acknowledged.
	args := append(ep.args(), "-V", "mqttv311", "-q", "1", "-i", dev.ID, "-u", dev.Username(), "-P", dev.Token(time.Hour),
		"-t", "devices/shutdown-dev/messages/events/", "-l")
	if r := runTool(t, lines.String(), "mosquitto_pub", args...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %s", r)
	}
	// A device stays connected: shutdown must not wait for it.
	idle, code, err := hubtest.Dial(p.mqtt, nil, hubtest.ConnectOptions{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatalf("connect: 0x%02x %v", code, err)
	}
	defer idle.Close()

	start := time.Now()
	p.stop(t) // SIGTERM; fails the test unless exit 0 within 30 s
	t.Logf("ferry serve stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if err := idle.WaitClosed(5 * time.Second); err != nil {
		t.Errorf("the connected device was not disconnected: %v", err)
	}

	p2 := startProcess(t, bin, dir)
	t.Cleanup(func() { _ = p2.cmd.Process.Kill() })
	defer p2.stop(t)
	var bodies []string
	after := ""
	cl := p2.client(t)
	for {
		page, err := cl.ReadStream(context.Background(), "*", api.ReadQuery{From: "beginning", After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 {
			break
		}
		for _, m := range page.Messages {
			bodies = append(bodies, string(m.Body))
		}
		after = page.Next
	}
	if len(bodies) != n {
		t.Fatalf("%d messages after restart, want %d", len(bodies), n)
	}
	for i, b := range bodies {
		if b != "msg-"+strconv.Itoa(i) {
			t.Fatalf("message %d is %q, want msg-%d", i, b, i)
		}
	}
}

// TestNewFailsWhenPortInUse starts a hub on a port that is taken: New must
// return an error naming the problem (ferry serve prints it and exits 1),
// not panic, and must release the data directory for the next start.
func TestNewFailsWhenPortInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, which := range []string{"http", "mqtts"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			cfg := hub.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", MQTTSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
			if which == "http" {
				cfg.HTTPAddr = taken.Addr().String()
			} else {
				cfg.MQTTSAddr = taken.Addr().String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h, panicked, err := newHub(ctx, cfg)
			if panicked != nil {
				t.Fatalf("hub.New with the %s port in use panicked instead of returning an error: %v", which, panicked)
			}
			if err == nil {
				_ = h.Shutdown(context.Background())
				t.Fatalf("hub.New with the %s port in use succeeded", which)
			}
			if !strings.Contains(err.Error(), taken.Addr().String()) && !strings.Contains(err.Error(), "in use") {
				t.Errorf("error %q names neither the address nor the cause", err)
			}
			// Everything New opened was closed: the data dir serves the next start.
			h2 := hubtest.StartDir(t, dir)
			if _, _, err := h2.Client.ListDevices(context.Background(), 10, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// newHub calls hub.New and reports a panic instead of crashing the test binary.
func newHub(ctx context.Context, cfg hub.Config) (h *hub.Hub, panicked any, err error) {
	defer func() { panicked = recover() }()
	h, err = hub.New(ctx, cfg)
	return h, nil, err
}
