package protocol_test

// Fuzz targets for the CONNECT credentials: SAS tokens, connection strings
// and usernames. Seeds live in testdata/fuzz/<FuzzName>/.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

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
