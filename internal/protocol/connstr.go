package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadConnectionString is wrapped by the errors of ParseConnectionString.
// Those errors name keys, never values, so they are safe to log.
var ErrBadConnectionString = errors.New("protocol: bad connection string")

// ConnectionString is a parsed IoT Hub connection string (PROTOCOL.md §2.1):
// a device's or module's ("HostName=..;DeviceId=..;SharedAccessKey=..") or
// a service's ("HostName=..;SharedAccessKeyName=..;SharedAccessKey=..").
type ConnectionString struct {
	HostName              string // hub host name, port allowed ("localhost:8884")
	DeviceID              string // DeviceId
	ModuleID              string // ModuleId
	SharedAccessKeyName   string // policy name, for service (or policy-signed device) strings
	SharedAccessKey       string // base64 key, as written
	SharedAccessSignature string // a ready-made SAS token instead of a key
	GatewayHostName       string // host to dial instead of HostName; HostName still goes in tokens
	X509                  bool   // x509=true: authenticate with a TLS client certificate
}

// connKeys are the keys in canonical order, as Azure spells them.
var connKeys = [...]string{"HostName", "DeviceId", "ModuleId", "SharedAccessKeyName",
	"SharedAccessKey", "SharedAccessSignature", "x509", "GatewayHostName"}

// ParseConnectionString parses a connection string: Key=Value items
// separated by ';', each split at its first '=' (base64 keys end in '=').
// Keys are case-sensitive, as Azure's SDKs read them; an empty item (a
// trailing ';') is skipped. The rules:
//
//   - HostName is required; an unknown or repeated key, or an empty value,
//     is an error;
//   - SharedAccessKey, SharedAccessSignature and x509=true are mutually
//     exclusive, and exactly one of them is required;
//   - x509 is "true" or "false" (any case);
//   - a device string has DeviceId (ModuleId needs it); a service string
//     has SharedAccessKeyName and SharedAccessKey and no DeviceId;
//   - SharedAccessKey must be base64.
//
// Errors wrap ErrBadConnectionString and name the key at fault, never a
// value, since values are secrets.
func ParseConnectionString(s string) (ConnectionString, error) {
	var c ConnectionString
	var seen [len(connKeys)]bool
	for rest := s; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, ";")
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		idx := connKeyIndex(k)
		if idx < 0 {
			return ConnectionString{}, connError(unknownKey(k, ok))
		}
		if !ok {
			return ConnectionString{}, connError(k + " has no '='")
		}
		if seen[idx] {
			return ConnectionString{}, connError(k + " appears twice")
		}
		seen[idx] = true
		if v == "" {
			return ConnectionString{}, connError(k + " is empty")
		}
		switch idx {
		case 0:
			c.HostName = v
		case 1:
			c.DeviceID = v
		case 2:
			c.ModuleID = v
		case 3:
			c.SharedAccessKeyName = v
		case 4:
			c.SharedAccessKey = v
		case 5:
			c.SharedAccessSignature = v
		case 6:
			switch {
			case strings.EqualFold(v, "true"):
				c.X509 = true
			case strings.EqualFold(v, "false"):
			default:
				return ConnectionString{}, connError("x509 must be true or false")
			}
		case 7:
			c.GatewayHostName = v
		}
	}
	if err := c.validate(); err != nil {
		return ConnectionString{}, err
	}
	return c, nil
}

func connKeyIndex(k string) int {
	for i, name := range connKeys {
		if k == name {
			return i
		}
	}
	return -1
}

// unknownKey describes an unknown key without risking a secret: a key is
// shown only when it looks like a key name (short, letters and digits).
// withValue says whether the item had '='; a bare item may be a pasted key.
func unknownKey(k string, withValue bool) string {
	for _, name := range connKeys {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf("unknown key %q (keys are case-sensitive: use %s)", k, name)
		}
	}
	if !withValue || len(k) > 24 || k == "" {
		return "an item is not Key=Value with a known key"
	}
	for i := 0; i < len(k); i++ {
		if c := k[i] | 0x20; (c < 'a' || c > 'z') && (k[i] < '0' || k[i] > '9') {
			return "an item is not Key=Value with a known key"
		}
	}
	return fmt.Sprintf("unknown key %q", k)
}

func connError(problem string) error {
	return fmt.Errorf("%w: %s", ErrBadConnectionString, problem)
}

// validate checks the combination rules of ParseConnectionString.
func (c ConnectionString) validate() error {
	if c.HostName == "" {
		return connError("HostName is required")
	}
	creds := 0
	for _, set := range []bool{c.SharedAccessKey != "", c.SharedAccessSignature != "", c.X509} {
		if set {
			creds++
		}
	}
	switch {
	case creds == 0:
		return connError("one of SharedAccessKey, SharedAccessSignature or x509=true is required")
	case creds > 1:
		return connError("SharedAccessKey, SharedAccessSignature and x509=true are mutually exclusive")
	case c.ModuleID != "" && c.DeviceID == "":
		return connError("ModuleId needs DeviceId")
	case c.DeviceID == "" && c.SharedAccessKeyName == "":
		return connError("DeviceId (device) or SharedAccessKeyName (service) is required")
	case c.DeviceID == "" && c.SharedAccessKey == "" && c.SharedAccessSignature == "":
		return connError("a service connection string needs SharedAccessKey or SharedAccessSignature")
	}
	if c.SharedAccessKey != "" {
		if _, err := DecodeKey(c.SharedAccessKey); err != nil {
			return connError("SharedAccessKey is not valid base64")
		}
	}
	return nil
}

// String returns the connection string in canonical key order: HostName,
// DeviceId, ModuleId, SharedAccessKeyName, SharedAccessKey,
// SharedAccessSignature, x509, GatewayHostName; empty fields are left out.
// It contains the secret; log Redacted instead.
func (c ConnectionString) String() string {
	return c.format(false)
}

// Redacted is String with SharedAccessKey and SharedAccessSignature
// replaced by "<redacted>", for logs and error messages.
func (c ConnectionString) Redacted() string {
	return c.format(true)
}

func (c ConnectionString) format(redact bool) string {
	key, sig := c.SharedAccessKey, c.SharedAccessSignature
	if redact {
		if key != "" {
			key = "<redacted>"
		}
		if sig != "" {
			sig = "<redacted>"
		}
	}
	x509 := ""
	if c.X509 {
		x509 = "true"
	}
	vals := [len(connKeys)]string{c.HostName, c.DeviceID, c.ModuleID, c.SharedAccessKeyName,
		key, sig, x509, c.GatewayHostName}
	var b strings.Builder
	for i, v := range vals {
		if v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(connKeys[i])
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// IsService reports whether c is a service connection string: it names a
// shared access policy and no device.
func (c ConnectionString) IsService() bool {
	return c.SharedAccessKeyName != "" && c.DeviceID == ""
}
