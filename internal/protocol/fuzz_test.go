package protocol_test

// Fuzz targets. Seeds live in testdata/fuzz/<FuzzName>/, taken from the
// examples in PROTOCOL.md; run one with
//
//	go test -run='^$' -fuzz=FuzzParseTopic -fuzztime=20s ./internal/protocol/

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

func FuzzParsePropertyBag(f *testing.F) {
	f.Fuzz(func(t *testing.T, bag string) {
		p, err := protocol.ParsePropertyBag(bag)
		if err != nil {
			return
		}
		checkBagAgainstReference(t, bag, p)
		formatted := p.AppendBag(nil)
		back, err := protocol.ParsePropertyBag(string(formatted))
		if err != nil {
			t.Fatalf("parse(format(parse(%q))) = %v; formatted %q", bag, err, formatted)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip of %q via %q:\n got %+v\nwant %+v", bag, formatted, back, p)
		}
		if again := back.AppendBag(nil); string(again) != string(formatted) {
			t.Fatalf("AppendBag is not stable: %q then %q", formatted, again)
		}
		if _, err := protocol.ParsePropertyBagLimit(bag, len(bag), len(p.App)+len(p.System)+11); err != nil {
			t.Fatalf("limits at the bag's own size refuse it: %v", err)
		}
	})
}

// checkBagAgainstReference decodes bag with net/url, whose PathUnescape
// also keeps '+', and compares every item with what the parser kept.
func checkBagAgainstReference(t *testing.T, bag string, p protocol.Properties) {
	t.Helper()
	var app, system []protocol.Property
	for _, item := range strings.Split(bag, "&") {
		if item == "" {
			continue
		}
		k, v, _ := strings.Cut(item, "=")
		dk, err1 := url.PathUnescape(k)
		dv, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			t.Fatalf("parser accepted %q, net/url refuses item %q", bag, item)
		}
		switch {
		case strings.HasPrefix(dk, "$."):
			system = append(system, protocol.Property{Key: dk, Value: dv})
		default:
			app = append(app, protocol.Property{Key: dk, Value: dv})
		}
	}
	if len(app) != len(p.App) {
		t.Fatalf("%q: %d app properties, reference %d", bag, len(p.App), len(app))
	}
	for i := range app {
		if app[i] != p.App[i] {
			t.Fatalf("%q: app property %d is %+v, reference %+v", bag, i, p.App[i], app[i])
		}
	}
	have := map[protocol.Property]bool{
		{Key: "$.mid", Value: p.MessageID}: true, {Key: "$.cid", Value: p.CorrelationID}: true,
		{Key: "$.uid", Value: p.UserID}: true, {Key: "$.to", Value: p.To}: true,
		{Key: "$.ct", Value: p.ContentType}: true, {Key: "$.ce", Value: p.ContentEncoding}: true,
		{Key: "$.exp", Value: p.Expiry}: true, {Key: "$.on", Value: p.OutputName}: true,
		{Key: "$.ifid", Value: p.InterfaceID}: true, {Key: "$.sub", Value: p.Component}: true,
		{Key: "$.ctime", Value: p.CreationTime}: true,
	}
	for _, s := range p.System {
		have[s] = true
	}
	for _, s := range system {
		if !have[s] {
			t.Fatalf("%q: system property %+v lost", bag, s)
		}
	}
}

func FuzzParseTopic(f *testing.F) {
	f.Fuzz(func(t *testing.T, topic string) {
		tp, err := protocol.ParseTopic(topic)
		if err != nil {
			if tp != (protocol.Topic{}) {
				t.Fatalf("error %v with a non-zero topic %+v", err, tp)
			}
			return
		}
		if tp.Kind == protocol.TopicUnknown {
			if tp != (protocol.Topic{}) {
				t.Fatalf("unknown topic %q with fields %+v", topic, tp)
			}
			return
		}
		if !strings.HasSuffix(topic, tp.Bag) {
			t.Fatalf("%q: bag %q is not its tail", topic, tp.Bag)
		}
		for _, id := range []string{tp.DeviceID, tp.ModuleID, tp.Input, tp.Method} {
			if strings.Contains(id, "/") {
				t.Fatalf("%q: id %q contains '/'", topic, id)
			}
		}
		if strings.ContainsAny(tp.RID, "&") || strings.ContainsAny(tp.OperationID, "&") {
			t.Fatalf("%q: $rid %q or operationId %q contains '&'", topic, tp.RID, tp.OperationID)
		}
		// Formatting the parsed fields again gives a topic of the same meaning.
		var again string
		switch tp.Kind {
		case protocol.TopicTelemetry:
			again = protocol.TelemetryTopic(tp.DeviceID, tp.ModuleID, protocol.Properties{}) + tp.Bag
		case protocol.TopicC2D:
			again = protocol.C2DTopic(tp.DeviceID, protocol.Properties{}) + tp.Bag
		case protocol.TopicModuleInput:
			again = protocol.ModuleInputTopic(tp.DeviceID, tp.ModuleID, tp.Input, protocol.Properties{}) + tp.Bag
		case protocol.TopicMethodRequest:
			again = protocol.MethodRequestTopic(tp.Method, tp.RID)
		case protocol.TopicMethodResponse:
			again = protocol.MethodResponseTopic(tp.Status, tp.RID)
		case protocol.TopicTwinGet:
			again = protocol.TwinGetTopic(tp.RID)
		case protocol.TopicTwinPatchReported:
			again = protocol.TwinPatchReportedTopic(tp.RID)
		case protocol.TopicTwinResponse:
			again = protocol.TwinResponseTopic(tp.Status, tp.RID, tp.Version)
		case protocol.TopicTwinDesiredPatch:
			again = protocol.DesiredPatchTopic(tp.Version)
		case protocol.TopicDPSRegister:
			again = protocol.DPSRegisterTopic(tp.RID)
		case protocol.TopicDPSPoll:
			again = protocol.DPSPollTopic(tp.RID, tp.OperationID)
		case protocol.TopicDPSResponse:
			again = protocol.DPSResponseTopic(tp.Status, tp.RID, tp.RetryAfter)
		default:
			t.Fatalf("%q: kind %v has no formatter", topic, tp.Kind)
		}
		tp2, err := protocol.ParseTopic(again)
		if err != nil {
			t.Fatalf("%q formatted again as %q: %v", topic, again, err)
		}
		tp.Bag, tp2.Bag = "", ""
		if tp != tp2 {
			t.Fatalf("%q formatted again as %q:\n got %+v\nwant %+v", topic, again, tp2, tp)
		}
	})
}

// FuzzDeviceOwnsFilter checks the ACL's promise: a filter a device owns
// never matches a devices/... topic of another device or module.
func FuzzDeviceOwnsFilter(f *testing.F) {
	f.Add("dev1", "", "devices/dev1/#", "devices/dev1/messages/devicebound/x")
	f.Add("dev1", "m1", "devices/dev1/modules/m1/#", "devices/dev1/modules/m1/inputs/in/")
	f.Add("dev1", "", "devices/+/messages/devicebound/#", "devices/dev2/messages/devicebound/")
	f.Add("a+b", "", "devices/a+b/#", "devices/a+b/messages/devicebound/")
	f.Add("dev1", "", "$iothub/methods/POST/#", "$iothub/methods/POST/reboot/?$rid=1")
	f.Fuzz(func(t *testing.T, device, module, filter, topic string) {
		if !protocol.DeviceOwnsFilter(device, module, filter) || !mqttMatch(filter, topic) {
			return
		}
		if strings.HasPrefix(topic, "$") && !strings.HasPrefix(topic, "$iothub/twin/") &&
			!strings.HasPrefix(topic, "$iothub/methods/") && topic != "$iothub/twin" && topic != "$iothub/methods" {
			t.Fatalf("(%q, %q) owns %q, which matches %q", device, module, filter, topic)
		}
		if strings.HasPrefix(topic, "$") {
			return
		}
		levels := strings.Split(topic, "/")
		if len(levels) < 2 || levels[0] != "devices" || levels[1] != device {
			t.Fatalf("(%q, %q) owns %q, which matches %q", device, module, filter, topic)
		}
		if module != "" && (len(levels) < 4 || levels[2] != "modules" || levels[3] != module) {
			t.Fatalf("module (%q, %q) owns %q, which matches %q", device, module, filter, topic)
		}
	})
}

// mqttMatch reports whether an MQTT 3.1.1 filter matches a topic name.
func mqttMatch(filter, topic string) bool {
	if strings.ContainsAny(topic, "+#") {
		return false
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}
