package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

const testKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 0123456789abcdef0123456789abcdef

func TestParseConnectionString(t *testing.T) {
	type C = protocol.ConnectionString
	tests := []struct {
		name, in  string
		want      C
		canonical string // "" when in is canonical already
		service   bool
	}{
		{"device", "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + testKey,
			C{HostName: "myhub.azure-devices.net", DeviceID: "dev1", SharedAccessKey: testKey}, "", false},
		{"device with port and gateway", "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + testKey + ";GatewayHostName=localhost:8884",
			C{HostName: "myhub.azure-devices.net", DeviceID: "dev1", SharedAccessKey: testKey, GatewayHostName: "localhost:8884"}, "", false},
		{"module, other order, trailing ;", "DeviceId=dev1;ModuleId=m1;SharedAccessKey=" + testKey + ";HostName=localhost:8884;",
			C{HostName: "localhost:8884", DeviceID: "dev1", ModuleID: "m1", SharedAccessKey: testKey},
			"HostName=localhost:8884;DeviceId=dev1;ModuleId=m1;SharedAccessKey=" + testKey, false},
		{"x509", "HostName=h;DeviceId=dev1;x509=true", C{HostName: "h", DeviceID: "dev1", X509: true}, "", false},
		{"x509 upper case", "HostName=h;DeviceId=dev1;x509=TRUE", C{HostName: "h", DeviceID: "dev1", X509: true}, "HostName=h;DeviceId=dev1;x509=true", false},
		{"sas token", "HostName=h;DeviceId=dev1;SharedAccessSignature=" + vectorToken,
			C{HostName: "h", DeviceID: "dev1", SharedAccessSignature: vectorToken}, "", false},
		{"x509 false with key", "HostName=h;DeviceId=d;x509=false;SharedAccessKey=" + testKey,
			C{HostName: "h", DeviceID: "d", SharedAccessKey: testKey}, "HostName=h;DeviceId=d;SharedAccessKey=" + testKey, false},
		{"device signed by a policy", "HostName=h;DeviceId=d;SharedAccessKeyName=device;SharedAccessKey=" + testKey,
			C{HostName: "h", DeviceID: "d", SharedAccessKeyName: "device", SharedAccessKey: testKey}, "", false},
		{"service", "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey,
			C{HostName: "localhost", SharedAccessKeyName: "iothubowner", SharedAccessKey: testKey}, "", true},
		{"service with token", "HostName=h;SharedAccessKeyName=service;SharedAccessSignature=" + vectorToken,
			C{HostName: "h", SharedAccessKeyName: "service", SharedAccessSignature: vectorToken}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseConnectionString(tt.in)
			if err != nil {
				t.Fatalf("ParseConnectionString: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			canonical := tt.canonical
			if canonical == "" {
				canonical = tt.in
			}
			if s := got.String(); s != canonical {
				t.Errorf("String() = %q, want %q", s, canonical)
			}
			if got.IsService() != tt.service {
				t.Errorf("IsService() = %v", got.IsService())
			}
			if r := got.Redacted(); strings.Contains(r, testKey) || strings.Contains(r, vectorSig) {
				t.Errorf("Redacted() = %q shows a secret", r)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	key := ";SharedAccessKey=" + testKey
	tests := []struct{ in, wantText string }{
		{"", "HostName is required"},
		{";;", "HostName is required"},
		{"DeviceId=d" + key, "HostName is required"},
		{"HostName=;DeviceId=d" + key, "HostName is empty"},
		{"HostName=h;DeviceId=" + key, "DeviceId is empty"},
		{"HostName=h;DeviceId=d", "one of SharedAccessKey, SharedAccessSignature or x509=true is required"},
		{"HostName=h;DeviceId=d;x509=true" + key, "mutually exclusive"},
		{"HostName=h;DeviceId=d;SharedAccessSignature=x" + key, "mutually exclusive"},
		{"HostName=h;DeviceId=d;x509=yes", "x509 must be true or false"},
		{"HostName=h;DeviceId=d;x509=false", "one of SharedAccessKey"},
		{"HostName=h;ModuleId=m" + key, "ModuleId needs DeviceId"},
		{"HostName=h" + key, "DeviceId (device) or SharedAccessKeyName (service) is required"},
		{"HostName=h;SharedAccessKeyName=p;x509=true", "a service connection string needs"},
		{"HostName=h;DeviceId=d;SharedAccessKey=not*base64", "SharedAccessKey is not valid base64"},
		{"HostName=h;HostName=g;DeviceId=d" + key, "HostName appears twice"},
		{"HostName=h;DeviceId=d;DeviceID=e" + key, `unknown key "DeviceID" (keys are case-sensitive: use DeviceId)`},
		{"hostname=h;DeviceId=d" + key, `unknown key "hostname" (keys are case-sensitive: use HostName)`},
		{"HostName=h;DeviceId=d;Foo=bar" + key, `unknown key "Foo"`},
		{"HostName=h;DeviceId=d;HostName" + key, "HostName has no '='"},
	}
	for _, tt := range tests {
		_, err := protocol.ParseConnectionString(tt.in)
		if !errors.Is(err, protocol.ErrBadConnectionString) {
			t.Errorf("ParseConnectionString(%q) = %v, want an error wrapping ErrBadConnectionString", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantText) || !strings.HasPrefix(err.Error(), "protocol: bad connection string: ") {
			t.Errorf("ParseConnectionString(%q) error %q lacks %q", tt.in, err, tt.wantText)
		}
	}
}

// TestParseConnectionStringHidesSecrets feeds strings whose secrets end up
// where a key is expected; no error may show them.
func TestParseConnectionStringHidesSecrets(t *testing.T) {
	const secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"
	for _, in := range []string{
		"HostName=h;DeviceId=d;" + secret + "=",
		"HostName=h;DeviceId=d;" + secret,
		"HostName=h;DeviceId=d;SharedAccessKey=" + secret + "*",
		"HostName=h;DeviceId=d;SharedAccessKey=" + secret + ";SharedAccessKey=" + secret,
		"HostName=h;DeviceId=d;x509=" + secret,
		"HostName=h;DeviceId=d;SharedAccessKey " + secret,
		"HostName=h;DeviceId=d;abc/def=" + secret,
	} {
		_, err := protocol.ParseConnectionString(in)
		if err == nil {
			t.Errorf("ParseConnectionString(%q) succeeded", in)
			continue
		}
		if strings.Contains(err.Error(), secret[:8]) {
			t.Errorf("ParseConnectionString(%q) error %q shows the secret", in, err)
		}
	}
}
