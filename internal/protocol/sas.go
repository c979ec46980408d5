package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// SAS token errors. ErrSASExpired, ErrSASNotYetValid and ErrSASSignature
// come from verification and are distinct from ErrBadSAS, so the hub can
// tell a stale token from a forged or malformed one.
var (
	ErrBadSAS         = errors.New("protocol: bad SAS token")
	ErrSASExpired     = errors.New("protocol: SAS token expired")
	ErrSASNotYetValid = errors.New("protocol: SAS token not yet valid")
	ErrSASSignature   = errors.New("protocol: SAS token signature does not match")
	ErrBadKey         = errors.New("protocol: bad shared access key")
)

// sasPrefix starts a SAS token in an MQTT password or Authorization header.
const sasPrefix = "SharedAccessSignature "

// SAS is a parsed shared access signature token (PROTOCOL.md §1.3, §2.2).
type SAS struct {
	// Resource is the sr field exactly as transmitted, still encoded: the
	// SDKs sign this text, and they encode it differently.
	Resource string
	// Signature is the sig field percent-decoded: base64 text of an
	// HMAC-SHA256.
	Signature string
	// Expiry is the se field: the expiry time in Unix seconds.
	Expiry int64
	// KeyName is the skn field, percent-decoded: the shared access policy
	// that signed the token, or "" for a device key.
	KeyName string
}

// ParseSAS parses a SAS token, with or without the "SharedAccessSignature "
// prefix. Fields are split on '&' and at their first '='; their order does
// not matter (Node writes sr, sig, skn, se; Python sr, sig, se, skn; the
// docs sig, se, skn, sr). sr, sig and se are required; skn is optional;
// unknown fields are ignored since no signature covers them. sig must be
// the base64 of a 32-byte HMAC-SHA256, se a canonical decimal number (no
// sign, no leading zero: verification signs its text), and sr must be
// valid percent-encoding. Errors wrap ErrBadSAS and name the field; they
// never contain the signature.
func ParseSAS(token string) (SAS, error) {
	var s SAS
	var have [4]bool // sr, sig, se, skn
	rest := strings.TrimPrefix(token, sasPrefix)
	if rest == "" {
		return SAS{}, fmt.Errorf("%w: empty token", ErrBadSAS)
	}
	for rest != "" {
		var item string
		item, rest, _ = strings.Cut(rest, "&")
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return SAS{}, fmt.Errorf("%w: %s has no '='", ErrBadSAS, fieldName(k))
		}
		field := -1
		switch k {
		case "sr":
			field = 0
			if _, ok := unescape(v); !ok || v == "" {
				return SAS{}, sasError(k, "is empty or badly percent-encoded")
			}
			s.Resource = v
		case "sig":
			field = 1
			sig, ok := unescape(v)
			if !ok || !isHMACBase64(sig) {
				return SAS{}, sasError(k, "is not the base64 of an HMAC-SHA256")
			}
			s.Signature = sig
		case "se":
			field = 2
			if !parseInt64(v, &s.Expiry) {
				return SAS{}, sasError(k, "is not a canonical decimal number")
			}
		case "skn":
			field = 3
			name, ok := unescape(v)
			if !ok {
				return SAS{}, sasError(k, "is badly percent-encoded")
			}
			s.KeyName = name
		}
		if field < 0 {
			continue
		}
		if have[field] {
			return SAS{}, sasError(k, "appears twice")
		}
		have[field] = true
	}
	for i, name := range [...]string{"sr", "sig", "se"} {
		if !have[i] {
			return SAS{}, fmt.Errorf("%w: missing field %s", ErrBadSAS, name)
		}
	}
	return s, nil
}

// fieldName names a field without '=' for an error: by its text when that
// is a short word, since anything else may be a piece of the signature.
func fieldName(k string) string {
	if k == "" || len(k) > 8 {
		return "a field"
	}
	for i := 0; i < len(k); i++ {
		if c := k[i] | 0x20; c < 'a' || c > 'z' {
			return "a field"
		}
	}
	return "field " + k
}

func sasError(field, problem string) error {
	return fmt.Errorf("%w: field %s %s", ErrBadSAS, field, problem)
}

// decodeMAC decodes base64 text of an HMAC-SHA256 into mac.
func decodeMAC(sig string, mac *[sha256.Size]byte) bool {
	if len(sig) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return false
	}
	var buf [sha256.Size + 2]byte // 44 base64 characters decode to at most 33 bytes
	n, err := base64.StdEncoding.Decode(buf[:], []byte(sig))
	if err != nil || n != sha256.Size {
		return false
	}
	copy(mac[:], buf[:n])
	return true
}

func isHMACBase64(sig string) bool {
	var mac [sha256.Size]byte
	return decodeMAC(sig, &mac)
}

// Verify checks the token's signature with key (the raw, decoded key bytes;
// see DecodeKey) and its expiry against now. The signed text is
// "<sr as transmitted>\n<se>", as both SDKs sign it; when that does not
// match, the canonical form encodeURIComponent(decodeURIComponent(sr)) is
// tried too, so a token whose sr was transmitted raw but signed encoded (or
// the reverse) still verifies (PROTOCOL.md §0.2). The comparison is
// constant-time. The signature is checked first, so ErrSASExpired means a
// genuine token that has expired; a bad signature or an empty key gives
// ErrSASSignature. A token is valid while now is before se.
func (s SAS) Verify(key []byte, now time.Time) error {
	if !s.signedBy(key) {
		return ErrSASSignature
	}
	if now.Unix() >= s.Expiry {
		return fmt.Errorf("%w at %s", ErrSASExpired, time.Unix(s.Expiry, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyLifetime is Verify plus Ferry's own rule: a token whose expiry lies
// more than maxTTL after now is refused with ErrSASNotYetValid. Azure
// tokens have no start time, so a token minted with a lifetime of years is
// a long-lived credential; a hub that caps the lifetime makes a leaked
// token useless sooner. maxTTL of zero or less means no cap.
func (s SAS) VerifyLifetime(key []byte, now time.Time, maxTTL time.Duration) error {
	if err := s.Verify(key, now); err != nil {
		return err
	}
	if maxTTL > 0 && s.Expiry-now.Unix() > int64(maxTTL/time.Second) {
		return fmt.Errorf("%w: it expires at %s, more than %s from now (the hub's maximum token lifetime)",
			ErrSASNotYetValid, time.Unix(s.Expiry, 0).UTC().Format(time.RFC3339), maxTTL)
	}
	return nil
}

// signedBy reports whether the signature is the HMAC of the token, as
// transmitted or in canonical form, under key.
func (s SAS) signedBy(key []byte) bool {
	var want [sha256.Size]byte
	if len(key) == 0 || !decodeMAC(s.Signature, &want) {
		return false
	}
	mac := hmac.New(sha256.New, key)
	if s.macMatches(mac, s.Resource, &want) {
		return true
	}
	if isCanonical(s.Resource) {
		return false // the canonical form is what was just tried
	}
	plain, ok := unescape(s.Resource)
	if !ok {
		return false
	}
	mac.Reset()
	return s.macMatches(mac, escape(plain), &want)
}

func (s SAS) macMatches(mac hash.Hash, resource string, want *[sha256.Size]byte) bool {
	var buf [256]byte
	mac.Write(appendSigned(buf[:0], resource, s.Expiry))
	var got [sha256.Size]byte
	return hmac.Equal(mac.Sum(got[:0]), want[:])
}

// appendSigned appends the text a SAS token signs: "<sr>\n<se>".
func appendSigned(dst []byte, sr string, se int64) []byte {
	dst = append(dst, sr...)
	dst = append(dst, '\n')
	return strconv.AppendInt(dst, se, 10)
}

// ResourceURI returns the resource the token grants access to: sr
// percent-decoded, for example "myhub.azure-devices.net/devices/dev1".
// Compare it with DeviceResource. The error wraps ErrBadSAS.
func (s SAS) ResourceURI() (string, error) {
	r, ok := unescape(s.Resource)
	if !ok {
		return "", sasError("sr", "is badly percent-encoded")
	}
	return r, nil
}

// SignSAS returns a SAS token for resource (plain text, for example
// DeviceResource(host, id, "")) that expires at expiry, signed with key
// (raw bytes). It writes the Python SDK's field order:
// "SharedAccessSignature sr=<encodeURIComponent(resource)>&sig=<encoded
// base64 HMAC>&se=<unix seconds>", followed by "&skn=<keyName>" when
// keyName is not empty.
func SignSAS(key []byte, resource string, expiry time.Time, keyName string) string {
	sr := escape(resource)
	se := expiry.Unix()
	mac := hmac.New(sha256.New, key)
	var buf [256]byte
	mac.Write(appendSigned(buf[:0], sr, se))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	b := make([]byte, 0, len(sasPrefix)+len(sr)+len(sig)+64)
	b = append(b, sasPrefix+"sr="...)
	b = append(b, sr...)
	b = append(b, "&sig="...)
	b = appendEscaped(b, sig)
	b = append(b, "&se="...)
	b = strconv.AppendInt(b, se, 10)
	if keyName != "" {
		b = append(b, "&skn="...)
		b = appendEscaped(b, keyName)
	}
	return string(b)
}

// DeviceResource returns the resource URI of a device's SAS token,
// "{host}/devices/{deviceID}", or of a module's,
// "{host}/devices/{deviceID}/modules/{moduleID}" (plain, not encoded).
func DeviceResource(host, deviceID, moduleID string) string {
	s := host + "/devices/" + deviceID
	if moduleID != "" {
		s += "/modules/" + moduleID
	}
	return s
}

// RegistrationResource returns the resource URI of a DPS registration's SAS
// token, "{idScope}/registrations/{registrationID}" (plain, not encoded).
func RegistrationResource(idScope, registrationID string) string {
	return idScope + "/registrations/" + registrationID
}

// DecodeKey decodes a shared access key from its standard, padded base64
// form. An empty key is refused. The error wraps ErrBadKey and never
// contains the key.
func DecodeKey(b64 string) ([]byte, error) {
	if b64 == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadKey)
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid base64", ErrBadKey)
	}
	return k, nil
}

// DeriveDeviceKey returns the device key a DPS group enrollment derives for
// one registration: base64(HMAC-SHA256(groupKey, registrationID)), where
// groupKey is the enrollment's raw key (PROTOCOL.md §4).
func DeriveDeviceKey(groupKey []byte, registrationID string) string {
	mac := hmac.New(sha256.New, groupKey)
	mac.Write([]byte(registrationID))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
