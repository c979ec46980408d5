package protocol_test

// Fuzz targets. Seeds live in testdata/fuzz/<FuzzName>/, taken from the
// examples in PROTOCOL.md; run one with
//
//	go test -run='^$' -fuzz=FuzzParseTopic -fuzztime=20s ./internal/protocol/

import (
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

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

func FuzzParseSAS(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		s, err := protocol.ParseSAS(token)
		if err != nil {
			if s != (protocol.SAS{}) {
				t.Fatalf("error %v with a non-zero token %+v", err, s)
			}
			return
		}
		if _, err := s.ResourceURI(); err != nil {
			t.Fatalf("parsed %q but ResourceURI fails: %v", token, err)
		}
		if s.Resource == "" || s.Expiry < 0 {
			t.Fatalf("parsed %q into %+v", token, s)
		}
		// Verification must not panic; a fuzzed token that verified would
		// be an HMAC forgery, so the result is not checked.
		_ = s.VerifyLifetime(vectorKey, time.Unix(0, 0), time.Hour)
		// Writing the fields back gives the same token.
		re := "sr=" + s.Resource + "&sig=" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(s.Signature) +
			"&se=" + strconv.FormatInt(s.Expiry, 10)
		if s.KeyName != "" {
			re += "&skn=" + escapeAll(s.KeyName)
		}
		s2, err := protocol.ParseSAS(re)
		if err != nil || s2 != s {
			t.Fatalf("token %q rewritten as %q: %+v, %v; want %+v", token, re, s2, err, s)
		}
	})
}

// escapeAll percent-encodes every byte but ASCII letters and digits; unlike
// url.QueryEscape it never writes '+' for a space.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// FuzzSignSAS checks that every token SignSAS makes parses and verifies
// with its key, and only before its expiry.
func FuzzSignSAS(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"), "localhost:8884/devices/dev1", int64(1795404927), "")
	f.Add([]byte{1}, "0ne00000000/registrations/reg1", int64(1), "registration")
	f.Fuzz(func(t *testing.T, key []byte, resource string, se int64, keyName string) {
		if len(key) == 0 || resource == "" || se < 1 || se > 1e17 {
			return
		}
		tok := protocol.SignSAS(key, resource, time.Unix(se, 0), keyName)
		s, err := protocol.ParseSAS(tok)
		if err != nil {
			t.Fatalf("SignSAS made %q, which does not parse: %v", tok, err)
		}
		if r, err := s.ResourceURI(); err != nil || r != resource || s.KeyName != keyName || s.Expiry != se {
			t.Fatalf("SignSAS made %q, parsed as %+v (resource %q, %v)", tok, s, r, err)
		}
		if err := s.Verify(key, time.Unix(se-1, 0)); err != nil {
			t.Fatalf("SignSAS made %q, which does not verify: %v", tok, err)
		}
		if err := s.Verify(key, time.Unix(se, 0)); err == nil {
			t.Fatalf("SignSAS made %q, which verifies at its expiry", tok)
		}
	})
}

func FuzzParseConnectionString(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		c, err := protocol.ParseConnectionString(s)
		if err != nil {
			if c != (protocol.ConnectionString{}) {
				t.Fatalf("error %v with a non-zero result %+v", err, c)
			}
			return
		}
		c2, err := protocol.ParseConnectionString(c.String())
		if err != nil || c2 != c {
			t.Fatalf("%q: String() = %q parses as %+v, %v; want %+v", s, c.String(), c2, err, c)
		}
		if c.SharedAccessKey != "" && strings.Contains(c.Redacted(), "SharedAccessKey="+c.SharedAccessKey) {
			t.Fatalf("Redacted() = %q shows the key", c.Redacted())
		}
	})
}

func FuzzParseUsername(f *testing.F) {
	f.Fuzz(func(t *testing.T, u string) {
		n, err := protocol.ParseUsername(u)
		if err != nil {
			return
		}
		if n.DPS {
			if n.IDScope == "" || n.RegistrationID == "" || n.Host != "" || n.DeviceID != "" {
				t.Fatalf("%q: DPS username %+v", u, n)
			}
		} else if n.Host == "" || n.DeviceID == "" {
			t.Fatalf("%q: username %+v without host or device", u, n)
		}
		for _, id := range []string{n.Host, n.DeviceID, n.ModuleID, n.IDScope, n.RegistrationID} {
			if strings.Contains(id, "/") {
				t.Fatalf("%q: id %q contains '/'", u, id)
			}
		}
		if n.Params != nil && len(n.Params) == 0 {
			t.Fatalf("%q: empty non-nil Params", u)
		}
		if n.APIVersion != n.Params["api-version"] || n.ModelID != n.Params["model-id"] {
			t.Fatalf("%q: fields disagree with Params: %+v", u, n)
		}
		// The canonical form parses to the same identity.
		path := n.Host + "/" + n.DeviceID
		if n.DPS {
			path = n.IDScope + "/registrations/" + n.RegistrationID
		} else if n.ModuleID != "" {
			path += "/" + n.ModuleID
		}
		n2, err := protocol.ParseUsername(path + "/?api-version=" + escapeAll(n.APIVersion))
		if err != nil || n2.Host != n.Host || n2.DeviceID != n.DeviceID || n2.ModuleID != n.ModuleID ||
			n2.DPS != n.DPS || n2.IDScope != n.IDScope || n2.RegistrationID != n.RegistrationID {
			t.Fatalf("%q: canonical form parses as %+v, %v; want %+v", u, n2, err, n)
		}
	})
}
