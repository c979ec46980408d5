package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/route"
)

// TestBrowser drives the console in Debian's Chromium with playwright-core
// (test/browser/console.js) against a real hub while a real device (the Go
// SDK over MQTT/TLS) connects, sends telemetry, answers a method and hears
// desired properties: sign in, create the device, see it connect, see its
// telemetry on the chart, invoke a method, edit desired properties, send a
// C2D message, approve a provisioning request, sign out. Screenshots land
// in test/browser/artifacts/.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node and chromium")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("chromium is not installed (scripts/test installs it)")
	}
	dir := browserTestDir(t)
	npmCI(t, dir)

	h := hubtest.Start(t)
	owner, err := protocol.ParseConnectionString(h.OwnerConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	deviceID := fmt.Sprintf("browser-%d", time.Now().UnixNano()%1e6)

	// A pending provisioning request, opened as a device would.
	tok, err := h.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "line-1"})
	if err != nil {
		t.Fatal(err)
	}
	op := initProvisioning(t, h, tok.Secret, "sensor-from-line-1")
	// A route for the routes page: hot readings to a stream of their own.
	if _, err := h.Client.CreateRoute(ctx, route.Route{Name: "hot", Condition: "$body.temperature > 30", Enabled: true,
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "hot"}}}); err != nil {
		t.Fatal(err)
	}

	// The real device: connects once the browser has created it.
	dev := &testDevice{}
	go dev.run(ctx, t, h, deviceID)
	// A device that connects while the browser watches the device list.
	signal := filepath.Join(t.TempDir(), "connect-late")
	go connectOnSignal(ctx, t, h, h.CreateDevice(t, deviceID+"-late"), signal)

	out := filepath.Join(dir, "artifacts")
	cmd := exec.CommandContext(ctx, nodeBin, "console.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"FERRY_URL=https://"+h.HTTPAddr().String(),
		"FERRY_POLICY="+owner.SharedAccessKeyName,
		"FERRY_KEY="+owner.SharedAccessKey,
		"FERRY_DEVICE="+deviceID,
		"FERRY_OP_CODE="+op.VerificationCode,
		"FERRY_ARTIFACTS="+out,
		"FERRY_SIGNAL="+signal,
		"CHROMIUM="+chromium,
	)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	runErr := cmd.Run()
	t.Logf("console.js (%s):\n%s", time.Since(t0).Round(time.Millisecond), stdout.String())
	if runErr != nil {
		t.Fatalf("console.js: %v\n%s", runErr, stderr.String())
	}
	t.Logf("screenshots in %s", out)

	// What the browser did reached the device and the registry.
	got := dev.desired()
	if !strings.Contains(got, `"targetTemperature":23.5`) {
		t.Errorf("device heard desired %s, want targetTemperature 23.5", got)
	}
	if n := dev.methodCalls(); n != 1 {
		t.Errorf("device answered %d method calls, want 1", n)
	}
	done, err := h.Client.ProvisioningOperation(ctx, op.OperationID)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != provision.StateApproved || done.DeviceID != deviceID+"-prov" {
		t.Errorf("operation %s: state %s device %q, want approved as %s-prov", op.OperationID, done.State, done.DeviceID, deviceID)
	}
	if _, err := h.Client.GetDevice(ctx, deviceID+"-prov"); err != nil {
		t.Errorf("approved device not registered: %v", err)
	}
	if rt, err := h.Client.Route(ctx, "hot"); err != nil || rt.Enabled {
		t.Errorf("route hot after the browser disabled it: %+v %v", rt, err)
	}
}

// testDevice is the device the browser watches.
type testDevice struct {
	mu      sync.Mutex
	last    string // guarded by mu: last desired document heard
	methods int    // guarded by mu
}

func (d *testDevice) desired() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

func (d *testDevice) methodCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.methods
}

func (d *testDevice) run(ctx context.Context, t *testing.T, h *hubtest.Hub, id string) {
	var key string
	for ctx.Err() == nil {
		reg, err := h.Client.GetDevice(ctx, id)
		if err == nil {
			key = reg.Authentication.SymmetricKey.PrimaryKey
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return
	}
	var client atomic.Pointer[device.Client] // set once Start returns; OnDesired runs on the SDK's goroutines
	cfg := device.Config{
		ConnectionString: "HostName=" + h.DeviceHost() + ";DeviceId=" + id + ";SharedAccessKey=" + key,
		StorePath:        filepath.Join(t.TempDir(), "device.db"),
		CAFile:           h.CAFile(),
		Methods: map[string]device.MethodHandler{
			"reboot": func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
				d.mu.Lock()
				d.methods++
				d.mu.Unlock()
				return device.MethodResponse{Status: 200, Payload: []byte(`{"rebooted":true,"request":` + string(req.Payload) + `}`)}
			},
		},
		OnDesired: func(p device.TwinProperties) {
			d.mu.Lock()
			d.last = string(p.JSON)
			d.mu.Unlock()
			var doc map[string]any
			if c := client.Load(); json.Unmarshal(p.JSON, &doc) == nil && c != nil {
				_ = c.UpdateReported(context.Background(), doc) // echo, as thermostats do
			}
		},
	}
	c, err := device.Start(ctx, cfg)
	if err != nil {
		t.Errorf("device start: %v", err)
		return
	}
	defer c.Close()
	client.Store(c)
	s := c.Stream("", "")
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		body := fmt.Sprintf(`{"temperature":%.2f,"humidity":%d,"ok":true,"note":"<script>alert(1)</script>"}`, 20+rand.Float64()*3, 40+i%10)
		if _, err := s.Enqueue(ctx, device.Message{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8"}); err != nil && ctx.Err() == nil {
			t.Errorf("enqueue: %v", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// connectOnSignal connects dev once the file signal exists and stays
// connected until ctx ends.
func connectOnSignal(ctx context.Context, t *testing.T, h *hubtest.Hub, dev hubtest.Device, signal string) {
	for {
		if _, err := os.Stat(signal); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	conn, code, err := hubtest.Dial(h.MQTTAddr("tcp").String(), nil, hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Clean: true})
	if err != nil || code != 0 {
		t.Errorf("late device: code %d, %v", code, err)
		return
	}
	defer conn.Close()
	<-ctx.Done()
}

// initProvisioning opens a provisioning operation the way a device does.
func initProvisioning(t *testing.T, h *hubtest.Hub, token, deviceID string) *provision.InitResult {
	t.Helper()
	body, _ := json.Marshal(provision.InitRequest{ProvisioningToken: token, DeviceID: deviceID})
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}, Timeout: 10 * time.Second}
	resp, err := cl.Post("https://"+h.HTTPAddr().String()+"/api/v1/provisioning/device/init", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res provision.InitResult
	if resp.StatusCode/100 != 2 {
		t.Fatalf("provisioning init: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func browserTestDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "test", "browser")
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// npmCI installs test/browser's locked dependencies when they are missing.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("node is installed but npm is not: cannot install test/browser's dependencies")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}
