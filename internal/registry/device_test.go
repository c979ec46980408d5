package registry_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// azureDevice is the device JSON az prints (PROTOCOL.md §2.4).
const azureDevice = `{"deviceId":"d1","generationId":"637546501104263193","etag":"MzE4NzUxOTU1","connectionState":"Disconnected",
 "status":"enabled","statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00",
 "statusUpdatedTime":"0001-01-01T00:00:00","lastActivityTime":"0001-01-01T00:00:00","cloudToDeviceMessageCount":0,
 "authentication":{"symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
 "capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":[]}`

func TestDeviceJSONRoundTrip(t *testing.T) {
	var d registry.Device
	if err := json.Unmarshal([]byte(azureDevice), &d); err != nil {
		t.Fatalf("decoding Azure's device JSON: %v", err)
	}
	if d.DeviceID != "d1" || d.Authentication.SymmetricKey.PrimaryKey != "cHJpbWFyeQ==" || !d.StatusUpdatedTime.IsZero() {
		t.Errorf("decoded %+v", d)
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	// Same fields as Azure, in Azure's order, same nulls.
	var got, want map[string]any
	json.Unmarshal(out, &got)
	json.Unmarshal([]byte(azureDevice), &want)
	for _, k := range []string{"connectionStateUpdatedTime", "statusUpdatedTime", "lastActivityTime"} {
		if got[k] != "0001-01-01T00:00:00Z" {
			t.Errorf("%s = %v, want 0001-01-01T00:00:00Z", k, got[k])
		}
		delete(got, k)
		delete(want, k)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("re-encoded device differs from Azure's:\n%s\n%s", out, azureDevice)
	}
	if keys := topLevelKeys(t, out); !slices.Equal(keys, topLevelKeys(t, []byte(azureDevice))) {
		t.Errorf("field order = %v", keys)
	}
}

func TestDeviceJSONParentScopesArray(t *testing.T) {
	out, err := json.Marshal(registry.Device{DeviceID: "d"}) // ParentScopes nil
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"parentScopes":[]`) || strings.Contains(string(out), "modelId") {
		t.Errorf("device JSON = %s; want parentScopes [] and no modelId", out)
	}
	out, _ = json.Marshal(&registry.Device{DeviceID: "d", ModelID: "dtmi:x;1"}) // through a pointer too
	if !strings.Contains(string(out), `"parentScopes":[]`) || !strings.Contains(string(out), `"modelId":"dtmi:x;1"`) {
		t.Errorf("device JSON via pointer = %s", out)
	}
}

func TestDeviceJSONTimestamps(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2026-05-01T12:00:00Z"`, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)},
		{`"2026-05-01T12:00:00.1234567"`, time.Date(2026, 5, 1, 12, 0, 0, 123456700, time.UTC)}, // .NET DateTime
		{`"2026-05-01T14:00:00+02:00"`, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)},
		{`null`, time.Time{}},
		{`""`, time.Time{}},
	}
	for _, tt := range tests {
		var d registry.Device
		if err := json.Unmarshal([]byte(`{"deviceId":"d","lastActivityTime":`+tt.in+`}`), &d); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !d.LastActivityTime.Equal(tt.want) {
			t.Errorf("%s decoded as %v, want %v", tt.in, d.LastActivityTime, tt.want)
		}
	}
	var d registry.Device
	if err := json.Unmarshal([]byte(`{"statusUpdatedTime":"yesterday"}`), &d); err == nil {
		t.Error("a timestamp that is not RFC 3339 was accepted")
	}
}

// topLevelKeys returns an object's keys in document order.
func topLevelKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.Token() // {
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
