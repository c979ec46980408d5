package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/model"
)

// simModel has every kind of schema the simulator fills, a component, a
// writable property and a command with a response.
const simModel = `[{
  "@context": "dtmi:dtdl:context;3", "@id": "dtmi:ferry:test:Sim;1", "@type": "Interface",
  "contents": [
    {"@type": "Telemetry", "name": "level", "schema": "double"},
    {"@type": "Telemetry", "name": "count", "schema": "integer"},
    {"@type": "Telemetry", "name": "open", "schema": "boolean"},
    {"@type": "Telemetry", "name": "mode", "schema": {"@type": "Enum", "valueSchema": "string",
      "enumValues": [{"name": "eco", "enumValue": "eco"}, {"name": "boost", "enumValue": "boost"}]}},
    {"@type": "Telemetry", "name": "pos", "schema": {"@type": "Object", "fields": [
      {"name": "lat", "schema": "double"}, {"name": "at", "schema": "dateTime"}, {"name": "tag", "schema": "string"}]}},
    {"@type": "Telemetry", "name": "tags", "schema": {"@type": "Array", "elementSchema": "long"}},
    {"@type": "Property", "name": "setpoint", "schema": "double", "writable": true},
    {"@type": "Command", "name": "report", "request": {"name": "since", "schema": "dateTime"},
      "response": {"name": "r", "schema": {"@type": "Object", "fields": [
        {"name": "max", "schema": "double"}, {"name": "state", "schema": "boolean"}, {"name": "id", "schema": "uuid"}]}}},
    {"@type": "Component", "name": "fan", "schema": "dtmi:ferry:test:Fan;1"}
  ]},
  {"@context": "dtmi:dtdl:context;3", "@id": "dtmi:ferry:test:Fan;1", "@type": "Interface",
   "contents": [
     {"@type": "Telemetry", "name": "rpm", "schema": "unsignedShort"},
     {"@type": "Telemetry", "name": "uptime", "schema": "duration"},
     {"@type": "Property", "name": "speed", "schema": "integer", "writable": true}
   ]}]`

func TestSimulateModel(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	c := h.Client
	if _, err := c.AddModels(ctx, []byte(simModel)); err != nil {
		t.Fatal(err)
	}
	const id = "dtmi:ferry:test:Sim;1"
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"simulate", "--devices", "3", "--rate", "5", "--model", id, "--duration", "4s",
			"--json", "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &stdout, &stderr)
	}()

	// While it runs: a command answered with the response schema, the
	// writable properties (default component and fan) acknowledged.
	hubtest.Eventually(t, 10*time.Second, func() error {
		resp, err := c.InvokeMethod(ctx, "sim-1", "", api.MethodRequest{MethodName: "report",
			Payload: json.RawMessage(`"2026-01-01T00:00:00Z"`), ResponseTimeoutInSeconds: 5})
		if err != nil {
			return err
		}
		d, _ := c.Model(ctx, id)
		_, cmd, _ := d.Model.Command("report")
		var v any
		dec := json.NewDecoder(bytes.NewReader(resp.Payload))
		dec.UseNumber()
		_ = dec.Decode(&v)
		if resp.Status != 200 || model.CheckValue(cmd.Response.Schema, v, "$") != nil || !strings.Contains(string(resp.Payload), `"id"`) {
			t.Fatalf("report: %d %s", resp.Status, resp.Payload)
		}
		return nil
	})
	if _, err := c.PatchTwin(ctx, "sim-2", []byte(`{"properties":{"desired":{"setpoint":21.5,"fan":{"__t":"c","speed":3}}}}`), ""); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		st, err := c.DevicePnP(ctx, "sim-2")
		if err != nil {
			return err
		}
		synced := 0
		for _, w := range st.Writable {
			if w.State == model.StateInSync && w.AckCode == 200 {
				synced++
			}
		}
		if synced != 2 {
			return fmt.Errorf("writable: %+v", st.Writable)
		}
		return nil
	})

	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("simulate did not stop after --duration")
	}
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var sum struct {
		Devices, Sent, Commands, Acks, Errors, Pending int
	}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if sum.Devices != 3 || sum.Sent < 30 || sum.Commands < 1 || sum.Acks != 2 || sum.Errors != 0 || sum.Pending != 0 {
		t.Fatalf("summary %s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "\r\x1b[Ksimulate: 3/3 connected") {
		t.Fatalf("status line: %q", stderr.String())
	}

	// Telemetry from each device and both components, all fitting the model.
	page, err := c.ReadStream(ctx, "*", api.ReadQuery{From: "beginning", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range page.Messages {
		if len(m.PnPMismatch) > 0 {
			t.Fatalf("message does not fit the model: %v %s", m.PnPMismatch, m.Body)
		}
		seen[m.DeviceID+"/"+m.SystemProperties.Component]++
	}
	for _, k := range []string{"sim-0/", "sim-0/fan", "sim-2/", "sim-2/fan"} {
		if seen[k] < 5 {
			t.Fatalf("messages per device/component: %v", seen)
		}
	}
	metrics := scrapeMetrics(t, h)
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "ferry_pnp_telemetry_mismatch_total") && !strings.HasSuffix(l, " 0") {
			t.Fatalf("mismatches: %s", l)
		}
	}
	if !strings.Contains(metrics, "ferry_pnp_telemetry_mismatch_total") {
		t.Fatal("no ferry_pnp_telemetry_mismatch_total on /metrics")
	}
	if st, err := c.DevicePnP(ctx, "sim-0"); err != nil || st.Telemetry.Checked < 10 || st.Telemetry.Mismatched != 0 {
		t.Fatalf("sim-0's telemetry checks: %+v %v", st, err)
	}
}

func TestSimulateTemplate(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	tmpl := t.TempDir() + "/t.json"
	if err := os.WriteFile(tmpl, []byte(`{"temp": "{{drift 18 24}}", "door": "{{choice open shut}}", "n": "{{seq}}", "who": "dev {{device}}"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"simulate", "--devices", "2", "--rate", "10", "--template", tmpl, "--duration", "1500ms",
		"--prefix", "tpl-", "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "2 devices") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	page, err := h.Client.ReadStream(ctx, "*", api.ReadQuery{Device: "tpl-1", From: "beginning", Limit: 100})
	if err != nil || len(page.Messages) < 5 {
		t.Fatalf("%v %d messages", err, len(page.Messages))
	}
	var m struct {
		Temp float64
		Door string
		N    int
		Who  string
	}
	_ = json.Unmarshal(page.Messages[1].Body, &m)
	if m.Temp < 18 || m.Temp > 24 || (m.Door != "open" && m.Door != "shut") || m.N != 2 || m.Who != "dev tpl-1" {
		t.Fatalf("message %s", page.Messages[1].Body)
	}
	// Neither a model nor a template: a usage error.
	if code := cli.Main(ctx, []string{"simulate", "--devices", "2", "--hub", h.OwnerConnectionString()}, io.Discard, io.Discard); code == 0 {
		t.Fatal("neither --model nor --template was accepted")
	}
}

func scrapeMetrics(t *testing.T, h *hubtest.Hub) string {
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
