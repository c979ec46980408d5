package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/provision"
)

const controller = "dtmi:ferry:example:TemperatureController;1"

// lockedBuffer collects the example's log.
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

// TestThermostat builds the example and runs it against a real hub for a
// few seconds: it registers through DPS with an enrollment group and its
// model id, and the test checks the twin's modelId, telemetry from each
// component fitting the model, the writable property's acknowledgement,
// and both commands' answers.
func TestThermostat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "thermostat")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	h := hubtest.Start(t)
	ctx := context.Background()
	c := h.Client
	files, _ := filepath.Glob("models/*.json")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if _, err := c.AddModels(ctx, b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	info, err := c.DPSInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: "thermostats"}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(h.MQTTAddr("tls").String())
	const devID = "thermostat-ci"
	start := time.Now().UTC()
	var logs lockedBuffer
	cmd := exec.Command(bin, "--dps-host", "localhost:"+port, "--id-scope", info.IDScope, "--registration-id", devID,
		"--group-key", g.Attestation.SymmetricKey.PrimaryKey, "--ca", h.CAFile(), "--store", filepath.Join(dir, "thermostat.db"),
		"--interval", "300ms", "--serial", "SN-42")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("thermostat exited: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("thermostat did not stop on SIGINT")
		}
		if t.Failed() {
			t.Logf("thermostat log:\n%s", logs.String())
		}
	}()

	// The twin: modelId from DPS and the username, reported properties.
	hubtest.Eventually(t, 15*time.Second, func() error {
		raw, err := c.GetTwin(ctx, devID)
		if err != nil {
			return err
		}
		var tw struct {
			ModelID    string `json:"modelId"`
			Properties struct {
				Reported map[string]json.RawMessage `json:"reported"`
			} `json:"properties"`
		}
		_ = json.Unmarshal(raw, &tw)
		if tw.ModelID != controller || string(tw.Properties.Reported["serialNumber"]) != `"SN-42"` ||
			!strings.Contains(string(tw.Properties.Reported["thermostat2"]), `"maxTempSinceLastReboot"`) ||
			!strings.Contains(string(tw.Properties.Reported["deviceInformation"]), `"__t":"c"`) {
			return fmt.Errorf("twin: %s", raw)
		}
		return nil
	})

	// Telemetry from every component, all fitting the model.
	hubtest.Eventually(t, 10*time.Second, func() error {
		page, err := c.ReadStream(ctx, "*", api.ReadQuery{Device: devID, From: "beginning", Limit: 1000})
		if err != nil {
			return err
		}
		seen := map[string]int{}
		for _, m := range page.Messages {
			if len(m.PnPMismatch) > 0 {
				t.Fatalf("message does not fit the model: %v %s", m.PnPMismatch, m.Body)
			}
			seen[m.SystemProperties.Component]++
		}
		if seen["thermostat1"] < 3 || seen["thermostat2"] < 3 || seen[""] < 3 {
			return fmt.Errorf("messages per component: %v", seen)
		}
		return nil
	})
	hubtest.Eventually(t, 20*time.Second, func() error {
		st, err := c.DevicePnP(ctx, devID)
		if err != nil {
			return err
		}
		if st.Telemetry.Checked < 9 || st.Telemetry.Mismatched != 0 {
			return fmt.Errorf("telemetry checks: %+v", st.Telemetry)
		}
		return nil
	})

	// The writable property, set by name and acknowledged.
	d, err := c.Model(ctx, controller)
	if err != nil || d.Model == nil {
		t.Fatalf("model: %v", err)
	}
	patch, err := model.DesiredPatch(d.Model, "thermostat1.targetTemperature", json.RawMessage(`30`))
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
			if w.Component == "thermostat1" && w.Name == "targetTemperature" {
				if w.State != model.StateInSync || w.AckCode != 200 || w.AckVer != w.DesiredV || w.AckDesc == "" {
					return fmt.Errorf("thermostat1.targetTemperature: %+v", w)
				}
				return nil
			}
		}
		return fmt.Errorf("no thermostat1.targetTemperature in %+v", st.Writable)
	})

	// getMaxMinReport since the start: an answer that fits the model's
	// response schema. Then reboot.
	resp, err := c.InvokeMethod(ctx, devID, "", api.MethodRequest{MethodName: "thermostat1*getMaxMinReport",
		Payload: json.RawMessage(`"` + start.Format(time.RFC3339) + `"`), ResponseTimeoutInSeconds: 10})
	if err != nil || resp.Status != 200 {
		t.Fatalf("getMaxMinReport: %+v %v", resp, err)
	}
	var report map[string]any
	dec := json.NewDecoder(bytes.NewReader(resp.Payload))
	dec.UseNumber()
	if err := dec.Decode(&report); err != nil {
		t.Fatal(err)
	}
	_, cmdDef, _ := d.Model.Command("thermostat1*getMaxMinReport")
	if probs := model.CheckValue(cmdDef.Response.Schema, report, "$"); probs != nil || len(report) != 5 {
		t.Fatalf("getMaxMinReport answer %s: %v", resp.Payload, probs)
	}
	resp, err = c.InvokeMethod(ctx, devID, "", api.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`0`), ResponseTimeoutInSeconds: 10})
	if err != nil || resp.Status != 200 || !strings.Contains(string(resp.Payload), `"rebootingIn":0`) {
		t.Fatalf("reboot: %+v %v", resp, err)
	}
	// A payload the model refuses never reaches the device.
	if _, err := c.InvokeMethod(ctx, devID, "", api.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`"soon"`), ResponseTimeoutInSeconds: 10}); err == nil ||
		!strings.Contains(err.Error(), "want an integer") {
		t.Fatalf("reboot with a string: %v", err)
	}
	if strings.Contains(logs.String(), "reboot in") && strings.Count(logs.String(), "reboot in") != 1 {
		t.Fatalf("the device saw the refused reboot:\n%s", logs.String())
	}
}
