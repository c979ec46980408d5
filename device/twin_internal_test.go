package device

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

// offlineClient is a Client whose hub is unreachable, for driving its
// twin state directly.
func offlineClient(t *testing.T) *Client {
	t.Helper()
	c, err := Start(context.Background(), Config{
		ConnectionString: "HostName=127.0.0.1:1;DeviceId=d1;SharedAccessKey=a2V5a2V5a2V5a2V5",
		StorePath:        filepath.Join(t.TempDir(), "device.db"),
		InsecureTCP:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(got, &x); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &y); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestDesiredVersionChecks feeds the twin state notifications in and out
// of order: stale ones are ignored, the next version applies, a gap asks
// for a GET and changes nothing.
func TestDesiredVersionChecks(t *testing.T) {
	s := offlineClient(t).twin
	s.applyFull([]byte(`{"desired":{"a":1,"o":{"x":1},"$version":5},"reported":{"$version":1}}`))
	for _, v := range []int64{5, 4} {
		if gap := s.applyPatch(v, []byte(fmt.Sprintf(`{"a":9,"$version":%d}`, v))); gap {
			t.Fatalf("stale version %d reported as a gap", v)
		}
	}
	jsonEqual(t, s.desired.JSON, `{"a":1,"o":{"x":1}}`)
	if gap := s.applyPatch(6, []byte(`{"b":2,"o":{"x":null,"y":2},"$version":6}`)); gap {
		t.Fatal("the next version reported as a gap")
	}
	jsonEqual(t, s.desired.JSON, `{"a":1,"b":2,"o":{"y":2}}`)
	if s.desired.Version != 6 {
		t.Fatalf("version %d, want 6", s.desired.Version)
	}
	if gap := s.applyPatch(0, []byte(`{"c":3,"$version":8}`)); !gap { // version from the body
		t.Fatal("version 8 after 6 is not a gap")
	}
	s.applyFull([]byte(`{"desired":{"old":true,"$version":3}}`))
	if s.desired.Version != 6 {
		t.Fatalf("an older GET replaced version 6 by %d", s.desired.Version)
	}
	jsonEqual(t, s.desired.JSON, `{"a":1,"b":2,"o":{"y":2}}`)
}

func TestComposePatch(t *testing.T) {
	for _, tc := range []struct {
		a, b, want string // want "" means not composable
	}{
		{`{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{`{"a":1}`, `{"a":null}`, `{"a":null}`},
		{`{"a":null}`, `{"a":1}`, `{"a":1}`},
		{`{"o":{"x":1,"y":1}}`, `{"o":{"x":null,"z":3}}`, `{"o":{"x":null,"y":1,"z":3}}`},
		{`{"o":{"x":1}}`, `{"o":5}`, `{"o":5}`},
		{`{"k":1}`, `{"o":{"x":1}}`, `{"k":1,"o":{"x":1}}`},
		{`{"o":null}`, `{"o":{"x":1}}`, ``},
		{`{"o":[1]}`, `{"o":{"x":1}}`, ``},
		{`{"o":{"p":null}}`, `{"o":{"p":{"x":1}}}`, ``},
	} {
		var a, b map[string]any
		if err := decodeJSON([]byte(tc.a), &a); err != nil {
			t.Fatal(err)
		}
		if err := decodeJSON([]byte(tc.b), &b); err != nil {
			t.Fatal(err)
		}
		got, ok := composePatch(a, b)
		if tc.want == "" {
			if ok {
				t.Errorf("compose(%s, %s) = %s, want not composable", tc.a, tc.b, encodeJSON(got))
			}
			continue
		}
		if !ok {
			t.Errorf("compose(%s, %s) not composable, want %s", tc.a, tc.b, tc.want)
			continue
		}
		jsonEqual(t, encodeJSON(got), tc.want)
	}
}
