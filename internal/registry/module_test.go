package registry_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// wantCode fails t unless err carries Azure's error code name and number.
func wantCode(t *testing.T, err error, code string, num int) {
	t.Helper()
	fe := fault.As(err)
	if fe == nil || fe.Code != code || fe.Num != num {
		t.Fatalf("err = %v, want %s %d", err, code, num)
	}
}

func TestCreateModule(t *testing.T) {
	c := newClock()
	svc, _ := newService(t, registry.Options{Now: c.Now})
	ctx := t.Context()
	_, err := svc.Create(ctx, registry.Device{DeviceID: "d1"})
	must(t, err)

	m, err := svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1", ETag: "mine", GenerationID: "mine",
		ConnectionState: registry.Connected, CloudToDeviceMessageCount: 4, ManagedBy: "IotEdge"})
	must(t, err)
	if m.ETag == "mine" || m.ETag == "" || len(m.GenerationID) != 18 || m.ConnectionState != registry.Disconnected ||
		m.CloudToDeviceMessageCount != 0 || !m.ConnectionStateUpdatedTime.Equal(c.Now()) || m.ManagedBy != "IotEdge" {
		t.Errorf("server-owned fields not set: %+v", m)
	}
	sk := m.Authentication.SymmetricKey
	if m.Authentication.Type != registry.AuthSAS || sk == nil {
		t.Fatalf("authentication = %+v, want generated sas keys", m.Authentication)
	}
	for _, k := range []string{sk.PrimaryKey, sk.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != registry.KeyLen {
			t.Errorf("generated key %q: %d bytes, %v", k, len(b), err)
		}
	}
	got, err := svc.GetModule(ctx, "d1", "m1")
	must(t, err)
	if got.ETag != m.ETag || got.Authentication.SymmetricKey.PrimaryKey != sk.PrimaryKey {
		t.Errorf("GetModule = %+v, want the created module", got)
	}

	given := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	g, err := svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m2", Authentication: registry.Authentication{
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: given, SecondaryKey: given}}})
	must(t, err)
	if g.Authentication.SymmetricKey.PrimaryKey != given {
		t.Errorf("given key replaced: %+v", g.Authentication.SymmetricKey)
	}

	_, err = svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"})
	wantCode(t, err, "ModuleAlreadyExistsOnDevice", 409301)
	_, err = svc.CreateModule(ctx, registry.Module{DeviceID: "ghost", ModuleID: "m1"})
	wantCode(t, err, "DeviceNotFound", 404001)
	for _, bad := range []string{"", "has space", "slash/no", strings.Repeat("m", 129)} {
		_, err = svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: bad})
		wantFault(t, err, fault.Invalid, "module id")
	}
	_, err = svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m3", Authentication: registry.Authentication{
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: "short"}}})
	wantFault(t, err, fault.Invalid, "primaryKey")
	_, err = svc.GetModule(ctx, "d1", "ghost")
	wantCode(t, err, "ModuleNotFound", 404010)
}

func TestModuleJSON(t *testing.T) {
	m := registry.Module{ModuleID: "m", DeviceID: "d", Authentication: registry.Authentication{Type: registry.AuthSAS}}
	b, err := json.Marshal(m)
	must(t, err)
	for _, k := range []string{"moduleId", "deviceId", "generationId", "etag", "connectionState",
		"connectionStateUpdatedTime", "lastActivityTime", "cloudToDeviceMessageCount", "authentication", "managedBy"} {
		if !strings.Contains(string(b), `"`+k+`":`) {
			t.Errorf("module JSON %s lacks %q", b, k)
		}
	}
	// .NET writes zoneless times.
	var back registry.Module
	must(t, json.Unmarshal([]byte(`{"moduleId":"m","deviceId":"d","connectionStateUpdatedTime":"0001-01-01T00:00:00",
		"lastActivityTime":"2026-05-01T12:00:00","managedBy":null}`), &back))
	if back.LastActivityTime.Year() != 2026 || back.ModuleID != "m" {
		t.Errorf("decoded %+v", back)
	}
}

func TestUpdateDeleteModule(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	_, err := svc.Create(ctx, registry.Device{DeviceID: "d1"})
	must(t, err)
	m, err := svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"})
	must(t, err)
	var changes []registry.Change
	cancel := svc.Subscribe(func(c registry.Change) { changes = append(changes, c) })
	defer cancel()

	_, err = svc.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"}, `"stale"`)
	wantFault(t, err, fault.PreconditionFailed)
	up, err := svc.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "ops",
		Authentication: registry.Authentication{Type: registry.AuthCA}}, `"`+m.ETag+`"`)
	must(t, err)
	if up.ETag == m.ETag || up.GenerationID != m.GenerationID || up.ManagedBy != "ops" ||
		up.Authentication.Type != registry.AuthCA || up.Authentication.SymmetricKey != nil {
		t.Errorf("UpdateModule = %+v", up)
	}
	_, err = svc.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "ghost"}, "*")
	wantCode(t, err, "ModuleNotFound", 404010)

	wantFault(t, svc.DeleteModule(ctx, "d1", "m1", m.ETag), fault.PreconditionFailed)
	must(t, svc.DeleteModule(ctx, "d1", "m1", up.ETag))
	wantCode(t, svc.DeleteModule(ctx, "d1", "m1", ""), "ModuleNotFound", 404010)

	if len(changes) != 2 || changes[0].Kind != registry.ChangeModuleUpdated || changes[0].ModuleID != "m1" ||
		changes[0].Module == nil || changes[0].Device != nil ||
		changes[1].Kind != registry.ChangeModuleDeleted || changes[1].ModuleID != "m1" || changes[1].DeviceID != "d1" {
		t.Errorf("changes = %+v, want module updated then module deleted", changes)
	}
}

func TestListModulesAndDeviceDelete(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	_, err := svc.Create(ctx, registry.Device{DeviceID: "d1"})
	must(t, err)
	list, err := svc.ListModules(ctx, "d1")
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListModules of a device without modules = %v, %v; want [] (not nil)", list, err)
	}
	for _, id := range []string{"b", "a", "c"} {
		_, err := svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: id})
		must(t, err)
	}
	list, err = svc.ListModules(ctx, "d1")
	must(t, err)
	if len(list) != 3 || list[0].ModuleID != "a" || list[2].ModuleID != "c" {
		t.Errorf("ListModules = %+v, want a, b, c", list)
	}
	_, err = svc.ListModules(ctx, "ghost")
	wantCode(t, err, "DeviceNotFound", 404001)

	must(t, svc.Delete(ctx, "d1", "*"))
	_, err = svc.Create(ctx, registry.Device{DeviceID: "d1"})
	must(t, err)
	list, err = svc.ListModules(ctx, "d1")
	if err != nil || len(list) != 0 {
		t.Errorf("re-created device has modules %+v, %v", list, err)
	}
	_, err = svc.GetModule(ctx, "d1", "a")
	wantCode(t, err, "ModuleNotFound", 404010)
}
