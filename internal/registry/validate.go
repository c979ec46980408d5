package registry

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/ferry-iot/ferry/internal/fault"
)

// MaxDeviceIDLen is Azure's limit on the length of a device id.
const MaxDeviceIDLen = 128

// Key length bounds, in decoded bytes, as Azure enforces them.
const (
	MinKeyLen = 16
	MaxKeyLen = 64
)

// maxStatusReasonLen is Azure's limit on statusReason.
const maxStatusReasonLen = 128

// idSpecials are the bytes Azure allows in a device id besides letters and digits.
const idSpecials = "-.+%_#*?!(),:=@$';"

// idAllowed is a lookup table over bytes; ids are checked on every connect,
// so the check avoids strings.ContainsRune per byte.
var idAllowed = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(idSpecials); i++ {
		t[idSpecials[i]] = true
	}
	return t
}()

// ValidateDeviceID checks id against Azure's rules: 1 to 128 characters,
// ASCII letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ' ;. The error
// names the first character that is not allowed.
func ValidateDeviceID(id string) error {
	if id == "" {
		return fault.Invalidf("device id is required")
	}
	if len(id) > MaxDeviceIDLen {
		return fault.Invalidf("device id is %d bytes long; the limit is %d", len(id), MaxDeviceIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idAllowed[id[i]] {
			// Every byte before i is ASCII, so i is also the character position.
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fault.Invalidf("device id %q: character %q at position %d is not allowed "+
				"(use ASCII letters, digits and %s)", id, r, i, idSpecials)
		}
	}
	return nil
}

// normalizeStatus applies the default and accepts any case, since .NET
// clients may send enum names.
func normalizeStatus(s Status) (Status, error) {
	switch {
	case s == "":
		return StatusEnabled, nil
	case strings.EqualFold(string(s), string(StatusEnabled)):
		return StatusEnabled, nil
	case strings.EqualFold(string(s), string(StatusDisabled)):
		return StatusDisabled, nil
	}
	return "", fault.Invalidf("status %q is not valid (use enabled or disabled)", s)
}

// normalizeAuthType applies the default and accepts any case.
func normalizeAuthType(t AuthType) (AuthType, error) {
	if t == "" {
		return AuthSAS, nil
	}
	for _, known := range []AuthType{AuthSAS, AuthSelfSigned, AuthCA} {
		if strings.EqualFold(string(t), string(known)) {
			return known, nil
		}
	}
	return "", fault.Invalidf("authentication type %q is not supported (use sas, selfSigned or certificateAuthority)", t)
}

// checkKey validates one given base64 key; name says which key for the error.
func checkKey(name, key string) error {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return fault.Invalidf("authentication.symmetricKey.%s is not valid base64", name)
	}
	if len(b) < MinKeyLen || len(b) > MaxKeyLen {
		return fault.Invalidf("authentication.symmetricKey.%s decodes to %d bytes; it must be %d to %d",
			name, len(b), MinKeyLen, MaxKeyLen)
	}
	return nil
}

// checkThumbprint validates a hex SHA-1 (40 digits) or SHA-256 (64 digits)
// thumbprint; Azure's documentation leaves open which one devices use.
func checkThumbprint(name string, tp *string) error {
	if tp == nil {
		return nil
	}
	if _, err := hex.DecodeString(*tp); err != nil || (len(*tp) != 40 && len(*tp) != 64) {
		return fault.Invalidf("authentication.x509Thumbprint.%s must be 40 or 64 hex digits", name)
	}
	return nil
}

// validateAttributes checks the free-form fields a caller may set.
func validateAttributes(d *Device) error {
	if d.StatusReason != nil && len(*d.StatusReason) > maxStatusReasonLen {
		return fault.Invalidf("statusReason is %d bytes long; the limit is %d", len(*d.StatusReason), maxStatusReasonLen)
	}
	if d.ModelID != "" && !strings.HasPrefix(d.ModelID, "dtmi:") {
		return fault.Invalidf("modelId %q is not a DTMI (it must start with dtmi:)", d.ModelID)
	}
	return nil
}
