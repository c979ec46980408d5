package protocol_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

func TestParseTopic(t *testing.T) {
	type T = protocol.Topic
	tests := []struct {
		topic string
		want  T
	}{
		// Telemetry.
		{"devices/dev1/messages/events/" + nodeBag, T{Kind: protocol.TopicTelemetry, DeviceID: "dev1", Bag: nodeBag}},
		{"devices/dev1/messages/events/", T{Kind: protocol.TopicTelemetry, DeviceID: "dev1"}},
		{"devices/dev1/messages/events", T{Kind: protocol.TopicTelemetry, DeviceID: "dev1"}},
		{"devices/dev1/modules/m1/messages/events/%24.on=out1", T{Kind: protocol.TopicTelemetry, DeviceID: "dev1", ModuleID: "m1", Bag: "%24.on=out1"}},
		{"devices/dev1/modules/m1/messages/events", T{Kind: protocol.TopicTelemetry, DeviceID: "dev1", ModuleID: "m1"}},
		{"devices/a%3Ab@c:d/messages/events/", T{Kind: protocol.TopicTelemetry, DeviceID: "a%3Ab@c:d"}},
		{"devices/modules/messages/events/", T{Kind: protocol.TopicTelemetry, DeviceID: "modules"}},
		{"devices/d/messages/events/a=b/c", T{Kind: protocol.TopicTelemetry, DeviceID: "d", Bag: "a=b/c"}},
		// C2D and module inputs.
		{"devices/foo/messages/devicebound/%24.mid=1&%24.to=%2Fdevices%2Ffoo%2Fmessages%2Fdevicebound",
			T{Kind: protocol.TopicC2D, DeviceID: "foo", Bag: "%24.mid=1&%24.to=%2Fdevices%2Ffoo%2Fmessages%2Fdevicebound"}},
		{"devices/foo/messages/devicebound/", T{Kind: protocol.TopicC2D, DeviceID: "foo"}},
		{"devices/foo/messages/devicebound", T{Kind: protocol.TopicC2D, DeviceID: "foo"}},
		{"devices/d/modules/m/inputs/in1/k=v", T{Kind: protocol.TopicModuleInput, DeviceID: "d", ModuleID: "m", Input: "in1", Bag: "k=v"}},
		{"devices/d/modules/m/inputs/in1", T{Kind: protocol.TopicModuleInput, DeviceID: "d", ModuleID: "m", Input: "in1"}},
		// Twin.
		{"$iothub/twin/GET/?$rid=b86d22bd-1", T{Kind: protocol.TopicTwinGet, RID: "b86d22bd-1", Bag: "$rid=b86d22bd-1"}},
		{"$iothub/twin/GET?$rid=7", T{Kind: protocol.TopicTwinGet, RID: "7", Bag: "$rid=7"}},
		{"$iothub/twin/GET/?%24rid=7", T{Kind: protocol.TopicTwinGet, RID: "7", Bag: "%24rid=7"}},
		{"$iothub/twin/PATCH/properties/reported/?$rid=d253f081", T{Kind: protocol.TopicTwinPatchReported, RID: "d253f081", Bag: "$rid=d253f081"}},
		{"$iothub/twin/PATCH/properties/reported/?$rid=1&$version=junk", T{Kind: protocol.TopicTwinPatchReported, RID: "1", Bag: "$rid=1&$version=junk"}},
		{"$iothub/twin/res/200/?$rid=1", T{Kind: protocol.TopicTwinResponse, Status: 200, RID: "1", Bag: "$rid=1"}},
		{"$iothub/twin/res/204/?$rid=1&$version=3", T{Kind: protocol.TopicTwinResponse, Status: 204, RID: "1", Version: 3, Bag: "$rid=1&$version=3"}},
		{"$iothub/twin/PATCH/properties/desired/?$version=8", T{Kind: protocol.TopicTwinDesiredPatch, Version: 8, Bag: "$version=8"}},
		// Methods.
		{"$iothub/methods/res/200/?$rid=1", T{Kind: protocol.TopicMethodResponse, Status: 200, RID: "1", Bag: "$rid=1"}},
		{"$iothub/methods/res/0/?$rid=1", T{Kind: protocol.TopicMethodResponse, Status: 0, RID: "1", Bag: "$rid=1"}},
		{"$iothub/methods/res/400/?$rid=3", T{Kind: protocol.TopicMethodResponse, Status: 400, RID: "3", Bag: "$rid=3"}},
		{"$iothub/methods/POST/thermostat1*getMaxMinReport/?$rid=2",
			T{Kind: protocol.TopicMethodRequest, Method: "thermostat1*getMaxMinReport", RID: "2", Bag: "$rid=2"}},
		// DPS.
		{"$dps/registrations/PUT/iotdps-register/?$rid=1", T{Kind: protocol.TopicDPSRegister, RID: "1", Bag: "$rid=1"}},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=5.ae17",
			T{Kind: protocol.TopicDPSPoll, RID: "2", OperationID: "5.ae17", Bag: "$rid=2&operationId=5.ae17"}},
		{"$dps/registrations/res/202/?$rid=1&retry-after=3", T{Kind: protocol.TopicDPSResponse, Status: 202, RID: "1", RetryAfter: 3, Bag: "$rid=1&retry-after=3"}},
		// Ordinary broker topics.
		{"", T{}},
		{"sensors/temp", T{}},
		{"devices", T{}},
		{"devices/dev1", T{}},
		{"devices/dev1/telemetry", T{}},
		{"devices/dev1/messages/eventsX", T{}},
		{"devices/dev1/modules/m1", T{}},
		{"devices/dev1/modules/m1/messages/devicebound/", T{}},
		{"devices/dev1/inputs/x/", T{}},
		{"$iothub", T{}},
		{"$SYS/broker/uptime", T{}},
	}
	for _, tt := range tests {
		got, err := protocol.ParseTopic(tt.topic)
		if err != nil {
			t.Errorf("ParseTopic(%q): %v", tt.topic, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTopic(%q)\n got %+v\nwant %+v", tt.topic, got, tt.want)
		}
	}
}

func TestParseTopicErrors(t *testing.T) {
	tests := []struct{ topic, wantText string }{
		{"devices//messages/events/", "empty device id"},
		{"devices//messages/events", "empty device id"},
		{"devices//messages/devicebound/", "empty device id"},
		{"devices/d/modules//messages/events/", "empty module id"},
		{"devices//modules/m/messages/events/", "empty device id"},
		{"devices/d/modules/m/inputs//x", "empty input name"},
		{"$iothub/methods/res/abc/?$rid=1", "status"},
		{"$iothub/methods/res//?$rid=1", "status"},
		{"$iothub/methods/res/-1/?$rid=1", "status"},
		{"$iothub/methods/res/+200/?$rid=1", "status"},
		{"$iothub/methods/res/0200/?$rid=1", "status"},
		{"$iothub/methods/res/9999999999/?$rid=1", "status"},
		{"$iothub/methods/res/200/?$rid=", "missing $rid"},
		{"$iothub/methods/res/200/", "missing $rid"},
		{"$iothub/methods/res/200/?rid=1", "missing $rid"},
		{"$iothub/twin/res/x/?$rid=1", "status"},
		{"$iothub/twin/res/200/?$rid=1&$version=x", "$version"},
		{"$iothub/twin/PATCH/properties/desired/?$version=-1", "$version"},
		{"$iothub/twin/GET/", "missing $rid"},
		{"$iothub/twin/GET", "missing $rid"},
		{"$iothub/twin/PATCH/properties/reported/", "missing $rid"},
		{"$iothub/twin/DELETE/?$rid=1", "not a twin or method topic"},
		{"$iothub/twin/GET//?$rid=1", "not a twin or method topic"},
		{"$iothub/methods/POST//?$rid=1", "method name"},
		{"$iothub/methods/POST/a/b/?$rid=1", "method name"},
		{"$iothub/", "not a twin or method topic"},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1", "operationId"},
		{"$dps/registrations/PUT/iotdps-register/", "missing $rid"},
		{"$dps/registrations/res/abc/?$rid=1", "status"},
		{"$dps/registrations/res/202/?$rid=1&retry-after=soon", "retry-after"},
		{"$dps/registrations/DELETE/?$rid=1", "not a provisioning topic"},
	}
	for _, tt := range tests {
		got, err := protocol.ParseTopic(tt.topic)
		if !errors.Is(err, protocol.ErrBadTopic) {
			t.Errorf("ParseTopic(%q) = %+v, %v; want an error wrapping ErrBadTopic", tt.topic, got, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantText) || !strings.HasPrefix(err.Error(), "protocol: bad topic: ") {
			t.Errorf("ParseTopic(%q) error %q lacks %q", tt.topic, err, tt.wantText)
		}
		if got != (protocol.Topic{}) {
			t.Errorf("ParseTopic(%q) returned %+v with its error", tt.topic, got)
		}
	}
}

func TestTopicFormatters(t *testing.T) {
	props := protocol.Properties{MessageID: "m1", To: "/devices/foo/messages/devicebound", App: []protocol.Property{{"iothub-ack", "full"}}}
	tests := []struct {
		got, want string
		kind      protocol.TopicKind
	}{
		{protocol.TelemetryTopic("dev1", "", protocol.Properties{}), "devices/dev1/messages/events/", protocol.TopicTelemetry},
		{protocol.TelemetryTopic("dev1", "m1", protocol.Properties{OutputName: "out"}), "devices/dev1/modules/m1/messages/events/%24.on=out", protocol.TopicTelemetry},
		{protocol.C2DTopic("foo", protocol.Properties{}), "devices/foo/messages/devicebound/", protocol.TopicC2D},
		{protocol.C2DTopic("foo", props), "devices/foo/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Ffoo%2Fmessages%2Fdevicebound&iothub-ack=full", protocol.TopicC2D},
		{protocol.ModuleInputTopic("d", "m", "in1", protocol.Properties{}), "devices/d/modules/m/inputs/in1/", protocol.TopicModuleInput},
		{protocol.MethodRequestTopic("reboot", "1"), "$iothub/methods/POST/reboot/?$rid=1", protocol.TopicMethodRequest},
		{protocol.MethodResponseTopic(200, "1"), "$iothub/methods/res/200/?$rid=1", protocol.TopicMethodResponse},
		{protocol.TwinGetTopic("r"), "$iothub/twin/GET/?$rid=r", protocol.TopicTwinGet},
		{protocol.TwinPatchReportedTopic("r"), "$iothub/twin/PATCH/properties/reported/?$rid=r", protocol.TopicTwinPatchReported},
		{protocol.TwinResponseTopic(200, "r", 0), "$iothub/twin/res/200/?$rid=r", protocol.TopicTwinResponse},
		{protocol.TwinResponseTopic(204, "r", 5), "$iothub/twin/res/204/?$rid=r&$version=5", protocol.TopicTwinResponse},
		{protocol.DesiredPatchTopic(8), "$iothub/twin/PATCH/properties/desired/?$version=8", protocol.TopicTwinDesiredPatch},
		{protocol.DPSRegisterTopic("1"), "$dps/registrations/PUT/iotdps-register/?$rid=1", protocol.TopicDPSRegister},
		{protocol.DPSPollTopic("2", "op"), "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=op", protocol.TopicDPSPoll},
		{protocol.DPSResponseTopic(202, "1", 3), "$dps/registrations/res/202/?$rid=1&retry-after=3", protocol.TopicDPSResponse},
		{protocol.DPSResponseTopic(200, "1", 0), "$dps/registrations/res/200/?$rid=1", protocol.TopicDPSResponse},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
		parsed, err := protocol.ParseTopic(tt.got)
		if err != nil || parsed.Kind != tt.kind {
			t.Errorf("ParseTopic(%q) = %v, %v; want kind %v", tt.got, parsed.Kind, err, tt.kind)
		}
	}
}

func TestTopicKindString(t *testing.T) {
	if s := protocol.TopicTelemetry.String(); s != "telemetry" {
		t.Errorf("TopicTelemetry.String() = %q", s)
	}
	if s := protocol.TopicKind(99).String(); s != "TopicKind(99)" {
		t.Errorf("TopicKind(99).String() = %q", s)
	}
	for k := protocol.TopicUnknown; k <= protocol.TopicDPSResponse; k++ {
		if strings.HasPrefix(k.String(), "TopicKind(") {
			t.Errorf("kind %d has no name", int(k))
		}
	}
}
