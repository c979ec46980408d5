package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// twinCall publishes a twin request and returns the response's status,
// $version and body.
func twinCall(t *testing.T, c *hubtest.Conn, topic string, body []byte) (int, int64, []byte) {
	t.Helper()
	if _, err := c.Publish(topic, body, 0, false); err != nil {
		t.Fatal(err)
	}
	top, err := protocol.ParseTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	for {
		pk, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("no twin response to %s: %v", topic, err)
		}
		if pk.FixedHeader.Type != packets.Publish || !strings.HasPrefix(pk.TopicName, "$iothub/twin/res/") {
			continue
		}
		res, err := protocol.ParseTopic(pk.TopicName)
		if err != nil {
			t.Fatalf("response topic %q: %v", pk.TopicName, err)
		}
		if res.RID != top.RID {
			continue
		}
		return res.Status, res.Version, pk.Payload
	}
}

func TestDeviceTwins(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "twin-1")
	ctx := context.Background()
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	if granted, err := c.Subscribe("$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"); err != nil || granted[0] > 1 || granted[1] > 1 {
		t.Fatalf("subscribe: %v %v", granted, err)
	}

	status, _, body := twinCall(t, c, "$iothub/twin/GET/?$rid=1", []byte(" "))
	if status != 200 || string(body) != `{"desired":{"$version":1},"reported":{"$version":1}}` {
		t.Fatalf("GET: %d %s", status, body)
	}
	status, version, _ := twinCall(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=2", []byte(`{"temp":21.5,"fw":{"v":"1.0"}}`))
	if status != 204 || version != 2 {
		t.Fatalf("PATCH reported: %d $version %d, want 204 and 2", status, version)
	}
	// A null deletes; a rejected patch changes nothing.
	if status, version, _ := twinCall(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=3", []byte(`{"fw":null}`)); status != 204 || version != 3 {
		t.Fatalf("PATCH with null: %d %d", status, version)
	}
	deep := strings.Repeat(`{"a":`, 12) + "1" + strings.Repeat("}", 12)
	for rid, bad := range map[string]string{"4": `{not json`, "5": deep, "6": `["an array"]`, "7": `{"bad key":1}`} {
		status, _, body := twinCall(t, c, "$iothub/twin/PATCH/properties/reported/?$rid="+rid, []byte(bad))
		if status != 400 || !strings.Contains(string(body), "errorCode") {
			t.Errorf("bad reported patch %.20q: %d %s, want 400 with errorCode", bad, status, body)
		}
	}

	// The service sees the reported properties and sets desired ones with its etag.
	tw := getTwin(t, h, dev.ID)
	reported := tw["properties"].(map[string]any)["reported"].(map[string]any)
	if reported["temp"] != 21.5 || reported["fw"] != nil || reported["$version"] != 3.0 {
		t.Fatalf("service view of reported: %v", reported)
	}
	etag := tw["etag"].(string)
	if _, err := h.Client.PatchTwin(ctx, dev.ID, []byte(`{"properties":{"desired":{"setpoint":20}},"tags":{"site":"A"}}`), `"stale"`); !fault.Is(err, fault.PreconditionFailed) {
		t.Fatalf("PATCH with a stale etag: %v, want precondition failed", err)
	}
	if _, err := h.Client.PatchTwin(ctx, dev.ID, []byte(`{"properties":{"desired":{"setpoint":20}},"tags":{"site":"A"}}`), etag); err != nil {
		t.Fatal(err)
	}
	// The device gets the change with its $version.
	for {
		pk, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatal("no desired patch:", err)
		}
		if pk.FixedHeader.Type != packets.Publish || !strings.HasPrefix(pk.TopicName, "$iothub/twin/PATCH/properties/desired/") {
			continue
		}
		var patch map[string]any
		if err := json.Unmarshal(pk.Payload, &patch); err != nil || patch["setpoint"] != 20.0 || patch["$version"] != 2.0 {
			t.Fatalf("desired patch %s on %s", pk.Payload, pk.TopicName)
		}
		if top, _ := protocol.ParseTopic(pk.TopicName); top.Version != 2 {
			t.Fatalf("desired patch topic %s", pk.TopicName)
		}
		break
	}
	status, _, body = twinCall(t, c, "$iothub/twin/GET/?$rid=9", []byte(" "))
	if status != 200 || !strings.Contains(string(body), `"setpoint":20`) {
		t.Fatalf("GET after desired change: %d %s", status, body)
	}
	if _, err := h.Client.PatchTwin(ctx, "ghost", []byte(`{"tags":{}}`), ""); !fault.Is(err, fault.NotFound) {
		t.Fatalf("PATCH of an unknown device's twin: %v", err)
	}
}

func getTwin(t *testing.T, h *hubtest.Hub, id string) map[string]any {
	t.Helper()
	b, err := h.Client.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTwinCommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "twin-cli")
	run := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := cli.Main(context.Background(), append(args, "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("twin", "update", dev.ID, "--desired", `{"targetTemperature":21}`, "--tags", `{"site":"A"}`); code != 0 || !strings.Contains(out, `"targetTemperature": 21`) {
		t.Fatalf("twin update: %d %s", code, out)
	}
	if code, out := run("twin", "show", dev.ID); code != 0 || !strings.Contains(out, `"site": "A"`) {
		t.Fatalf("twin show: %d %s", code, out)
	}
	if code, out := run("twin", "history", dev.ID); code != 0 || !strings.Contains(out, "desired") || !strings.Contains(out, "tags") {
		t.Fatalf("twin history: %d %s", code, out)
	}
	if code, _ := run("twin", "update", dev.ID, "--desired", `{"a":1}`, "--etag", "stale"); code != 5 {
		t.Fatalf("twin update with a stale etag: exit %d, want 5", code)
	}
	if code, _ := run("twin", "update", dev.ID, "--desired", `{bad`); code != 2 {
		t.Fatalf("twin update with bad JSON: exit %d, want 2", code)
	}
	deep := strings.Repeat(`{"a":`, 12) + "1" + strings.Repeat("}", 12)
	if code, out := run("twin", "update", dev.ID, "--desired", deep); code != 1 || !strings.Contains(out, "deeper") {
		t.Fatalf("twin update too deep: exit %d, %s", code, out)
	}
}

func TestTwinAsOf(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "asof-1")
	ctx := context.Background()
	if _, err := h.Client.PatchTwin(ctx, dev.ID, []byte(`{"properties":{"desired":{"mode":"eco"}}}`), ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	between := time.Now()
	time.Sleep(20 * time.Millisecond)
	if _, err := h.Client.PatchTwin(ctx, dev.ID, []byte(`{"properties":{"desired":{"mode":"boost"}}}`), ""); err != nil {
		t.Fatal(err)
	}
	old, err := h.Client.TwinAsOf(ctx, dev.ID, between)
	if err != nil || !strings.Contains(string(old), `"mode":"eco"`) {
		t.Fatalf("twin as of between the changes: %s %v", old, err)
	}
	now, err := h.Client.GetTwin(ctx, dev.ID)
	if err != nil || !strings.Contains(string(now), `"mode":"boost"`) {
		t.Fatalf("twin now: %s %v", now, err)
	}
}
