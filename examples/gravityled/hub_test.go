package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestHub runs the device against a real hub: tilt frames become duty
// cycle telemetry fitting the model, the connection limit is reported,
// changed by the direct method and by a desired property (acknowledged),
// and the new limit refuses a controller.
func TestHub(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	c := h.Client
	b, _ := os.ReadFile("model.json")
	if _, err := c.AddModels(ctx, b); err != nil {
		t.Fatal(err)
	}
	const devID = "gravityled-ci"
	d, err := c.CreateDevice(ctx, registry.Device{DeviceID: devID})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey)
	cs := fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s", h.DeviceHost(), devID, base64.StdEncoding.EncodeToString(key))

	rctx, cancel := context.WithCancel(ctx)
	addrc := make(chan net.Addr, 1)
	exited := make(chan error, 1)
	go func() {
		exited <- run(rctx, options{listen: "127.0.0.1:0", maxControllers: 1, connStr: cs, ca: h.CAFile(),
			store: filepath.Join(t.TempDir(), "gravityled.db"), telemetryRate: 10,
			onListen: func(a net.Addr) { addrc <- a }})
	}()
	defer func() {
		cancel()
		if err := <-exited; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var url string
	select {
	case a := <-addrc:
		url = "ws://" + a.String() + "/ws"
	case err := <-exited:
		t.Fatalf("run: %v", err)
	}

	// The starting limit, reported as set by the device.
	reportedAny := func(name string) (any, error) {
		raw, err := c.GetTwin(ctx, devID)
		if err != nil {
			return nil, err
		}
		var tw struct {
			ModelID    string `json:"modelId"`
			Properties struct {
				Reported map[string]any `json:"reported"`
			} `json:"properties"`
		}
		_ = json.Unmarshal(raw, &tw)
		if tw.ModelID != ModelID {
			return nil, fmt.Errorf("modelId %q", tw.ModelID)
		}
		return tw.Properties.Reported[name], nil
	}
	reported := func(name string) (map[string]any, error) {
		v, err := reportedAny(name)
		m, _ := v.(map[string]any)
		return m, err
	}
	hubtest.Eventually(t, 15*time.Second, func() error {
		m, err := reported("maxControllers")
		if err != nil || m["value"] != 1.0 || m["ac"] != 203.0 {
			return fmt.Errorf("maxControllers %v %v", m, err)
		}
		return nil
	})

	// Tilt frames: telemetry that fits the model, rate-limited.
	ws := dial(t, url)
	for i := range 40 {
		send(t, ws, websocket.TextMessage, []byte(fmt.Sprintf("0 %d 50", i*2-40)))
		reply(t, ws)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		page, err := c.ReadStream(ctx, "*", api.ReadQuery{Device: devID, From: "beginning", Limit: 1000})
		if err != nil {
			return err
		}
		last := map[string]float64{}
		for _, m := range page.Messages {
			if len(m.PnPMismatch) > 0 {
				t.Fatalf("telemetry does not fit the model: %v %s", m.PnPMismatch, m.Body)
			}
			_ = json.Unmarshal(m.Body, &last)
		}
		if n := len(page.Messages); n == 0 || n > 30 || last["right"] != 38 {
			return fmt.Errorf("%d messages, last %v", n, last)
		}
		return nil
	})

	// The direct method: 2 controllers, reported with ac 203.
	resp, err := c.InvokeMethod(ctx, devID, "", api.MethodRequest{MethodName: "setMaxControllers", Payload: json.RawMessage(`2`), ResponseTimeoutInSeconds: 10})
	if err != nil || resp.Status != 200 || string(resp.Payload) != `{"maxControllers":2}` {
		t.Fatalf("setMaxControllers: %+v %v", resp, err)
	}
	second := dial(t, url)
	send(t, second, websocket.TextMessage, []byte("0 1 99"))
	reply(t, second)
	if resp, err := c.InvokeMethod(ctx, devID, "", api.MethodRequest{MethodName: "setMaxControllers", Payload: json.RawMessage(`1000`), ResponseTimeoutInSeconds: 10}); err != nil || resp.Status != 400 {
		t.Fatalf("setMaxControllers 1000: %+v %v", resp, err)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		m, err := reported("maxControllers")
		if err != nil || m["value"] != 2.0 || m["ac"] != 203.0 {
			return fmt.Errorf("maxControllers %v %v", m, err)
		}
		if n, _ := reportedAny("connectedControllers"); n != 2.0 {
			return fmt.Errorf("connectedControllers %v", n)
		}
		return nil
	})

	// The desired property: back to 2 and acknowledged in sync; a third
	// controller is refused.
	md, err := c.Model(ctx, ModelID)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := model.DesiredPatch(md.Model, "maxControllers", json.RawMessage(`2`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PatchTwin(ctx, devID, patch, ""); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		st, err := c.DevicePnP(ctx, devID)
		if err != nil {
			return err
		}
		for _, w := range st.Writable {
			if w.Name == "maxControllers" && w.State == model.StateInSync && w.AckCode == 200 {
				return nil
			}
		}
		return fmt.Errorf("writable: %+v", st.Writable)
	})
	if ce := closeCode(t, dial(t, url)); ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "2 of 2 connected") {
		t.Fatalf("third controller: %v", ce)
	}
	// Down to 0 through the twin: nobody new gets in.
	patch, _ = model.DesiredPatch(md.Model, "maxControllers", json.RawMessage(`0`))
	if _, err := c.PatchTwin(ctx, devID, patch, ""); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		m, err := reported("maxControllers")
		if err != nil || m["value"] != 0.0 || m["ac"] != 200.0 {
			return fmt.Errorf("maxControllers %v %v", m, err)
		}
		return nil
	})
	if ce := closeCode(t, dial(t, url)); ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "of 0 connected") {
		t.Fatalf("controller with limit 0: %v", ce)
	}
	st, err := c.DevicePnP(ctx, devID)
	if err != nil || st.Telemetry.Mismatched != 0 || st.Telemetry.Checked == 0 {
		t.Fatalf("telemetry checks: %+v %v", st, err)
	}
}

// TestSIGINT builds the program, connects a controller and stops it with
// SIGINT: the controller gets 1001 and the program exits 0.
func TestSIGINT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	bin := filepath.Join(t.TempDir(), "gravityled")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(stderr)
	re := regexp.MustCompile(`serving http://(\S+)/`)
	var addr string
	var logs []string
	for addr == "" && sc.Scan() {
		logs = append(logs, sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no address in the log: %q", logs)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	ws := dial(t, "ws://"+addr+"/ws")
	send(t, ws, websocket.TextMessage, []byte("0 70 71"))
	if m := reply(t, ws); m["right"] != 70.0 {
		t.Fatalf("answer %v", m)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if ce := closeCode(t, ws); ce.Code != websocket.CloseGoingAway {
		t.Fatalf("close: %v", ce)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGINT")
	}
}
