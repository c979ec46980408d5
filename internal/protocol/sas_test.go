package protocol_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// The byte-for-byte vector of PROTOCOL.md §1.3.
var (
	vectorKey = []byte("0123456789abcdef0123456789abcdef")

	vectorKeyB64 = base64.StdEncoding.EncodeToString(vectorKey)
	vectorExpiry = time.Unix(1795404927, 0)
)

const (
	vectorSR    = "localhost%3A8884%2Fdevices%2Fdev1"
	vectorSig   = "JpaAVam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ%3D"
	vectorToken = "SharedAccessSignature sr=" + vectorSR + "&sig=" + vectorSig + "&se=1795404927"
)

// rawSign signs exactly sr (as it will be transmitted) and se, as the SDKs do.
func rawSign(key []byte, sr, se string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sr + "\n" + se))
	return url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

func TestSASVector(t *testing.T) {
	key, err := protocol.DecodeKey(vectorKeyB64)
	if err != nil {
		t.Fatal(err)
	}
	got := protocol.SignSAS(key, "localhost:8884/devices/dev1", vectorExpiry, "")
	if got != vectorToken {
		t.Errorf("SignSAS\n got %s\nwant %s", got, vectorToken)
	}
	s, err := protocol.ParseSAS(vectorToken)
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.SAS{Resource: vectorSR, Signature: "JpaAVam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ=", Expiry: 1795404927}
	if s != want {
		t.Errorf("ParseSAS = %+v, want %+v", s, want)
	}
	if err := s.Verify(key, vectorExpiry.Add(-time.Hour)); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if r, err := s.ResourceURI(); err != nil || r != "localhost:8884/devices/dev1" {
		t.Errorf("ResourceURI = %q, %v", r, err)
	}
}

func TestParseSASFieldOrders(t *testing.T) {
	key := vectorKey
	now := time.Unix(1795400000, 0)
	nodeDPSSig := rawSign(key, "0ne00000000/registrations/reg1", "1795404943")
	pyDPSSig := rawSign(key, "0ne00000000%2Fregistrations%2Freg1", "1795404943")
	svcSig := rawSign(key, "localhost", "1795404956")
	tests := []struct {
		name, token string
		want        protocol.SAS
		resource    string
	}{
		{"node device: sr sig se", vectorToken,
			protocol.SAS{Resource: vectorSR, Expiry: 1795404927}, "localhost:8884/devices/dev1"},
		{"no prefix", strings.TrimPrefix(vectorToken, "SharedAccessSignature "),
			protocol.SAS{Resource: vectorSR, Expiry: 1795404927}, "localhost:8884/devices/dev1"},
		{"docs: sig se skn sr", "SharedAccessSignature sig=" + rawSign(key, vectorSR, "1795404927") + "&se=1795404927&skn=device&sr=" + vectorSR,
			protocol.SAS{Resource: vectorSR, Expiry: 1795404927, KeyName: "device"}, "localhost:8884/devices/dev1"},
		{"node dps: raw sr, skn before se", "SharedAccessSignature sr=0ne00000000/registrations/reg1&sig=" + nodeDPSSig + "&skn=registration&se=1795404943",
			protocol.SAS{Resource: "0ne00000000/registrations/reg1", Expiry: 1795404943, KeyName: "registration"}, "0ne00000000/registrations/reg1"},
		{"python dps: encoded sr, no skn", "SharedAccessSignature sr=0ne00000000%2Fregistrations%2Freg1&sig=" + pyDPSSig + "&se=1795404943",
			protocol.SAS{Resource: "0ne00000000%2Fregistrations%2Freg1", Expiry: 1795404943}, "0ne00000000/registrations/reg1"},
		{"node service: raw host, skn", "SharedAccessSignature sr=localhost&sig=" + svcSig + "&skn=iothubowner&se=1795404956",
			protocol.SAS{Resource: "localhost", Expiry: 1795404956, KeyName: "iothubowner"}, "localhost"},
		{"unknown fields ignored", vectorToken + "&x=1&y=",
			protocol.SAS{Resource: vectorSR, Expiry: 1795404927}, "localhost:8884/devices/dev1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := protocol.ParseSAS(tt.token)
			if err != nil {
				t.Fatalf("ParseSAS: %v", err)
			}
			s2 := s
			s2.Signature = ""
			if s2 != tt.want {
				t.Errorf("ParseSAS = %+v, want %+v", s2, tt.want)
			}
			if r, err := s.ResourceURI(); err != nil || r != tt.resource {
				t.Errorf("ResourceURI = %q, %v; want %q", r, err, tt.resource)
			}
			if err := s.Verify(key, now); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if err := s.Verify([]byte("another key"), now); !errors.Is(err, protocol.ErrSASSignature) {
				t.Errorf("Verify with the wrong key = %v, want ErrSASSignature", err)
			}
		})
	}
}

func TestSASVerifyCanonicalForm(t *testing.T) {
	key := vectorKey
	// Signed over the encoded form but transmitted raw, and the reverse.
	encodedSig := rawSign(key, vectorSR, "1795404927")
	rawSig := rawSign(key, "localhost:8884/devices/dev1", "1795404927")
	lowerSig := rawSign(key, "localhost%3a8884%2fdevices%2fdev1", "1795404927")
	now := time.Unix(1795400000, 0)
	for _, tt := range []struct {
		name, token string
		ok          bool
	}{
		{"raw sr, encoded signature", "sr=localhost:8884/devices/dev1&sig=" + encodedSig + "&se=1795404927", true},
		{"lower-case hex sr, canonical signature", "sr=localhost%3a8884%2fdevices%2fdev1&sig=" + encodedSig + "&se=1795404927", true},
		{"lower-case hex sr signed as sent", "sr=localhost%3a8884%2fdevices%2fdev1&sig=" + lowerSig + "&se=1795404927", true},
		{"encoded sr, raw signature", "sr=" + vectorSR + "&sig=" + rawSig + "&se=1795404927", false},
		{"other expiry", "sr=" + vectorSR + "&sig=" + encodedSig + "&se=1795404928", false},
		{"other resource", "sr=localhost%3A8884%2Fdevices%2Fdev2&sig=" + encodedSig + "&se=1795404927", false},
	} {
		s, err := protocol.ParseSAS(tt.token)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		err = s.Verify(key, now)
		if tt.ok && err != nil {
			t.Errorf("%s: Verify: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, protocol.ErrSASSignature) {
			t.Errorf("%s: Verify = %v, want ErrSASSignature", tt.name, err)
		}
	}
}

func TestSASVerifyTime(t *testing.T) {
	s, err := protocol.ParseSAS(vectorToken)
	if err != nil {
		t.Fatal(err)
	}
	exp := vectorExpiry
	tests := []struct {
		name    string
		key     []byte
		now     time.Time
		maxTTL  time.Duration
		wantErr error
	}{
		{"valid", vectorKey, exp.Add(-time.Second), 0, nil},
		{"valid half a second before", vectorKey, exp.Add(-500 * time.Millisecond), 0, nil},
		{"expired at se", vectorKey, exp, 0, protocol.ErrSASExpired},
		{"expired after", vectorKey, exp.Add(time.Hour), 0, protocol.ErrSASExpired},
		{"bad signature wins over expiry", []byte("wrong"), exp.Add(time.Hour), 0, protocol.ErrSASSignature},
		{"empty key", nil, exp.Add(-time.Hour), 0, protocol.ErrSASSignature},
		{"lifetime within cap", vectorKey, exp.Add(-time.Hour), time.Hour, nil},
		{"lifetime over cap", vectorKey, exp.Add(-time.Hour - time.Second), time.Hour, protocol.ErrSASNotYetValid},
		{"years ahead", vectorKey, exp.AddDate(-5, 0, 0), 24 * time.Hour, protocol.ErrSASNotYetValid},
		{"expired with cap", vectorKey, exp.Add(time.Second), time.Hour, protocol.ErrSASExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.maxTTL == 0 {
				err = s.Verify(tt.key, tt.now)
				if err2 := s.VerifyLifetime(tt.key, tt.now, 0); !errors.Is(err2, tt.wantErr) && err2 != err {
					t.Errorf("VerifyLifetime(0) = %v, want %v", err2, err)
				}
			} else {
				err = s.VerifyLifetime(tt.key, tt.now, tt.maxTTL)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, protocol.ErrBadSAS) {
				t.Errorf("verification error %v wraps ErrBadSAS", err)
			}
		})
	}
}

func TestParseSASErrors(t *testing.T) {
	sig := "&sig=" + vectorSig
	tests := []struct{ token, wantText string }{
		{"", "empty token"},
		{"SharedAccessSignature ", "empty token"},
		{"SharedAccessSignature", "has no '='"},
		{"sr=" + vectorSR + sig, "missing field se"},
		{"sr=" + vectorSR + "&se=1", "missing field sig"},
		{"sig=" + vectorSig + "&se=1", "missing field sr"},
		{"sr=&se=1" + sig, "field sr is empty"},
		{"sr=a%zz&se=1" + sig, "field sr is empty or badly percent-encoded"},
		{"sr=a&se=1&sig=", "field sig"},
		{"sr=a&se=1&sig=%zz", "field sig"},
		{"sr=a&se=1&sig=aGVsbG8%3D", "field sig"}, // base64 of 5 bytes
		{"sr=a&se=1&sig=JpaAVam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ", "field sig"},
		{"sr=a&se=1&sig=JpaAVam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ%3D%3D", "field sig"},
		{"sr=a&se=1&sig=Jpa-Vam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ%3D", "field sig"},
		{"sr=a&se=&sig=" + vectorSig, "field se"},
		{"sr=a&se=-1" + sig, "field se"},
		{"sr=a&se=+1" + sig, "field se"},
		{"sr=a&se=01" + sig, "field se"},
		{"sr=a&se=1.5" + sig, "field se"},
		{"sr=a&se=99999999999999999999" + sig, "field se"},
		{"sr=a&se=1&skn=%g" + sig, "field skn"},
		{"sr=a&sr=b&se=1" + sig, "field sr appears twice"},
		{"sr=a&se=1&se=1" + sig, "field se appears twice"},
		{"sr=a&se=1&skn=x&skn=y" + sig, "field skn appears twice"},
		{"sr=a&se=1" + sig + sig, "field sig appears twice"},
		{"sr=a&&se=1" + sig, "a field has no '='"},
		{"sr=a&se=1&sigJpaAVam6h4CkYSn92xEWvG818ixAcQdxJI83qzWONJQ%3D", "a field has no '='"},
		{"sr=a&se=1&skn" + sig, "field skn has no '='"},
		{"sr=a&se=1" + sig + "&", "missing field"}, // the trailing '&' is not an item; see below
	}
	for _, tt := range tests[:len(tests)-1] {
		s, err := protocol.ParseSAS(tt.token)
		if !errors.Is(err, protocol.ErrBadSAS) {
			t.Errorf("ParseSAS(%q) = %+v, %v; want an error wrapping ErrBadSAS", tt.token, s, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantText) || !strings.HasPrefix(err.Error(), "protocol: bad SAS token: ") {
			t.Errorf("ParseSAS(%q) error %q lacks %q", tt.token, err, tt.wantText)
		}
		if strings.Contains(err.Error(), "JpaAVam6") {
			t.Errorf("ParseSAS(%q) error %q shows the signature", tt.token, err)
		}
	}
	// A trailing '&' ends the last field; the token is otherwise complete.
	if _, err := protocol.ParseSAS("sr=a&se=1" + sig + "&"); err != nil {
		t.Errorf("trailing '&': %v", err)
	}
}

func TestSASResourceURIError(t *testing.T) {
	if _, err := (protocol.SAS{Resource: "a%"}).ResourceURI(); !errors.Is(err, protocol.ErrBadSAS) {
		t.Errorf("ResourceURI of a bad sr = %v, want ErrBadSAS", err)
	}
	if err := (protocol.SAS{Resource: "a", Signature: "!", Expiry: 1}).Verify(vectorKey, time.Unix(0, 0)); !errors.Is(err, protocol.ErrSASSignature) {
		t.Errorf("Verify of a bad signature = %v, want ErrSASSignature", err)
	}
}

func TestSignSAS(t *testing.T) {
	key := vectorKey
	exp := time.Unix(1795404943, 0)
	tok := protocol.SignSAS(key, protocol.DeviceResource("myhub.azure-devices.net", "dev1", "m1"), exp, "device")
	const wantPrefix = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fm1&sig="
	if !strings.HasPrefix(tok, wantPrefix) || !strings.HasSuffix(tok, "&se=1795404943&skn=device") {
		t.Errorf("SignSAS = %q", tok)
	}
	s, err := protocol.ParseSAS(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(key, exp.Add(-time.Minute)); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if s.KeyName != "device" {
		t.Errorf("KeyName = %q", s.KeyName)
	}
	dps := protocol.SignSAS(key, protocol.RegistrationResource("0ne00000000", "reg1"), exp, "registration")
	if !strings.HasPrefix(dps, "SharedAccessSignature sr=0ne00000000%2Fregistrations%2Freg1&sig=") {
		t.Errorf("SignSAS for DPS = %q", dps)
	}
}

func TestDeviceResource(t *testing.T) {
	if got := protocol.DeviceResource("h:1", "d", ""); got != "h:1/devices/d" {
		t.Errorf("device: %q", got)
	}
	if got := protocol.DeviceResource("h", "d", "m"); got != "h/devices/d/modules/m" {
		t.Errorf("module: %q", got)
	}
}

func TestDecodeKey(t *testing.T) {
	if k, err := protocol.DecodeKey(vectorKeyB64); err != nil || string(k) != string(vectorKey) {
		t.Errorf("DecodeKey = %q, %v", k, err)
	}
	for _, bad := range []string{"", "not base64!", "MDEy", "MDEyMw"} {
		_, err := protocol.DecodeKey(bad)
		if bad == "MDEy" {
			if err != nil {
				t.Errorf("DecodeKey(%q): %v", bad, err)
			}
			continue
		}
		if !errors.Is(err, protocol.ErrBadKey) {
			t.Errorf("DecodeKey(%q) = %v, want ErrBadKey", bad, err)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("DecodeKey error %q shows the key", err)
		}
	}
}

func TestDeriveDeviceKey(t *testing.T) {
	// Computed independently: base64(HMAC-SHA256(groupKey, registrationId)).
	mac := hmac.New(sha256.New, vectorKey)
	mac.Write([]byte("reg1"))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := protocol.DeriveDeviceKey(vectorKey, "reg1"); got != want {
		t.Errorf("DeriveDeviceKey = %q, want %q", got, want)
	}
}
