package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// RunRegistry runs the registry.Store conformance tests. open must return a
// new, empty store for each call.
func RunRegistry(t *testing.T, open func(t *testing.T) registry.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st registry.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"GetMissing", testGetMissing},
		{"Update", testUpdate},
		{"UpdateKeepsStateFields", testUpdateKeepsStateFields},
		{"Delete", testDelete},
		{"ConditionalUpdateRace", testConditionalUpdateRace},
		{"ListPaging", testListPaging},
		{"Count", testCount},
		{"ConnectionState", testConnectionState},
		{"Policies", testPolicies},
		{"ConcurrentWriters", testConcurrentWriters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func testCreateGet(t *testing.T, st registry.Store) {
	ctx := t.Context()
	sas := newDevice("sas-1")
	sas.StatusReason = ptr("provisioned by hand")
	sas.LastActivityTime = base.Add(-time.Second)
	sas.CloudToDeviceMessageCount = 3
	sas.Capabilities.IotEdge = true
	sas.DeviceScope = ptr("ms-azure-iot-edge://edge-1-637546501104263193")
	sas.ParentScopes = []string{"ms-azure-iot-edge://edge-1-637546501104263193"}
	sas.ModelID = "dtmi:com:example:Thermostat;1"

	x509 := newDevice("x509.device:1")
	x509.Status = registry.StatusDisabled
	x509.Authentication = registry.Authentication{
		Type: registry.AuthSelfSigned,
		X509Thumbprint: registry.X509Thumbprint{
			PrimaryThumbprint: ptr("9A1F1C8E47DBD1C3E9C5A2A1B2C3D4E5F6A7B8C9"),
		},
	}
	ca := newDevice("ca-#1")
	ca.Authentication = registry.Authentication{Type: registry.AuthCA}

	for _, d := range []*registry.Device{sas, x509, ca} {
		must(t, st.CreateDevice(ctx, d))
		got, err := st.GetDevice(ctx, d.DeviceID)
		must(t, err)
		if diff := diffDevice(got, d); diff != "" {
			t.Errorf("GetDevice(%s) after create:\n%s", d.DeviceID, diff)
		}
	}
}

func testCreateDuplicate(t *testing.T, st registry.Store) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	dup := newDevice("d1")
	dup.ETag = "other"
	wantKind(t, st.CreateDevice(ctx, dup), fault.Conflict, "DeviceAlreadyExists")
	got, err := st.GetDevice(ctx, "d1")
	must(t, err)
	if got.ETag != "MzE4NzUxOTU1" {
		t.Errorf("a refused create changed the device: etag %q", got.ETag)
	}
	// Ids are case-sensitive, as in Azure.
	must(t, st.CreateDevice(ctx, newDevice("D1")))
}

func testGetMissing(t *testing.T, st registry.Store) {
	_, err := st.GetDevice(t.Context(), "nope")
	wantKind(t, err, fault.NotFound, "DeviceNotFound")
}

func testUpdate(t *testing.T, st registry.Store) {
	tests := []struct {
		name     string
		ifMatch  string
		id       string // device to update; default the created one
		wantKind fault.Kind
		wantCode string // "" means success
	}{
		{name: "unconditional empty", ifMatch: ""},
		{name: "unconditional star", ifMatch: "*"},
		{name: "current etag", ifMatch: "MzE4NzUxOTU1"},
		{name: "stale etag", ifMatch: "c3RhbGU=", wantKind: fault.PreconditionFailed, wantCode: "PreconditionFailed"},
		{name: "missing device", id: "ghost", wantKind: fault.NotFound, wantCode: "DeviceNotFound"},
		{name: "missing device with etag", id: "ghost", ifMatch: "MzE4NzUxOTU1", wantKind: fault.NotFound, wantCode: "DeviceNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			orig := newDevice("u1")
			must(t, st.CreateDevice(ctx, orig))
			t.Cleanup(func() { _ = st.DeleteDevice(context.Background(), "u1", "*") })

			next := newDevice("u1")
			if tt.id != "" {
				next.DeviceID = tt.id
			}
			next.ETag = "bmV3"
			next.Status = registry.StatusDisabled
			next.StatusReason = ptr("stolen")
			next.StatusUpdatedTime = base.Add(time.Second)
			next.Authentication.SymmetricKey.PrimaryKey = "ZmVycnlmZXJyeWZlcnJ5ZmVycnk="
			next.ModelID = "dtmi:com:example:Other;2"
			err := st.UpdateDevice(ctx, next, tt.ifMatch)

			want := next
			if tt.wantCode != "" {
				wantKind(t, err, tt.wantKind, tt.wantCode)
				want = orig
			} else {
				must(t, err)
			}
			got, err := st.GetDevice(ctx, "u1")
			must(t, err)
			if diff := diffDevice(got, want); diff != "" {
				t.Errorf("after update:\n%s", diff)
			}
		})
	}
}

// testUpdateKeepsStateFields checks that an identity update does not write
// back the fields other writers own, even when its copy of them is stale.
func testUpdateKeepsStateFields(t *testing.T, st registry.Store) {
	ctx := t.Context()
	d := newDevice("k1")
	must(t, st.CreateDevice(ctx, d))
	at := base.Add(5 * time.Second)
	must(t, st.SetConnectionState(ctx, "k1", true, at))

	stale := newDevice("k1") // still says Disconnected at base
	stale.ETag = "bmV3"
	stale.CloudToDeviceMessageCount = 42
	must(t, st.UpdateDevice(ctx, stale, "*"))

	got, err := st.GetDevice(ctx, "k1")
	must(t, err)
	if got.ETag != "bmV3" {
		t.Errorf("etag = %q, want bmV3", got.ETag)
	}
	if got.ConnectionState != registry.Connected || !got.ConnectionStateUpdatedTime.Equal(at) || !got.LastActivityTime.Equal(at) {
		t.Errorf("connection fields = %s %v %v, want Connected at %v",
			got.ConnectionState, got.ConnectionStateUpdatedTime, got.LastActivityTime, at)
	}
	if got.CloudToDeviceMessageCount != 0 {
		t.Errorf("cloudToDeviceMessageCount = %d, want 0 (UpdateDevice must not write it)", got.CloudToDeviceMessageCount)
	}
}

func testDelete(t *testing.T, st registry.Store) {
	tests := []struct {
		name     string
		id       string
		ifMatch  string
		wantKind fault.Kind
		wantCode string
	}{
		{name: "unconditional empty", id: "x1"},
		{name: "unconditional star", id: "x1", ifMatch: "*"},
		{name: "current etag", id: "x1", ifMatch: "MzE4NzUxOTU1"},
		{name: "stale etag", id: "x1", ifMatch: "c3RhbGU=", wantKind: fault.PreconditionFailed, wantCode: "PreconditionFailed"},
		{name: "missing", id: "ghost", ifMatch: "*", wantKind: fault.NotFound, wantCode: "DeviceNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			must(t, st.CreateDevice(ctx, newDevice("x1")))
			t.Cleanup(func() { _ = st.DeleteDevice(context.Background(), "x1", "*") })

			err := st.DeleteDevice(ctx, tt.id, tt.ifMatch)
			_, getErr := st.GetDevice(ctx, "x1")
			if tt.wantCode != "" {
				wantKind(t, err, tt.wantKind, tt.wantCode)
				must(t, getErr) // still there
				return
			}
			must(t, err)
			wantKind(t, getErr, fault.NotFound, "DeviceNotFound")
			// A deleted id can be registered again.
			must(t, st.CreateDevice(ctx, newDevice("x1")))
		})
	}
}
