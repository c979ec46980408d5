package loadgen

import "testing"

func TestSourceAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		i    int
		want string // "" for the kernel's choice
	}{
		{"127.0.0.1:1883", 0, "127.0.0.1"},
		{"127.0.0.1:1883", 5, "127.0.0.6"},
		{"127.0.0.1:1883", sourceSpread, "127.0.0.1"},
		{"127.9.9.9:1883", 1, "127.0.0.2"},
		{"[::1]:1883", 1, ""},
		{"localhost:1883", 1, ""},
		{"10.0.0.1:1883", 1, ""},
	} {
		got := sourceAddr(tc.addr, tc.i)
		if (got == nil) != (tc.want == "") || got != nil && got.IP.String() != tc.want {
			t.Errorf("sourceAddr(%s, %d) = %v, want %q", tc.addr, tc.i, got, tc.want)
		}
	}
}
