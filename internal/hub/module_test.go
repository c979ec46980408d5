package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// wantAzureCode fails t unless err carries Azure's error code name and number.
func wantAzureCode(t *testing.T, err error, kind fault.Kind, code string, num int) {
	t.Helper()
	fe := fault.As(err)
	if fe == nil || fe.Kind != kind || fe.Code != code || fe.Num != num {
		t.Fatalf("err = %v (%+v), want %v %s %d", err, fe, kind, code, num)
	}
}

// TestModulesREST drives module identities through the REST API as
// azure-iothub calls it: create, get, list, update, delete, Azure's error
// codes, and a device delete taking its modules along.
func TestModulesREST(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	c := h.Client
	h.CreateDevice(t, "edge-1")

	m, err := c.CreateModule(ctx, registry.Module{DeviceID: "edge-1", ModuleID: "sensor"})
	if err != nil {
		t.Fatal(err)
	}
	if m.ETag == "" || m.GenerationID == "" || m.ConnectionState != registry.Disconnected ||
		m.Authentication.Type != registry.AuthSAS || m.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Errorf("created module = %+v", m)
	}
	got, err := c.GetModule(ctx, "edge-1", "sensor")
	if err != nil || got.Authentication.SymmetricKey.PrimaryKey != m.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("GetModule = %+v, %v", got, err)
	}
	if _, err := c.CreateModule(ctx, registry.Module{DeviceID: "edge-1", ModuleID: "filter", ManagedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListModules(ctx, "edge-1")
	if err != nil || len(list) != 2 || list[0].ModuleID != "filter" || list[1].ModuleID != "sensor" {
		t.Fatalf("ListModules = %+v, %v; want filter, sensor", list, err)
	}

	// Errors in Azure's codes.
	_, err = c.CreateModule(ctx, registry.Module{DeviceID: "ghost", ModuleID: "m"})
	wantAzureCode(t, err, fault.NotFound, "DeviceNotFound", 404001)
	_, err = c.CreateModule(ctx, registry.Module{DeviceID: "edge-1", ModuleID: "sensor"})
	wantAzureCode(t, err, fault.Conflict, "ModuleAlreadyExistsOnDevice", 409301)
	_, err = c.GetModule(ctx, "edge-1", "ghost")
	wantAzureCode(t, err, fault.NotFound, "ModuleNotFound", 404010)
	_, err = c.ListModules(ctx, "ghost")
	wantAzureCode(t, err, fault.NotFound, "DeviceNotFound", 404001)
	_, err = c.CreateModule(ctx, registry.Module{DeviceID: "edge-1", ModuleID: "bad id"})
	if fault.KindOf(err) != fault.Invalid {
		t.Errorf("create with a bad module id: %v, want invalid", err)
	}

	// Update with If-Match: a stale etag is refused, the current one works.
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	upd := registry.Module{DeviceID: "edge-1", ModuleID: "sensor", Authentication: registry.Authentication{
		Type: registry.AuthSAS, SymmetricKey: &registry.SymmetricKey{PrimaryKey: key, SecondaryKey: key}}}
	_, err = c.UpdateModule(ctx, upd, "stale")
	if fault.KindOf(err) != fault.PreconditionFailed {
		t.Errorf("update with a stale etag: %v", err)
	}
	up, err := c.UpdateModule(ctx, upd, m.ETag)
	if err != nil || up.ETag == m.ETag || up.Authentication.SymmetricKey.PrimaryKey != key || up.GenerationID != m.GenerationID {
		t.Fatalf("UpdateModule = %+v, %v", up, err)
	}

	// Delete one module, then the device with the other.
	if err := c.DeleteModule(ctx, "edge-1", "sensor", ""); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetModule(ctx, "edge-1", "sensor")
	wantAzureCode(t, err, fault.NotFound, "ModuleNotFound", 404010)
	wantAzureCode(t, c.DeleteModule(ctx, "edge-1", "sensor", ""), fault.NotFound, "ModuleNotFound", 404010)
	if err := c.DeleteDevice(ctx, "edge-1", ""); err != nil {
		t.Fatal(err)
	}
	h.CreateDevice(t, "edge-1")
	list, err = c.ListModules(ctx, "edge-1")
	if err != nil || len(list) != 0 {
		t.Errorf("re-created device has modules %+v, %v", list, err)
	}
	_, err = c.GetModule(ctx, "edge-1", "filter")
	wantAzureCode(t, err, fault.NotFound, "ModuleNotFound", 404010)
}

// TestModulesRawHTTP checks the wire shapes: both path prefixes, the list
// as a JSON array, the error body azure-iothub parses, and the rights.
func TestModulesRawHTTP(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	hc := httpsClient(h)
	base := "https://" + h.HTTPAddr().String()
	host := h.ServiceHost()
	owner := protocol.SignSAS(policyKey(t, h, "iothubowner"), host, time.Now().Add(time.Hour), "iothubowner")
	reader := protocol.SignSAS(policyKey(t, h, "registryRead"), host, time.Now().Add(time.Hour), "registryRead")
	h.CreateDevice(t, "d1")

	code, b := call(t, hc, "PUT", base+"/api/v1/devices/d1/modules/m1?api-version=2021-04-12", owner, `{"moduleId":"m1"}`)
	var m map[string]any
	if err := json.Unmarshal(b, &m); code != 200 || err != nil || m["moduleId"] != "m1" || m["deviceId"] != "d1" {
		t.Fatalf("PUT module under /api/v1: %d %s", code, b)
	}
	for _, k := range []string{"generationId", "etag", "connectionState", "connectionStateUpdatedTime",
		"lastActivityTime", "cloudToDeviceMessageCount", "authentication", "managedBy"} {
		if _, ok := m[k]; !ok {
			t.Errorf("module JSON lacks %q: %s", k, b)
		}
	}
	for _, path := range []string{"/devices/d1/modules", "/devices/d1/modules/", "/api/v1/devices/d1/modules"} {
		code, b := call(t, hc, "GET", base+path+"?api-version=2021-04-12", reader, "")
		var list []map[string]any
		if err := json.Unmarshal(b, &list); code != 200 || err != nil || len(list) != 1 || list[0]["moduleId"] != "m1" {
			t.Errorf("GET %s: %d %s", path, code, b)
		}
	}
	code, b = call(t, hc, "GET", base+"/devices/d1/modules/nope?api-version=2021-04-12", reader, "")
	if code != 404 {
		t.Errorf("GET unknown module: %d %s", code, b)
	}
	azureError(t, b, "ModuleNotFound")
	code, b = call(t, hc, "PUT", base+"/devices/d1/modules/m2?api-version=2021-04-12", owner, `{"moduleId":"other"}`)
	if code != 400 {
		t.Errorf("PUT with a mismatched moduleId: %d %s", code, b)
	}
	// registryRead may read modules but not write them.
	if code, b := call(t, hc, "PUT", base+"/devices/d1/modules/m2", reader, `{}`); code != 401 && code != 403 {
		t.Errorf("registryRead PUT module: %d %s, want a refusal", code, b)
	}
	if code, b := call(t, hc, "DELETE", base+"/devices/d1/modules/m1", reader, ""); code != 401 && code != 403 {
		t.Errorf("registryRead DELETE module: %d %s, want a refusal", code, b)
	}
	if code, b := call(t, hc, "DELETE", base+"/devices/d1/modules/m1", owner, ""); code != 204 {
		t.Errorf("DELETE module: %d %s", code, b)
	}
}

// runCLI runs the ferry command in-process against h.
func runCLI(h *hubtest.Hub, args ...string) (int, string, string) {
	var out, errb strings.Builder
	code := cli.Main(context.Background(), append(args, "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()), &out, &errb)
	return code, out.String(), errb.String()
}

// TestModulesCLI drives the module verbs of the ferry command against a
// real hub: create, list, show, connection-string, delete and exit codes.
func TestModulesCLI(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	h.CreateDevice(t, "edge-cli")

	code, out, errs := runCLI(h, "module", "create", "edge-cli", "sensor", "--json")
	var m registry.Module
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m.ModuleID != "sensor" || m.DeviceID != "edge-cli" {
		t.Fatalf("module create: %d %s %s", code, out, errs)
	}
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	if code, out, errs := runCLI(h, "module", "create", "edge-cli", "filter", "--primary-key", key, "--secondary-key", key); code != 0 || !strings.Contains(out, key) || !strings.Contains(errs, "Created module filter") {
		t.Fatalf("module create with keys: %d %s %s", code, out, errs)
	}
	if code, _, _ := runCLI(h, "module", "create", "edge-cli", "sensor"); code != 5 {
		t.Errorf("duplicate module create: exit %d, want 5", code)
	}
	if code, _, _ := runCLI(h, "module", "create", "ghost", "sensor"); code != 3 {
		t.Errorf("module create on an unknown device: exit %d, want 3", code)
	}
	if code, _, _ := runCLI(h, "module", "create", "edge-cli", "x", "--primary-key", "not base64!"); code != 2 {
		t.Errorf("module create with a bad key: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(h, "module", "create", "edge-cli"); code != 2 {
		t.Errorf("module create without MODULE: exit %d, want 2", code)
	}

	code, out, errs = runCLI(h, "module", "list", "edge-cli")
	if code != 0 || !strings.Contains(out, "MODULE ID") || strings.Index(out, "filter") > strings.Index(out, "sensor") {
		t.Fatalf("module list: %d %s %s", code, out, errs)
	}
	code, out, _ = runCLI(h, "module", "list", "edge-cli", "--json")
	var list []registry.Module
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 {
		t.Fatalf("module list --json: %d %s", code, out)
	}
	if code, out, _ := runCLI(h, "module", "show", "edge-cli", "sensor"); code != 0 || !strings.Contains(out, m.Authentication.SymmetricKey.PrimaryKey) || !strings.Contains(out, "Module ID") {
		t.Errorf("module show: %d %s", code, out)
	}
	if code, _, _ := runCLI(h, "module", "show", "edge-cli", "ghost"); code != 3 {
		t.Errorf("module show of an unknown module: exit %d, want 3", code)
	}

	code, out, errs = runCLI(h, "module", "connection-string", "edge-cli", "filter")
	want := "HostName=" + h.DeviceHost() + ";DeviceId=edge-cli;ModuleId=filter;SharedAccessKey=" + key
	if code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("module connection-string = %d %q %s, want %q", code, out, errs, want)
	}
	cs, err := protocol.ParseConnectionString(strings.TrimSpace(out))
	if err != nil || cs.ModuleID != "filter" {
		t.Errorf("connection string does not parse as a module's: %+v, %v", cs, err)
	}

	if code, _, errs := runCLI(h, "module", "delete", "edge-cli", "sensor"); code != 0 || !strings.Contains(errs, "Deleted module sensor") {
		t.Errorf("module delete: %d %s", code, errs)
	}
	if code, _, _ := runCLI(h, "module", "delete", "edge-cli", "sensor"); code != 3 {
		t.Errorf("second module delete: exit %d, want 3", code)
	}
	if code, _, _ := runCLI(h, "device", "delete", "edge-cli"); code != 0 {
		t.Fatal("device delete failed")
	}
	if code, _, _ := runCLI(h, "module", "list", "edge-cli"); code != 3 {
		t.Errorf("module list of a deleted device: exit %d, want 3", code)
	}
	var help strings.Builder
	if code := cli.Main(context.Background(), []string{"help", "module", "create"}, &help, &help); code != 0 || !strings.Contains(help.String(), "DEVICE MODULE") {
		t.Errorf("help module create: %d %s", code, help.String())
	}
}
