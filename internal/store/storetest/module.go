package storetest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// ModuleStore is what the module suite needs: modules belong to registered
// devices and take their twins with them, so the suite also uses the
// registry and twin methods of the same store.
type ModuleStore interface {
	TwinStore
	registry.ModuleStore
}

// RunModule runs the registry.ModuleStore conformance tests. open must
// return a new, empty store for each call.
func RunModule(t *testing.T, open func(t *testing.T) ModuleStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st ModuleStore)
	}{
		{"CreateGet", testModuleCreateGet},
		{"CreateUnknownDevice", testModuleCreateUnknownDevice},
		{"CreateDuplicate", testModuleCreateDuplicate},
		{"GetMissing", testModuleGetMissing},
		{"Update", testModuleUpdate},
		{"Delete", testModuleDelete},
		{"List", testModuleList},
		{"DeviceDeleteRemovesModules", testModuleDeviceDelete},
		{"DeleteRemovesTwin", testModuleDeleteTwin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// newModule returns a SAS module with every field set, as the registry
// service would hand it to a store.
func newModule(deviceID, moduleID string) *registry.Module {
	d := newDevice(deviceID)
	return &registry.Module{
		ModuleID:                   moduleID,
		DeviceID:                   deviceID,
		GenerationID:               "637546501104263194",
		ETag:                       "NzY1NDMyMTA=",
		ConnectionState:            registry.Disconnected,
		ConnectionStateUpdatedTime: base,
		Authentication:             d.Authentication,
	}
}

// diffModule returns "" if got equals want, else both as JSON.
func diffModule(got, want *registry.Module) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return "one of got, want is nil"
	}
	g, w := *got, *want
	for _, m := range []*registry.Module{&g, &w} {
		m.ConnectionStateUpdatedTime = m.ConnectionStateUpdatedTime.UTC()
		m.LastActivityTime = m.LastActivityTime.UTC()
	}
	if reflect.DeepEqual(g, w) {
		return ""
	}
	gj, _ := json.MarshalIndent(g, "", "  ")
	wj, _ := json.MarshalIndent(w, "", "  ")
	return "got:\n" + string(gj) + "\nwant:\n" + string(wj)
}

func testModuleCreateGet(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	sas := newModule("d1", "sas-1")
	sas.ManagedBy = "IotEdge"
	sas.LastActivityTime = base.Add(-time.Second)
	sas.CloudToDeviceMessageCount = 2
	x509 := newModule("d1", "x509.module:1")
	x509.Authentication = registry.Authentication{
		Type: registry.AuthSelfSigned,
		X509Thumbprint: registry.X509Thumbprint{
			PrimaryThumbprint: ptr("9A1F1C8E47DBD1C3E9C5A2A1B2C3D4E5F6A7B8C9"),
		},
	}
	ca := newModule("d1", "ca-#1")
	ca.Authentication = registry.Authentication{Type: registry.AuthCA}
	for _, m := range []*registry.Module{sas, x509, ca} {
		must(t, st.CreateModule(ctx, m))
		got, err := st.GetModule(ctx, m.DeviceID, m.ModuleID)
		must(t, err)
		if diff := diffModule(got, m); diff != "" {
			t.Errorf("GetModule(%s) after create:\n%s", m.ModuleID, diff)
		}
	}
}

func testModuleCreateUnknownDevice(t *testing.T, st ModuleStore) {
	wantKind(t, st.CreateModule(t.Context(), newModule("ghost", "m1")), fault.NotFound, "DeviceNotFound")
}

func testModuleCreateDuplicate(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	must(t, st.CreateDevice(ctx, newDevice("d2")))
	must(t, st.CreateModule(ctx, newModule("d1", "m1")))
	dup := newModule("d1", "m1")
	dup.ETag = "other"
	wantKind(t, st.CreateModule(ctx, dup), fault.Conflict, "ModuleAlreadyExistsOnDevice")
	got, err := st.GetModule(ctx, "d1", "m1")
	must(t, err)
	if got.ETag != newModule("d1", "m1").ETag {
		t.Errorf("a refused create changed the module: etag %q", got.ETag)
	}
	// Module ids are per device and case-sensitive.
	must(t, st.CreateModule(ctx, newModule("d2", "m1")))
	must(t, st.CreateModule(ctx, newModule("d1", "M1")))
}

func testModuleGetMissing(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	_, err := st.GetModule(ctx, "d1", "nope")
	wantKind(t, err, fault.NotFound, "ModuleNotFound")
	_, err = st.GetModule(ctx, "ghost", "m1")
	wantKind(t, err, fault.NotFound, "ModuleNotFound")
}

func testModuleUpdate(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	orig := newModule("d1", "m1")
	orig.LastActivityTime = base.Add(time.Minute)
	must(t, st.CreateModule(ctx, orig))

	next := *orig
	next.ETag = "bmV4dA=="
	next.ManagedBy = "someone"
	next.Authentication = registry.Authentication{Type: registry.AuthCA}
	// The connection fields are not the update's to change.
	next.ConnectionState = registry.Connected
	next.CloudToDeviceMessageCount = 9
	wantKind(t, st.UpdateModule(ctx, &next, "stale"), fault.PreconditionFailed, "PreconditionFailed")
	must(t, st.UpdateModule(ctx, &next, orig.ETag))
	got, err := st.GetModule(ctx, "d1", "m1")
	must(t, err)
	want := next
	want.ConnectionState, want.CloudToDeviceMessageCount = orig.ConnectionState, orig.CloudToDeviceMessageCount
	if diff := diffModule(got, &want); diff != "" {
		t.Errorf("after update:\n%s", diff)
	}
	next.ETag = "dGhpcmQ="
	must(t, st.UpdateModule(ctx, &next, "*"))
	ghost := newModule("d1", "ghost")
	wantKind(t, st.UpdateModule(ctx, ghost, ""), fault.NotFound, "ModuleNotFound")
}

func testModuleDelete(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	m := newModule("d1", "m1")
	must(t, st.CreateModule(ctx, m))
	must(t, st.CreateModule(ctx, newModule("d1", "m2")))
	wantKind(t, st.DeleteModule(ctx, "d1", "m1", "stale"), fault.PreconditionFailed, "PreconditionFailed")
	must(t, st.DeleteModule(ctx, "d1", "m1", m.ETag))
	_, err := st.GetModule(ctx, "d1", "m1")
	wantKind(t, err, fault.NotFound, "ModuleNotFound")
	wantKind(t, st.DeleteModule(ctx, "d1", "m1", ""), fault.NotFound, "ModuleNotFound")
	must(t, st.DeleteModule(ctx, "d1", "m2", "*"))
	if _, err := st.GetDevice(ctx, "d1"); err != nil {
		t.Errorf("deleting modules touched the device: %v", err)
	}
}

func testModuleList(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	must(t, st.CreateDevice(ctx, newDevice("d2")))
	list, err := st.ListModules(ctx, "d1")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListModules of a device without modules = %d modules", len(list))
	}
	for _, id := range []string{"b", "a", "B", "c-1"} {
		must(t, st.CreateModule(ctx, newModule("d1", id)))
	}
	must(t, st.CreateModule(ctx, newModule("d2", "z")))
	list, err = st.ListModules(ctx, "d1")
	must(t, err)
	var ids []string
	for _, m := range list {
		if m.DeviceID != "d1" {
			t.Errorf("ListModules(d1) returned a module of %s", m.DeviceID)
		}
		ids = append(ids, m.ModuleID)
	}
	if want := []string{"B", "a", "b", "c-1"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ListModules(d1) = %q, want %q (byte order)", ids, want)
	}
	if diff := diffModule(&list[1], newModule("d1", "a")); diff != "" {
		t.Errorf("listed module differs:\n%s", diff)
	}
	_, err = st.ListModules(ctx, "ghost")
	wantKind(t, err, fault.NotFound, "DeviceNotFound")
}
