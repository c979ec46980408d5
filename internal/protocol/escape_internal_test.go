package protocol

import "testing"

func TestIsCanonical(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"", true},
		{"localhost%3A8884%2Fdevices%2Fdev1", true},
		{"myhub.azure-devices.net", true},
		{"localhost:8884/devices/dev1", false},
		{"localhost%3a8884", false},
		{"%41", false}, // 'A' needs no encoding
		{"%2", false},
		{"%", false},
		{"a b", false},
		{"%20", true},
		{"!~*'()", true},
		{"%21", false},
	} {
		if got := isCanonical(tt.s); got != tt.want {
			t.Errorf("isCanonical(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

// FuzzIsCanonical checks isCanonical against its definition.
func FuzzIsCanonical(f *testing.F) {
	for _, s := range []string{"localhost%3A8884%2Fdevices%2Fdev1", "a/b", "%41", "%2f", "%e2%82%ac", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plain, ok := unescape(s)
		want := ok && escape(plain) == s
		if got := isCanonical(s); got != want {
			t.Fatalf("isCanonical(%q) = %v, want %v", s, got, want)
		}
		if ok {
			if again, ok := unescape(escape(plain)); !ok || again != plain {
				t.Fatalf("unescape(escape(%q)) = %q, %v", plain, again, ok)
			}
		}
	})
}
