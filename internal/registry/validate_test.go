package registry_test

import (
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

func TestValidateDeviceID(t *testing.T) {
	good := []string{
		"d1",
		"Thermostat-01",
		"a.b_c-d",
		"-.+%_#*?!(),:=@$';", // every special character Azure allows
		"dtmi:com:example;1",
		"user@example.com",
		strings.Repeat("x", registry.MaxDeviceIDLen),
	}
	for _, id := range good {
		if err := registry.ValidateDeviceID(id); err != nil {
			t.Errorf("ValidateDeviceID(%q) = %v, want nil", id, err)
		}
	}

	bad := []struct {
		id   string
		want string // the message must contain this
	}{
		{"", "required"},
		{strings.Repeat("x", registry.MaxDeviceIDLen+1), "129 bytes"},
		{"a/b", `'/' at position 1`},
		{"a b", `' ' at position 1`},
		{"tab\there", `'\t' at position 3`},
		{"ünicode", `'ü' at position 0`},
		{"quote\"d", `'"' at position 5`},
		{"back\\slash", `'\\' at position 4`},
		{"amp&", `'&' at position 3`},
		{"nul\x00", `'\x00' at position 3`},
		{"brace{", `'{' at position 5`},
		{"tilde~", `'~' at position 5`},
	}
	for _, tt := range bad {
		err := registry.ValidateDeviceID(tt.id)
		if fault.KindOf(err) != fault.Invalid {
			t.Errorf("ValidateDeviceID(%q) = %v, want an Invalid error", tt.id, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidateDeviceID(%q) = %q, want it to mention %s", tt.id, err, tt.want)
		}
	}
}

func FuzzValidateDeviceID(f *testing.F) {
	for _, s := range []string{"d1", "a/b", "ü", "-.+%_#*?!(),:=@$';"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := registry.ValidateDeviceID(id)
		ok := len(id) >= 1 && len(id) <= registry.MaxDeviceIDLen
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-.+%_#*?!(),:=@$';", r)) {
				ok = false
			}
		}
		if ok != (err == nil) {
			t.Fatalf("ValidateDeviceID(%q) = %v, but the id is valid=%v", id, err, ok)
		}
	})
}
