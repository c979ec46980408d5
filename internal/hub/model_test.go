package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/stream"
)

const controllerModel = "dtmi:ferry:example:TemperatureController;1"

// addExampleModels uploads examples/thermostat/models.
func addExampleModels(t *testing.T, c *api.Client) {
	t.Helper()
	files, _ := filepath.Glob("../../examples/thermostat/models/*.json")
	if len(files) != 3 {
		t.Fatalf("example models: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddModels(context.Background(), b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// TestModelRepository covers the REST model repository: add (idempotent,
// immutable), invalid DTDL with its path, show with the compiled model,
// delete, and survival across a restart.
func TestModelRepository(t *testing.T) {
	dir := t.TempDir()
	h := hubtest.StartDir(t, dir)
	ctx := context.Background()
	c := h.Client
	addExampleModels(t, c)
	addExampleModels(t, c) // the same DTDL again is fine
	list, err := c.Models(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("models: %v %v", list, err)
	}
	d, err := c.Model(ctx, controllerModel)
	if err != nil || d.Model == nil || len(d.Model.Components) != 3 || d.Model.Component("thermostat1").TelemetryNamed("temperature").Unit != "degreeCelsius" {
		t.Fatalf("show: %+v %v", d, err)
	}
	_, err = c.AddModels(ctx, []byte(`{"@context":"dtmi:dtdl:context;2","@id":"dtmi:ferry:example:Thermostat;1","@type":"Interface","contents":[]}`))
	if !fault.Is(err, fault.Conflict) {
		t.Fatalf("changed interface under the same id: %v", err)
	}
	_, err = c.AddModels(ctx, []byte(`{"@context":"dtmi:dtdl:context;2","@id":"dtmi:x:y;1","@type":"Interface","contents":[{"@type":"Telemetry","name":"t","schema":{"@type":"Object","fields":[{"name":"a"}]}}]}`))
	if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "$.contents[0].schema.fields[0]: schema is required") {
		t.Fatalf("invalid DTDL: %v", err)
	}
	if err := c.DeleteModel(ctx, "dtmi:ferry:example:Thermostat;1"); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Model(ctx, controllerModel); err != nil || d.Model != nil || !strings.Contains(d.CompileError, "thermostat1") {
		t.Fatalf("after deleting a component's interface: %+v %v", d, err)
	}
	if err := c.DeleteModel(ctx, "dtmi:ferry:example:Thermostat;1"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := hubtest.StartDir(t, dir)
	if list, err := h2.Client.Models(ctx); err != nil || len(list) != 2 {
		t.Fatalf("after restart: %v %v", list, err)
	}
}

// TestPnPDevice connects devices that announce a model in their username
// (Node's raw and Python's encoded form), then checks the twin's modelId,
// device list by model, telemetry checked per component ($.sub) with a
// mismatch kept, marked for readers and counted, and a command payload
// refused by its request schema.
func TestPnPDevice(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	c := h.Client
	addExampleModels(t, c)

	node := h.CreateDevice(t, "pnp-node")
	py := h.CreateDevice(t, "pnp-py")
	plain := h.CreateDevice(t, "plain")
	users := map[string]string{
		node.ID:  node.Host + "/" + node.ID + "/?api-version=2021-04-12&model-id=" + controllerModel + "&DeviceClientType=azure-iot-device%2F1.18.4",
		py.ID:    py.Host + "/" + py.ID + "/?api-version=2020-09-30&DeviceClientType=py&model-id=dtmi%3Aferry%3Aexample%3AThermostat%3B1",
		plain.ID: plain.Username(),
	}
	conns := map[string]*hubtest.Conn{}
	for _, d := range []hubtest.Device{node, py, plain} {
		conn, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
			ClientID: d.ID, Username: users[d.ID], Password: d.Token(time.Hour)})
		if err != nil || code != 0 {
			t.Fatalf("%s: connect %d %v", d.ID, code, err)
		}
		defer conn.Disconnect()
		conns[d.ID] = conn
	}
	wantModel := map[string]string{node.ID: controllerModel, py.ID: "dtmi:ferry:example:Thermostat;1", plain.ID: ""}
	hubtest.Eventually(t, 20*time.Second, func() error {
		for id, want := range wantModel {
			tw, err := c.GetTwin(ctx, id)
			if err != nil {
				return err
			}
			var doc struct {
				ModelID string `json:"modelId"`
			}
			_ = json.Unmarshal(tw, &doc)
			if doc.ModelID != want {
				return fmt.Errorf("%s: twin modelId %q, want %q", id, doc.ModelID, want)
			}
		}
		return nil
	})
	rows, _, err := c.Query(ctx, "SELECT * FROM devices WHERE modelId = '"+controllerModel+"'", 100, "")
	if err != nil || len(rows) != 1 || !strings.Contains(string(rows[0]), `"deviceId":"pnp-node"`) {
		t.Fatalf("devices by model: %s %v", rows, err)
	}

	// Telemetry: fitting per component, then three mismatches.
	send := func(dev, bag, body string) {
		t.Helper()
		if code, err := conns[dev].Publish("devices/"+dev+"/messages/events/"+bag, []byte(body), 1, false); err != nil || code != 0 {
			t.Fatalf("publish %s %s: %d %v", dev, body, code, err)
		}
	}
	ct := "%24.ct=application%2Fjson&%24.ce=utf-8"
	send(node.ID, ct+"&%24.sub=thermostat1", `{"temperature":21.5}`)
	send(node.ID, ct+"&%24.sub=thermostat2", `{"temperature":19}`)
	send(node.ID, ct, `{"workingSet":2048}`)
	send(node.ID, ct+"&%24.sub=thermostat1", `{"temperature":"warm"}`) // wrong type
	send(node.ID, ct, `{"temperature":20}`)                            // not in the default component
	send(node.ID, ct+"&%24.sub=thermostat7", `{"temperature":20}`)     // no such component
	send(py.ID, ct, `{"temperature":20.5}`)                            // a model without components
	send(plain.ID, ct, `{"anything":true}`)                            // no model: not checked

	var page *api.MessagePage
	hubtest.Eventually(t, 20*time.Second, func() error {
		page, err = c.ReadStream(ctx, "*", api.ReadQuery{From: "beginning", Limit: 100})
		if err != nil {
			return err
		}
		if len(page.Messages) != 8 {
			return fmt.Errorf("%d messages stored, want 8", len(page.Messages))
		}
		return nil
	})
	var flagged []string
	for _, m := range page.Messages {
		if len(m.PnPMismatch) > 0 {
			flagged = append(flagged, m.SystemProperties.Component+" "+m.PnPMismatch[0].String())
		}
	}
	want := []string{
		`thermostat1 $.temperature: want a number (double), got a string`,
		` $.temperature: the default component (dtmi:ferry:example:TemperatureController;1) has no telemetry "temperature"`,
		`thermostat7 $.sub: model dtmi:ferry:example:TemperatureController;1 has no component "thermostat7"`,
	}
	if strings.Join(flagged, "\n") != strings.Join(want, "\n") {
		t.Fatalf("flagged messages:\n%s\nwant:\n%s", strings.Join(flagged, "\n"), strings.Join(want, "\n"))
	}
	hubtest.Eventually(t, 20*time.Second, func() error {
		m := scrape(t, h)
		if !strings.Contains(m, "ferry_pnp_telemetry_checked_total 7") || !strings.Contains(m, "ferry_pnp_telemetry_mismatch_total 3") {
			return fmt.Errorf("metrics:\n%s", grep(m, "ferry_pnp"))
		}
		return nil
	})
	st, err := c.DevicePnP(ctx, node.ID)
	if err != nil || st.Telemetry.Checked != 6 || st.Telemetry.Mismatched != 3 || st.Telemetry.LastMismatchSub != "thermostat7" {
		t.Fatalf("pnp state: %+v %v", st, err)
	}

	// A command whose payload does not fit its request schema is refused
	// before it reaches the device.
	_, err = c.InvokeMethod(ctx, node.ID, "", api.MethodRequest{MethodName: "thermostat1*getMaxMinReport", Payload: json.RawMessage(`"yesterday"`), ResponseTimeoutInSeconds: 5})
	if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), `"yesterday" is not a dateTime`) {
		t.Fatalf("bad command payload: %v", err)
	}
	if m := scrape(t, h); !strings.Contains(m, "ferry_pnp_command_refused_total 1") {
		t.Fatalf("metrics:\n%s", grep(m, "ferry_pnp"))
	}
	// A fitting one goes through (the raw client does not answer: the hub
	// times out, which shows the call was sent).
	_, err = c.InvokeMethod(ctx, node.ID, "", api.MethodRequest{MethodName: "thermostat1*getMaxMinReport", Payload: json.RawMessage(`"2026-11-23T05:00:00Z"`), ResponseTimeoutInSeconds: 5})
	if fault.Is(err, fault.Invalid) {
		t.Fatalf("fitting command payload refused: %v", err)
	}
	_ = model.StateInSync
}

// A device's first message after it connects announcing a model is
// checked against that model, even before the registry records it.
func TestPnPFirstMessageUsesAnnouncedModel(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	addExampleModels(t, h.Client)
	d := h.CreateDevice(t, "pnp-first")
	h.AnnounceModel(d.ID, "dtmi:ferry:example:Thermostat;1")
	msg := &stream.Message{DeviceID: d.ID, ContentType: "application/json", Body: []byte(`{"temperature":"warm"}`)}
	problems := h.CheckTelemetry(ctx, msg)
	if len(problems) != 1 || !strings.Contains(problems[0].String(), "want a number") {
		t.Fatalf("first message's problems: %v", problems)
	}
	// A model id that is not a DTMI is neither recorded nor used.
	h.AnnounceModel(d.ID, "not a model")
	hubtest.Eventually(t, 20*time.Second, func() error {
		dev, err := h.Client.GetDevice(ctx, d.ID)
		if err != nil {
			return err
		}
		if dev.ModelID != "dtmi:ferry:example:Thermostat;1" {
			return fmt.Errorf("registry model id %q", dev.ModelID)
		}
		return nil
	})
}
