package alarm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/examples/alarm/alarmpb"
	"github.com/ferry-iot/ferry/examples/alarm/internal/parcel"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/schema"
	"google.golang.org/protobuf/proto"
)

// scenario is a hub set up as setup.sh sets it up: the two devices, the
// Parcel schema and the parcels route.
type scenario struct {
	h              *hubtest.Hub
	agent, monitor string // connection strings
	dir            string
}

func setUp(t *testing.T) *scenario {
	t.Helper()
	h := hubtest.Start(t)
	ctx := context.Background()
	s := &scenario{h: h, dir: t.TempDir()}
	for _, id := range []string{"alarm-agent", "alarm-monitor"} {
		d, err := h.Client.CreateDevice(ctx, registry.Device{DeviceID: id})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey)
		cs := fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s", h.DeviceHost(), id,
			base64.StdEncoding.EncodeToString(key))
		if id == "alarm-agent" {
			s.agent = cs
		} else {
			s.monitor = cs
		}
	}
	desc, err := os.ReadFile("alarmpb/alarm.pb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.AddSchema(ctx, schema.Schema{Name: parcel.ParcelSchema,
		Message: "ferry.examples.alarm.Parcel", Descriptor: desc}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.CreateRoute(ctx, route.Route{Name: "parcels", Source: route.Telemetry, Enabled: true,
		Condition: "proto-type = 'pb_Parcel' AND $body.type = 'pb_AlarmStatus'",
		Endpoints: []route.Endpoint{{Kind: route.KindMethod, Name: parcel.Method,
			TargetFrom: "property:" + parcel.DestinationProperty}},
		Allow: route.Allow{Sources: []string{"alarm-agent"}, Targets: []string{"alarm-monitor"}}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// build compiles an example program, once per test binary (TestMain
// removes the binaries).
var built = map[string]string{}

func build(t *testing.T, pkg string) string {
	t.Helper()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "alarm-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range built {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

// startMonitor runs alarm-monitor and waits until it is connected.
func (s *scenario) startMonitor(t *testing.T) (logPath string) {
	t.Helper()
	bin := build(t, "./alarm-monitor")
	logPath = filepath.Join(s.dir, "monitor.log")
	cmd := exec.Command(bin, "--connection-string", s.monitor, "--ca", s.h.CAFile(),
		"--store", filepath.Join(s.dir, "monitor.db"), "--log", logPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("alarm-monitor's stderr:\n%s", stderr.String())
		}
	})
	hubtest.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(readFile(logPath), "Connected; waiting for parcels") {
			return fmt.Errorf("alarm-monitor has not connected")
		}
		return nil
	})
	return logPath
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

var (
	// 2026-11-23 07:41:54,853 Packing event: Active: True, time: '07:41:54.853368', date: '2026-11-23'
	stamp    = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} `
	packedRE = regexp.MustCompile(`(?m)^` + stamp + `Packing event: Active: (True|False), time: '([0-9:.]+)', date: '([0-9-]+)'$`)
	gotRE    = regexp.MustCompile(`(?m)^` + stamp + `alarm_active: (True|False), time_utc: '([0-9:.]+)', date_utc: '([0-9-]+)'$`)
	bytesRE  = regexp.MustCompile(`(?m)^` + stamp + `Parcel received: \d+ bytes of application/x-protobuf$`)
	fromRE   = regexp.MustCompile(`(?m)^` + stamp + `Alarm status received from: 'Door Alarm' \(alarm-agent\)$`)
)

// checkDelivered asserts that the monitor logged each status the agent
// packed, in order, received as protobuf bytes, and that the route saw n
// 200 answers.
func (s *scenario) checkDelivered(t *testing.T, agentLog, monitorLog string, n int) {
	t.Helper()
	packed := packedRE.FindAllStringSubmatch(readFile(agentLog), -1)
	if len(packed) != n {
		t.Fatalf("agent packed %d statuses, want %d:\n%s", len(packed), n, readFile(agentLog))
	}
	hubtest.Eventually(t, 20*time.Second, func() error {
		if got := len(gotRE.FindAllString(readFile(monitorLog), -1)); got < n {
			return fmt.Errorf("monitor logged %d statuses, want %d", got, n)
		}
		return nil
	})
	mlog := readFile(monitorLog)
	got := gotRE.FindAllStringSubmatch(mlog, -1)
	for i := range n {
		if packed[i][1] != got[i][1] || packed[i][2] != got[i][2] || packed[i][3] != got[i][3] {
			t.Errorf("status %d: agent packed %q, monitor got %q", i, packed[i][0], got[i][0])
		}
		if i > 0 && packed[i][1] == packed[i-1][1] {
			t.Errorf("status %d repeats %s: the agent sends changes only", i, packed[i][1])
		}
	}
	if c := len(bytesRE.FindAllString(mlog, -1)); c != n {
		t.Errorf("monitor received %d protobuf payloads, want %d:\n%s", c, n, mlog)
	}
	if c := len(fromRE.FindAllString(mlog, -1)); c != n {
		t.Errorf("monitor logged %d senders, want %d", c, n)
	}
	if strings.Contains(mlog, "Bad parcel") {
		t.Errorf("monitor refused a parcel:\n%s", mlog)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		if c := s.metric(t, `ferry_route_method_responses_total{route="parcels",status="2xx"}`); c != n {
			return fmt.Errorf("route saw %d 2xx answers, want %d", c, n)
		}
		return nil
	})
	// Parcels a few tens of milliseconds apart reach an idle router: it
	// takes their batches from the ingest writer instead of the store.
	if c := s.metric(t, "ferry_route_batches_handed_total"); c == 0 {
		t.Errorf("the router read every parcel from the store; none was handed over")
	}
}

// metric reads one counter from the hub's /metrics (0 when absent).
func (s *scenario) metric(t *testing.T, series string) int {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.h.TLSConfig()}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + s.h.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return 0
}

// TestAlarmScenario runs seed 000 end to end: alarm-agent → hub → route →
// alarm-monitor's ProcessMessage → 200, both as real processes.
func TestAlarmScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example programs")
	}
	s := setUp(t)
	monitorLog := s.startMonitor(t)

	const changes = 4
	agentLog := filepath.Join(s.dir, "agent.log")
	agent := build(t, "./alarm-agent") // before the agent's time starts: a loaded machine links slowly
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agent, "--connection-string", s.agent,
		"--ca", s.h.CAFile(), "--store", filepath.Join(s.dir, "agent.db"), "--log", agentLog,
		"--interval", "20ms", "--changes", fmt.Sprint(changes))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("alarm-agent: %v\n%s\n%s", err, b, readFile(agentLog))
	}
	if c := strings.Count(readFile(agentLog), "Parcel sent to alarm-monitor"); c != changes {
		t.Errorf("agent logged %d parcels sent, want %d", c, changes)
	}
	s.checkDelivered(t, agentLog, monitorLog, changes)

	// The monitor's other answers, through the hub's method API.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	call := func(name string, payload []byte) (int, string) {
		r, err := s.h.Client.InvokeRaw(ctx2, "alarm-monitor", "", name, payload, parcel.ContentType, 5*time.Second, 0)
		if err != nil {
			t.Fatalf("invoke %s: %v", name, err)
		}
		return r.Status, string(r.Payload)
	}
	good, _ := parcel.Pack(parcel.Status(true, time.Now()), "by-hand", "alarm-monitor")
	if st, body := call("ProcessMessage", good); st != 200 || body != `{"result":true,"data":"parcel handled"}` {
		t.Errorf("a parcel: %d %s", st, body)
	}
	if st, body := call("Reboot", good); st != 404 || body != `{"result":false,"data":"unknown method request"}` {
		t.Errorf("an unknown method: %d %s", st, body)
	}
	if st, body := call("ProcessMessage", []byte("\xff\xffnot a parcel")); st != 400 || body != `{"result":false,"data":"bad parcel received"}` {
		t.Errorf("garbage: %d %s", st, body)
	}
	other, _ := proto.Marshal(&alarmpb.Parcel{Type: "pb_DoorbellRing"})
	if st, _ := call("ProcessMessage", other); st != 400 {
		t.Errorf("a parcel of another type: %d, want 400", st)
	}
	mlog := readFile(monitorLog)
	for _, want := range []string{"Unknown method request: 'Reboot'", "Bad parcel: bad parcel received"} {
		if !strings.Contains(mlog, want) {
			t.Errorf("monitor log lacks %q:\n%s", want, mlog)
		}
	}
}

// python is the interpreter with Debian's python3-paho-mqtt and
// python3-protobuf; a python3 earlier on PATH (pyenv, a venv) may lack them.
const python = "/usr/bin/python3"

// TestPythonAlarmAgent runs examples/python's agent (Paho, protobuf, its own
// SAS token) against the same hub setup and the Go monitor.
func TestPythonAlarmAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example programs")
	}
	if b, err := exec.Command(python, "-c", "import paho.mqtt, google.protobuf").CombinedOutput(); err != nil {
		t.Fatalf("%s lacks python3-paho-mqtt or python3-protobuf (./scripts/test installs them): %v\n%s", python, err, b)
	}
	s := setUp(t)
	monitorLog := s.startMonitor(t)

	const changes = 3
	agentLog := filepath.Join(s.dir, "agent.log")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "../python/alarm_agent.py", "--connection-string", s.agent,
		"--ca", s.h.CAFile(), "--log", agentLog, "--interval", "0.02", "--changes", fmt.Sprint(changes))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("alarm_agent.py: %v\n%s\n%s", err, b, readFile(agentLog))
	}
	alog := readFile(agentLog)
	if c := strings.Count(alog, "Parcel sent to alarm-monitor"); c != changes {
		t.Errorf("agent logged %d parcels sent, want %d:\n%s", c, changes, alog)
	}
	s.checkDelivered(t, agentLog, monitorLog, changes)
}
