package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/route"
)

// TestE2ERouteCommands drives ferry route against a real hub: add (and a
// refused condition with its position), list, show, test, disable, enable,
// fallback and delete, with the exit codes scripts rely on.
func TestE2ERouteCommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	h.CreateDevice(t, "agent")

	r := ferry(t, h, "route", "add", "bad", "--condition", "$body.x >> 1", "--endpoint", "stream:x").expect(t, 1)
	if !strings.Contains(r.stderr, "line 1, column 10") {
		t.Fatalf("no position in %s", r)
	}
	ferry(t, h, "route", "show", "bad").expect(t, 3)
	ferry(t, h, "route", "add", "x", "--endpoint", "carrier-pigeon:y").expect(t, 2)
	ferry(t, h, "route", "add", "x", "--endpoint", "stream:x", "--target", "d").expect(t, 2)

	r = ferry(t, h, "route", "add", "parcels", "--condition", "proto-type = 'pb_AlarmStatus' AND $body.n > 2",
		"--endpoint", "method:ProcessMessage", "--target-from", "to", "--enrich", "site=$twin.tags.site", "--json").expect(t, 0)
	var got route.Route
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Endpoints[0].TargetFrom != "to" || !got.Enabled {
		t.Fatalf("add: %v %+v", err, got)
	}
	ferry(t, h, "route", "add", "parcels", "--endpoint", "c2d", "--target", "agent").expect(t, 5)
	ferry(t, h, "route", "add", "hooks", "--endpoint", "webhook:https://example.com/h", "--secret", "k", "--disabled").expect(t, 0)

	r = ferry(t, h, "route", "list").expect(t, 0)
	if !strings.Contains(r.stdout, "parcels") || !strings.Contains(r.stdout, "method:ProcessMessage → from to") {
		t.Fatalf("list: %s", r)
	}
	r = ferry(t, h, "route", "show", "hooks", "--json").expect(t, 0)
	if strings.Contains(r.stdout, `"k"`) || !strings.Contains(r.stdout, route.Redacted) {
		t.Fatalf("show leaks the secret: %s", r)
	}

	r = ferry(t, h, "route", "test", "--device", "agent", "--property", "proto-type=pb_AlarmStatus",
		"--body", `{"n": 3}`, "--to", "agent").expect(t, 0)
	if !strings.Contains(r.stdout, "parcels: MATCH") || !strings.Contains(r.stdout, "$body.n > 2: 3 → true") ||
		!strings.Contains(r.stdout, "method:ProcessMessage → from to: to agent") {
		t.Fatalf("test: %s", r)
	}
	r = ferry(t, h, "route", "test", "--condition", "$body.n > 2", "--body", "not json").expect(t, 0)
	if !strings.Contains(r.stdout, "no match (condition is undefined)") || !strings.Contains(r.stdout, "not JSON") {
		t.Fatalf("test non-JSON: %s", r)
	}

	ferry(t, h, "route", "disable", "parcels").expect(t, 0)
	r = ferry(t, h, "route", "test", "--device", "agent", "--property", "proto-type=pb_AlarmStatus", "--body", `{"n": 3}`, "--json").expect(t, 0)
	var res route.TestResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Fallback {
		t.Fatalf("a disabled route's match still counts: %v %s", err, r.stdout)
	}
	ferry(t, h, "route", "enable", "parcels").expect(t, 0)
	ferry(t, h, "route", "fallback", "off").expect(t, 0)
	if r = ferry(t, h, "route", "fallback", "show").expect(t, 0); strings.TrimSpace(r.stdout) != "off" {
		t.Fatalf("fallback: %s", r)
	}
	ferry(t, h, "route", "delete", "parcels").expect(t, 0)
	ferry(t, h, "route", "delete", "parcels").expect(t, 3)
	ferry(t, h, "schema", "add", "x", "--descriptor-set", "/nonexistent").expect(t, 2)
	if r = ferry(t, h, "schema", "list", "--json").expect(t, 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("schema list: %s", r)
	}
	ferry(t, h, "schema", "delete", "x").expect(t, 3)
}

// TestE2EMonitorProtobuf shows a protobuf body decoded once its schema is
// registered, and as stored before.
func TestE2EMonitorProtobuf(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "agent")
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	defer c.Disconnect()
	body := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
	topic := protocol.TelemetryTopic(dev.ID, "", protocol.Properties{ContentType: "application/x-protobuf",
		App: []protocol.Property{{Key: "proto-type", Value: "pb_AlarmStatus"}}})
	if code, err := c.Publish(topic, body, 1, false); err != nil || code != 0 {
		t.Fatal(code, err)
	}
	r := ferry(t, h, "monitor", "--from", "beginning", "--max", "1", "--json").expect(t, 0)
	if strings.Contains(r.stdout, "alarm_active") || !strings.Contains(r.stdout, `"payload":"\b\u0001"`) {
		t.Fatalf("before the schema: %s", r)
	}
	desc := filepath.Join(t.TempDir(), "alarm.pb")
	os.WriteFile(desc, alarmSet(t), 0o600)
	ferry(t, h, "schema", "add", "pb_AlarmStatus", "--descriptor-set", desc).expect(t, 0)
	if r = ferry(t, h, "schema", "list").expect(t, 0); !strings.Contains(r.stdout, "pb_AlarmStatus") {
		t.Fatalf("schema list: %s", r)
	}
	r = ferry(t, h, "monitor", "--from", "beginning", "--max", "1", "--json").expect(t, 0)
	if !strings.Contains(r.stdout, `"payload":{"alarm_active":true,"date_utc":"","time_utc":""}`) {
		t.Fatalf("after the schema: %s", r)
	}
}

func alarmSet(t *testing.T) []byte {
	str, boolean := descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_BOOL
	fds := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{{
		Name: proto.String("a.proto"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("pb_AlarmStatus"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: proto.String("alarm_active"), Number: proto.Int32(1), Type: &boolean},
			{Name: proto.String("time_utc"), Number: proto.Int32(2), Type: &str},
			{Name: proto.String("date_utc"), Number: proto.Int32(3), Type: &str},
		}}},
	}}}
	b, err := proto.Marshal(fds)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
