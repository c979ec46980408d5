package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/method"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/stream"
)

// models is a model repository holding the DTDL files of testdata/.
type models map[string]json.RawMessage

func loadModels(t *testing.T) models {
	t.Helper()
	m := models{}
	for _, f := range []string{"temperaturecontroller.json", "thermostat.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		var id struct {
			ID string `json:"@id"`
		}
		if err := json.Unmarshal(b, &id); err != nil {
			t.Fatal(err)
		}
		m[id.ID] = b
	}
	return m
}

func (m models) Model(_ context.Context, id string) (json.RawMessage, error) {
	if b, ok := m[id]; ok {
		return b, nil
	}
	return nil, errors.New("no such model")
}

// componentTelemetry holds a few messages of two thermostat components.
type componentTelemetry struct{}

func (componentTelemetry) Last(context.Context) (stream.Cursor, error) { return stream.Cursor{}, nil }

func (componentTelemetry) Read(_ context.Context, q stream.Query) ([]stream.Message, stream.Cursor, error) {
	if q.From.IsZero() || !q.After.IsZero() {
		return nil, q.After, nil // live: nothing new
	}
	now := time.Now()
	var msgs []stream.Message
	for i := range 5 {
		at := now.Add(time.Duration(i-5) * time.Second)
		msgs = append(msgs,
			stream.Message{DeviceID: q.DeviceID, EnqueuedTime: at, Component: "thermostat1", Body: []byte(`{"temperature":` + string(rune('0'+i)) + `1.5}`)},
			stream.Message{DeviceID: q.DeviceID, EnqueuedTime: at, Component: "thermostat2", Body: []byte(`{"temperature":3` + string(rune('0'+i)) + `}`)},
			stream.Message{DeviceID: q.DeviceID, EnqueuedTime: at, Body: []byte(`{"workingSet":1024}`)})
	}
	return msgs, stream.Cursor{Seq: 1, Index: 15}, nil
}

// thermostatMethods answers as seed 003's temperature controller does.
type thermostatMethods struct{ calls chan method.Request }

func (m thermostatMethods) Invoke(_ context.Context, deviceID, _ string, req method.Request) (method.Response, error) {
	m.calls <- req
	if req.Name == "thermostat1*getMaxMinReport" {
		return method.Response{Status: 200, Payload: []byte(`{"maxTemp":41.5,"minTemp":1.5,"avgTemp":21.5}`)}, nil
	}
	return method.Response{Status: 404, Payload: []byte(`{"error":"no such command"}`)}, nil
}

// TestModelDrivenView drives the model-driven device view in Chromium
// against a console with a model repository (the hub gets one with issue
// 8): components with their telemetry units, the chart's series labelled
// with them, reported properties, a writable property set through the
// form (a component patch with "__t": "c"), and a component command
// invoked by name with its request.
func TestModelDrivenView(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node and chromium")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Skip("chromium is not installed (scripts/test installs it)")
	}
	dir := browserTestDir(t)
	npmCI(t, dir)
	calls := make(chan method.Request, 10)
	e := newEnv(t, func(c *console.Config, a *api.Config) {
		c.Models = loadModels(t)
		c.Telemetry = componentTelemetry{}
		a.Methods = thermostatMethods{calls}
	})
	ctx := context.Background()
	const id = "thermostat-controller-1"
	if _, err := e.reg.Create(ctx, registry.Device{DeviceID: id, ModelID: "dtmi:ferry:example:TemperatureController;1"}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	if r, body := b.api("PATCH", "twins/"+id, `{"properties":{"desired":{}}}`, map[string]string{"If-Match": "*"}); r.StatusCode/100 != 2 {
		t.Fatalf("twin: %s %s", r.Status, body)
	}

	cmd := exec.Command(nodeBin, "model.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FERRY_URL="+e.srv.URL, "FERRY_POLICY=iothubowner", "FERRY_KEY="+e.keys["iothubowner"],
		"FERRY_DEVICE="+id, "FERRY_ARTIFACTS="+filepath.Join(dir, "artifacts"), "CHROMIUM=/usr/bin/chromium")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	t.Logf("model.js:\n%s", stdout.String())
	if runErr != nil {
		t.Fatalf("model.js: %v\n%s", runErr, stderr.String())
	}

	// The form's patch reached the twin as a component update.
	r, body := b.api("GET", "twins/"+id, "", nil)
	if r.StatusCode != 200 || !strings.Contains(body, `"thermostat1":{"__t":"c","targetTemperature":25.5}`) {
		t.Errorf("desired after the form: %s", body)
	}
	select {
	case req := <-calls:
		if req.Name != "thermostat1*getMaxMinReport" || string(req.Payload) != `"2026-11-23T05:00:00Z"` {
			t.Errorf("command %s %s", req.Name, req.Payload)
		}
	default:
		t.Error("no command reached the device")
	}
}
