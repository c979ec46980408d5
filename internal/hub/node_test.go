package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/pki"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// nodeDeadline bounds each node script (and npm ci).
const nodeDeadline = 2 * time.Minute

// TestNodeSDKs runs Microsoft's Node SDKs, unchanged, against the real
// `ferry serve` process with its default HTTPS listener and a self-signed CA:
// test/node/service.js drives the registry with azure-iothub, and
// test/node/device.js sends telemetry with azure-iot-device over MQTT (port
// in HostName) and with mqtt.js over MQTT 5. The stored messages are then
// read back over REST and checked property by property.
func TestNodeSDKs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ferry binary and runs node")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	start := time.Now()
	nodeDir := nodeTestDir(t)
	npmCI(t, nodeDir)

	bin := buildFerry(t)
	dir := t.TempDir()
	p := startHTTPSProcess(t, bin, dir)
	caFile := filepath.Join(dir, "pki", pki.CAFile)
	ownerRaw, err := os.ReadFile(filepath.Join(dir, hub.OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	owner := strings.TrimSpace(string(ownerRaw))
	_, httpPort := splitPort(t, p.http)
	_, mqttsPort := splitPort(t, p.mqtts)
	if want := "HostName=localhost:" + httpPort + ";"; !strings.HasPrefix(owner, want) {
		t.Fatalf("owner connection string %q does not start with %q", owner, want)
	}
	client, err := api.NewClient(owner, api.ClientOptions{BaseURL: "https://" + p.http, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	deviceID := "node-dev-" + run
	baseEnv := []string{"NODE_EXTRA_CA_CERTS=" + caFile, "FERRY_RUN=" + run}

	// 1. azure-iothub: the registry over HTTPS on a non-443 port.
	t0 := time.Now()
	var svc struct {
		OK    bool `json:"ok"`
		Steps []struct {
			Step     string `json:"step"`
			DeviceID string `json:"deviceId"`
			ErrName  string `json:"errName"`
			ErrMsg   string `json:"errMessage"`
			Status   int    `json:"status"`
		} `json:"steps"`
		Failures        []string `json:"failures"`
		KeepDeviceID    string   `json:"keepDeviceId"`
		KeepDeviceCS    string   `json:"keepDeviceConnectionString"`
		RedirectedCalls int      `json:"redirectedRequests"`
	}
	runNode(t, nodeBin, nodeDir, "service.js", append(baseEnv,
		"FERRY_OWNER_CS="+owner,
		"FERRY_DEVICE_PREFIX=node-"+run,
		"FERRY_KEEP_DEVICE="+deviceID,
		"FERRY_DEVICE_HOST=localhost:"+mqttsPort,
	), &svc)
	t.Logf("service.js: %d steps, %d REST calls, %s", len(svc.Steps), svc.RedirectedCalls, time.Since(t0).Round(time.Millisecond))
	if !svc.OK || len(svc.Failures) > 0 {
		t.Fatalf("service.js failed: %q", svc.Failures)
	}
	unknown := 0
	for _, s := range svc.Steps {
		if s.Step != "get unknown" {
			continue
		}
		unknown++
		t.Logf("azure-iothub get(%q) rejected: %s: %s", s.DeviceID, s.ErrName, s.ErrMsg)
		if s.ErrName != "DeviceNotFoundError" || s.Status != 404 {
			t.Errorf("get of unknown device %q: %s (%d), want DeviceNotFoundError (404)", s.DeviceID, s.ErrName, s.Status)
		}
		// The Go client sees the device gone as well.
		if _, err := client.GetDevice(ctx, s.DeviceID); !fault.Is(err, fault.NotFound) {
			t.Errorf("GetDevice(%q) after the SDK deleted it: %v, want not found", s.DeviceID, err)
		}
	}
	if unknown == 0 {
		t.Error("service.js reported no get of an unknown device")
	}
	if svc.KeepDeviceID != deviceID {
		t.Fatalf("service.js kept device %q, want %q", svc.KeepDeviceID, deviceID)
	}
	if want := "HostName=localhost:" + mqttsPort + ";DeviceId=" + deviceID + ";SharedAccessKey="; !strings.HasPrefix(svc.KeepDeviceCS, want) {
		t.Fatalf("device connection string %q does not start with %q", svc.KeepDeviceCS, want)
	}
	kept, err := client.GetDevice(ctx, deviceID)
	if err != nil {
		t.Fatalf("the device the SDK created is not in the registry: %v", err)
	}
	if !strings.HasSuffix(svc.KeepDeviceCS, ";SharedAccessKey="+kept.Authentication.SymmetricKey.PrimaryKey) {
		t.Fatal("the SDK's view of the generated key differs from the registry's")
	}

	// 2. azure-iot-device (Mqtt) and mqtt.js (MQTT 5) as that device.
	t0 = time.Now()
	var dev struct {
		OK       bool     `json:"ok"`
		Failures []string `json:"failures"`
		SDK      *struct {
			Result string `json:"result"`
		} `json:"sdk"`
	}
	runNode(t, nodeBin, nodeDir, "device.js", append(baseEnv,
		"FERRY_DEVICE_CS="+svc.KeepDeviceCS,
		"FERRY_CA="+caFile,
	), &dev)
	t.Logf("device.js: %s", time.Since(t0).Round(time.Millisecond))
	if !dev.OK || len(dev.Failures) > 0 {
		t.Fatalf("device.js failed: %q", dev.Failures)
	}
	if dev.SDK == nil || dev.SDK.Result != "MessageEnqueued" {
		t.Errorf("sendEvent result %+v, want MessageEnqueued", dev.SDK)
	}

	// Direct methods: azure-iothub invokes, azure-iot-device answers.
	t0 = time.Now()
	var meth struct {
		OK       bool              `json:"ok"`
		Failures []string          `json:"failures"`
		Calls    []json.RawMessage `json:"calls"`
	}
	runNode(t, nodeBin, nodeDir, "methods.js", append(baseEnv,
		"FERRY_OWNER_CS="+owner,
		"FERRY_DEVICE_CS="+svc.KeepDeviceCS,
		"FERRY_CA="+caFile,
	), &meth)
	t.Logf("methods.js: %d calls, %s", len(meth.Calls), time.Since(t0).Round(time.Millisecond))
	if !meth.OK || len(meth.Failures) > 0 || len(meth.Calls) != 3 {
		t.Fatalf("methods.js failed: %q", meth.Failures)
	}

	// Twins and queries: azure-iothub's Registry and the device SDK's Twin.
	t0 = time.Now()
	var tw struct {
		OK       bool              `json:"ok"`
		Failures []string          `json:"failures"`
		Steps    []json.RawMessage `json:"steps"`
	}
	runNode(t, nodeBin, nodeDir, "twins.js", append(baseEnv,
		"FERRY_OWNER_CS="+owner,
		"FERRY_DEVICE_CS="+svc.KeepDeviceCS,
		"FERRY_CA="+caFile,
	), &tw)
	t.Logf("twins.js: %d steps, %s", len(tw.Steps), time.Since(t0).Round(time.Millisecond))
	if !tw.OK || len(tw.Failures) > 0 {
		t.Fatalf("twins.js failed: %q", tw.Failures)
	}

	// 3. What the hub stored, read over REST.
	var msgs []api.Message
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := client.ReadStream(ctx, "*", api.ReadQuery{Device: deviceID, From: "beginning", Limit: 100})
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		msgs = page.Messages
		if len(msgs) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages stored for %s, want 3: %+v", len(msgs), deviceID, msgs)
	}
	want := []nodeWant{{
		name: "azure-iot-device sendEvent",
		sys: api.SystemProperties{MessageID: "sdk-" + run, CorrelationID: "corr-" + run,
			ContentType: "application/json", ContentEncoding: "utf-8", AuthMethod: "sas"},
		props: map[string]string{"app-prop": "value-1", "a b/c": "x&y=z"},
		body:  map[string]any{"temperature": 21.5, "run": run},
	}, {
		name: "mqtt.js MQTT 5, bare topic",
		sys: api.SystemProperties{CorrelationID: "corr5-" + run, ContentType: "application/json",
			AuthMethod: "sas"},
		props: map[string]string{"mqtt5-user": "u1", "run": run, "spaced key": "a value & more=1"},
		body:  map[string]any{"via": "mqtt5", "n": 1.0, "run": run},
	}, {
		name:  "mqtt.js MQTT 5, property bag",
		sys:   api.SystemProperties{MessageID: "mqtt5-" + run, AuthMethod: "sas"},
		props: map[string]string{"bag-prop": "b", "mqtt5-user": "u2"},
		body:  map[string]any{"via": "mqtt5", "n": 2.0, "run": run},
	}}
	for i, w := range want {
		w.check(t, msgs[i], deviceID)
	}

	// The device closed its connections: the registry says Disconnected.
	var state string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		d, err := client.GetDevice(ctx, deviceID)
		if err != nil {
			t.Fatal(err)
		}
		if state = d.ConnectionState; state == "Disconnected" {
			break
		}
	}
	if state != "Disconnected" {
		t.Errorf("connectionState %q after the clients closed, want Disconnected", state)
	}
	t.Logf("total %s (npm, build, hub start, both scripts, checks)", time.Since(start).Round(time.Millisecond))
}

// TestNodeDPS provisions a device with Microsoft's Node provisioning client
// (azure-iot-provisioning-device + -mqtt + -security-symmetric-key),
// unchanged, from a symmetric-key enrollment group of `ferry serve`, with a
// modelId payload; the script then connects with azure-iot-device to the
// host DPS assigned and sends a message. The device, its twin's modelId and
// the stored message are checked over REST, and the refusals the script saw
// (tampered key, disabled group) by their error names.
func TestNodeDPS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ferry binary and runs node")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	nodeDir := nodeTestDir(t)
	npmCI(t, nodeDir)
	bin := buildFerry(t)
	dir := t.TempDir()
	p := startHTTPSProcess(t, bin, dir)
	caFile := filepath.Join(dir, "pki", pki.CAFile)
	ownerRaw, err := os.ReadFile(filepath.Join(dir, hub.OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(strings.TrimSpace(string(ownerRaw)), api.ClientOptions{BaseURL: "https://" + p.http, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	info, err := client.DPSInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := client.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: "node-line",
		InitialTwin: &provision.InitialTwin{Tags: json.RawMessage(`{"line":"node"}`)}}, false)
	if err != nil {
		t.Fatal(err)
	}
	off, err := client.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: "node-off",
		ProvisioningStatus: provision.EnrollmentDisabled}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, mqttsPort := splitPort(t, p.mqtts)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	regID := "node-dps-" + run
	const modelID = "dtmi:com:example:Thermostat;1"
	var out struct {
		OK           bool     `json:"ok"`
		Failures     []string `json:"failures"`
		Registration struct {
			AssignedHub string `json:"assignedHub"`
			DeviceID    string `json:"deviceId"`
			Status      string `json:"status"`
			Substatus   string `json:"substatus"`
		} `json:"registration"`
		Sent *struct {
			MessageID string `json:"messageId"`
			Result    string `json:"result"`
		} `json:"sent"`
		Refusals []struct {
			What    string `json:"what"`
			ErrName string `json:"errName"`
			ErrMsg  string `json:"errMessage"`
		} `json:"refusals"`
	}
	runNode(t, nodeBin, nodeDir, "dps.js", []string{
		"NODE_EXTRA_CA_CERTS=" + caFile, // the provisioning transport takes no ca option (PROTOCOL.md §5.1)
		"FERRY_CA=" + caFile,
		"FERRY_RUN=" + run,
		"FERRY_DPS_HOST=localhost:" + mqttsPort,
		"FERRY_ID_SCOPE=" + info.IDScope,
		"FERRY_GROUP_KEY=" + g.Attestation.SymmetricKey.PrimaryKey,
		"FERRY_DISABLED_KEY=" + off.Attestation.SymmetricKey.PrimaryKey,
		"FERRY_REGISTRATION_ID=" + regID,
		"FERRY_MODEL_ID=" + modelID,
	}, &out)
	if !out.OK || len(out.Failures) > 0 {
		t.Fatalf("dps.js failed: %q", out.Failures)
	}
	r := out.Registration
	if r.AssignedHub != "localhost:"+mqttsPort || r.DeviceID != regID || r.Status != "assigned" || r.Substatus != "initialAssignment" {
		t.Errorf("registration %+v, want %s assigned to localhost:%s", r, regID, mqttsPort)
	}
	wantRefusals := map[string]string{"tampered key": "", "disabled group": "UnauthorizedError"}
	for _, ref := range out.Refusals {
		want, ok := wantRefusals[ref.What]
		if !ok {
			continue
		}
		delete(wantRefusals, ref.What)
		t.Logf("%s refused: %s: %s", ref.What, ref.ErrName, ref.ErrMsg)
		if want != "" && ref.ErrName != want {
			t.Errorf("%s: %s, want %s", ref.What, ref.ErrName, want)
		}
	}
	if len(wantRefusals) > 0 {
		t.Errorf("refusals not seen: %v", wantRefusals)
	}

	d, err := client.GetDevice(ctx, regID)
	if err != nil {
		t.Fatalf("the provisioned device is not in the registry: %v", err)
	}
	groupKey, err := protocol.DecodeKey(g.Attestation.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	if d.ModelID != modelID || d.Authentication.SymmetricKey == nil ||
		d.Authentication.SymmetricKey.PrimaryKey != protocol.DeriveDeviceKey(groupKey, regID) {
		t.Errorf("device %+v: want modelId %s and the derived key", d, modelID)
	}
	raw, err := client.GetTwin(ctx, regID)
	if err != nil {
		t.Fatal(err)
	}
	var tw struct {
		ModelID string            `json:"modelId"`
		Tags    map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(raw, &tw); err != nil || tw.ModelID != modelID || tw.Tags["line"] != "node" {
		t.Errorf("twin %s: want modelId %s and the group's tags (%v)", raw, modelID, err)
	}
	var msgs []api.Message
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		page, err := client.ReadStream(ctx, "*", api.ReadQuery{Device: regID, From: "beginning", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if msgs = page.Messages; len(msgs) > 0 {
			break
		}
	}
	if len(msgs) != 1 || msgs[0].SystemProperties.MessageID != "dps-"+run {
		t.Fatalf("stored messages of %s: %+v, want the one dps.js sent", regID, msgs)
	}
}

type nodeWant struct {
	name  string
	sys   api.SystemProperties
	props map[string]string
	body  map[string]any
}

func (w nodeWant) check(t *testing.T, m api.Message, deviceID string) {
	t.Helper()
	if m.DeviceID != deviceID || m.ModuleID != "" {
		t.Errorf("%s: stored for %q/%q, want %q", w.name, m.DeviceID, m.ModuleID, deviceID)
	}
	if m.SystemProperties != w.sys {
		t.Errorf("%s: system properties\n got %+v\nwant %+v", w.name, m.SystemProperties, w.sys)
	}
	if !maps.Equal(m.Properties, w.props) {
		t.Errorf("%s: application properties\n got %q\nwant %q", w.name, m.Properties, w.props)
	}
	var body map[string]any
	if err := json.Unmarshal(m.Body, &body); err != nil || !maps.Equal(body, w.body) {
		t.Errorf("%s: body %s, want %v (%v)", w.name, m.Body, w.body, err)
	}
}

// nodeTestDir is test/node at the module root.
func nodeTestDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "test", "node")
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// npmCI installs test/node's locked dependencies when they are missing.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	missing := false
	for _, pkg := range []string{"azure-iothub", "azure-iot-device", "azure-iot-device-mqtt", "azure-iot-common", "mqtt",
		"azure-iot-provisioning-device", "azure-iot-provisioning-device-mqtt", "azure-iot-security-symmetric-key"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing = true
		}
	}
	if !missing {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("node is installed but npm is not: cannot install test/node's dependencies")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*nodeDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	t.Logf("npm ci: %s", time.Since(t0).Round(time.Millisecond))
}

// runNode runs a script of test/node with extra environment, fails the test
// if it exits non-zero or runs past nodeDeadline, and decodes the JSON line
// it prints last into out.
func runNode(t *testing.T, nodeBin, dir, script string, env []string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", script, stderr.Bytes())
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s ran past %s and was killed; stdout:\n%s", script, nodeDeadline, stdout.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	if jerr := json.Unmarshal([]byte(last), out); jerr != nil {
		t.Fatalf("%s: %v; output is not a JSON summary (%v):\n%s", script, err, jerr, stdout.Bytes())
	}
	t.Logf("%s: %s", script, last)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// httpsProcess is `ferry serve` with its default HTTPS listener (startProcess
// in crash_test.go serves plain HTTP).
type httpsProcess struct {
	*process
	mqtts string
	mu    sync.Mutex
	log   []string // the last lines of the hub's log, shown when the test fails
}

func startHTTPSProcess(t *testing.T, bin, dir string) *httpsProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data", dir, "--host", "localhost",
		"--mqtt", "-", "--mqtts", "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &httpsProcess{process: &process{cmd: cmd, dir: dir}}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("ferry serve log (last %d lines):\n%s", len(p.log), strings.Join(p.log, "\n"))
			p.mu.Unlock()
		}
	})
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if p.log = append(p.log, line); len(p.log) > 200 {
				p.log = p.log[len(p.log)-200:]
			}
			p.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "ferry hub serving" {
				serving <- rec
			}
		}
	}()
	select {
	case rec := <-serving:
		p.http, _ = rec["http"].(string)
		p.mqtt, _ = rec["mqtt"].(string)
		p.mqtts, _ = rec["mqtts"].(string)
	case <-time.After(30 * time.Second):
		t.Fatal("ferry serve did not report its addresses")
	}
	if p.http == "" || p.mqtts == "" || p.mqtts == "off" {
		t.Fatalf("ferry serve reported http %q, mqtts %q", p.http, p.mqtts)
	}
	return p
}

func splitPort(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return host, port
}
