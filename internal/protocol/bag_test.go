package protocol_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// nodeBag is the property bag of the Node publish observed in PROTOCOL.md §1.4.
const nodeBag = "%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.sub=thermostat1&a%20b%2Fc=x%26y%3Dz"

func TestParsePropertyBag(t *testing.T) {
	tests := []struct {
		name string
		bag  string
		want protocol.Properties
	}{
		{"empty", "", protocol.Properties{}},
		{"node observed", nodeBag, protocol.Properties{
			MessageID: "m1", ContentType: "application/json", ContentEncoding: "utf-8", Component: "thermostat1",
			App: []protocol.Property{{"a b/c", "x&y=z"}},
		}},
		{"raw system keys", "$.mid=m1&$.cid=c1&$.uid=u&$.to=%2Fdevices%2Ffoo&$.exp=2026-01-01T00%3A00%3A00Z", protocol.Properties{
			MessageID: "m1", CorrelationID: "c1", UserID: "u", To: "/devices/foo", Expiry: "2026-01-01T00:00:00Z",
		}},
		{"every known key", "$.on=out1&$.ifid=urn%3Ax&$.ctime=t&$.ct=c&$.ce=e&$.sub=s", protocol.Properties{
			OutputName: "out1", InterfaceID: "urn:x", CreationTime: "t", ContentType: "c", ContentEncoding: "e", Component: "s",
		}},
		{"c sdk system keys", "%24.cdid=dev1&%24.cmid=m&%24.diagid=abc&x=1", protocol.Properties{
			System: []protocol.Property{{"$.cdid", "dev1"}, {"$.cmid", "m"}, {"$.diagid", "abc"}},
			App:    []protocol.Property{{"x", "1"}},
		}},
		{"null, empty and plain", "a&b=&c=3", protocol.Properties{
			App: []protocol.Property{{"a", ""}, {"b", ""}, {"c", "3"}},
		}},
		{"plus stays plus", "a+b=c+d", protocol.Properties{App: []protocol.Property{{"a+b", "c+d"}}}},
		{"value split at first =", "k=a=b=c", protocol.Properties{App: []protocol.Property{{"k", "a=b=c"}}}},
		{"empty items skipped", "&a=1&&b=2&", protocol.Properties{App: []protocol.Property{{"a", "1"}, {"b", "2"}}}},
		{"lower-case hex and utf-8", "caf%c3%a9=%E2%82%AC", protocol.Properties{App: []protocol.Property{{"café", "€"}}}},
		{"raw utf-8", "ключ=значение", protocol.Properties{App: []protocol.Property{{"ключ", "значение"}}}},
		{"c2d node fixture", "%24.mid=0000&%24.to=%2Fdevices%2Ffoo%2Fmessages%2Fdevicebound&iothub-ack=full", protocol.Properties{
			MessageID: "0000", To: "/devices/foo/messages/devicebound", App: []protocol.Property{{"iothub-ack", "full"}},
		}},
		{"dollar without dot is app", "$x=1&%24=2", protocol.Properties{App: []protocol.Property{{"$x", "1"}, {"$", "2"}}}},
		{"case matters", "$.MID=1", protocol.Properties{System: []protocol.Property{{"$.MID", "1"}}}},
		{"arrival order kept", "z=1&a=2&m=3", protocol.Properties{App: []protocol.Property{{"z", "1"}, {"a", "2"}, {"m", "3"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParsePropertyBag(tt.bag)
			if err != nil {
				t.Fatalf("ParsePropertyBag(%q): %v", tt.bag, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePropertyBag(%q)\n got %+v\nwant %+v", tt.bag, got, tt.want)
			}
		})
	}
}

func TestParsePropertyBagErrors(t *testing.T) {
	tests := []struct {
		name, bag, wantText string
	}{
		{"bad escape in key", "a%2=1", "percent-encoding"},
		{"bad escape in value", "a=%zz", "percent-encoding"},
		{"truncated escape", "a=%", "percent-encoding"},
		{"truncated escape 2", "a=%4", "percent-encoding"},
		{"empty key", "=v", "empty key"},
		{"empty decoded key", "a=1&=2", "empty key"},
		{"duplicate app key", "a=1&b=2&a=3", `duplicate key "a"`},
		{"duplicate app key encoded", "a%20b=1&a b=2", `duplicate key "a b"`},
		{"duplicate system key", "%24.mid=1&$.mid=2", `duplicate key "$.mid"`},
		{"duplicate empty system key", "$.ct&$.ct=x", `duplicate key "$.ct"`},
		{"duplicate other system key", "$.cdid=1&$.cdid=1", `duplicate key "$.cdid"`},
		{"raw not utf-8", "a=\xff", "UTF-8"},
		{"decoded not utf-8", "a=%ff", "UTF-8"},
		{"decoded key not utf-8", "%C3=1", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := protocol.ParsePropertyBag(tt.bag)
			if !errors.Is(err, protocol.ErrBadPropertyBag) {
				t.Fatalf("ParsePropertyBag(%q) = %v, want an error wrapping ErrBadPropertyBag", tt.bag, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) || !strings.HasPrefix(err.Error(), "protocol: ") {
				t.Errorf("error %q does not start with \"protocol: \" or lacks %q", err, tt.wantText)
			}
			if errors.Is(err, protocol.ErrPropertyBagTooLarge) {
				t.Errorf("error %q wraps ErrPropertyBagTooLarge", err)
			}
		})
	}
}

func TestParsePropertyBagDuplicatesInLongBags(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString("k")
		b.WriteString(strings.Repeat("x", i))
		b.WriteString("=1")
	}
	p, err := protocol.ParsePropertyBag(b.String())
	if err != nil || len(p.App) != 40 {
		t.Fatalf("40 distinct keys: %d properties, %v", len(p.App), err)
	}
	for _, dup := range []string{"k", "kxxxxxxxxxxxxxxxxxxxxxx", "k" + strings.Repeat("x", 39)} {
		_, err := protocol.ParsePropertyBag(b.String() + "&" + dup + "=2")
		if !errors.Is(err, protocol.ErrBadPropertyBag) || !strings.Contains(err.Error(), "duplicate") {
			t.Errorf("duplicate %q after 40 keys: %v", dup, err)
		}
	}
}

func TestParsePropertyBagLimit(t *testing.T) {
	tests := []struct {
		name               string
		bag                string
		maxBytes, maxProps int
		wantErr            string // "" for success
	}{
		{"no limits", nodeBag, 0, 0, ""},
		{"negative means none", nodeBag, -1, -1, ""},
		{"exactly at limits", nodeBag, len(nodeBag), 5, ""},
		{"bytes over", nodeBag, len(nodeBag) - 1, 0, "89 bytes exceed the limit of 88 bytes"},
		{"props over", nodeBag, 0, 4, "more than the limit of 4 properties"},
		{"empty items not counted", "a=1&&&b=2&", 0, 2, ""},
		{"empty bag", "", 1, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := protocol.ParsePropertyBagLimit(tt.bag, tt.maxBytes, tt.maxProps)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, protocol.ErrPropertyBagTooLarge) || !errors.Is(err, protocol.ErrBadPropertyBag) {
				t.Fatalf("error %v does not wrap ErrPropertyBagTooLarge and ErrBadPropertyBag", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q lacks %q", err, tt.wantErr)
			}
		})
	}
}

func TestPropertiesGet(t *testing.T) {
	p, err := protocol.ParsePropertyBag(nodeBag + "&n&e=")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key, want string
		ok        bool
	}{
		{"a b/c", "x&y=z", true},
		{"n", "", true},
		{"e", "", true},
		{"missing", "", false},
		{"$.mid", "", false}, // system properties are fields, not app properties
	} {
		if v, ok := p.Get(tt.key); v != tt.want || ok != tt.ok {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.key, v, ok, tt.want, tt.ok)
		}
	}
}

func TestAppendBag(t *testing.T) {
	tests := []struct {
		name string
		p    protocol.Properties
		want string
	}{
		{"empty", protocol.Properties{}, ""},
		{"node observed", protocol.Properties{
			MessageID: "m1", ContentType: "application/json", ContentEncoding: "utf-8", Component: "thermostat1",
			App: []protocol.Property{{"a b/c", "x&y=z"}},
		}, nodeBag},
		{"system order", protocol.Properties{
			CreationTime: "t", Component: "s", InterfaceID: "i", OutputName: "o", Expiry: "e",
			ContentEncoding: "ce", ContentType: "ct", To: "/devices/d", UserID: "u", CorrelationID: "c", MessageID: "m",
			System: []protocol.Property{{"$.cdid", "d"}},
		}, "%24.mid=m&%24.cid=c&%24.uid=u&%24.to=%2Fdevices%2Fd&%24.ct=ct&%24.ce=ce&%24.exp=e&%24.on=o&%24.ifid=i&%24.sub=s&%24.ctime=t&%24.cdid=d"},
		{"null written as empty", protocol.Properties{App: []protocol.Property{{"k", ""}}}, "k="},
		{"node querystring escaping", protocol.Properties{App: []protocol.Property{{"k", "a+b !~*'()é"}}}, "k=a%2Bb%20!~*'()%C3%A9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.p.AppendBag([]byte("prefix/")))
			if got != "prefix/"+tt.want {
				t.Errorf("AppendBag = %q, want %q", got, "prefix/"+tt.want)
			}
			back, err := protocol.ParsePropertyBag(strings.TrimPrefix(got, "prefix/"))
			if err != nil {
				t.Fatalf("parse back: %v", err)
			}
			if !reflect.DeepEqual(back, tt.p) {
				t.Errorf("round trip\n got %+v\nwant %+v", back, tt.p)
			}
		})
	}
}
