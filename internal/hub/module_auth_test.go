package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestModuleClients: a module connects as deviceId/moduleId with its own
// key, is confined to its own topics, and has its own twin; the device's key
// does not open the module's session.
func TestModuleClients(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "gateway-1")
	ctx := context.Background()
	m, err := h.Client.CreateModule(ctx, registry.Module{DeviceID: dev.ID, ModuleID: "filter"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := protocol.DecodeKey(m.Authentication.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	host := h.DeviceHost()
	user := host + "/gateway-1/filter/?api-version=2021-04-12"
	token := func(k []byte) string {
		return protocol.SignSAS(k, protocol.DeviceResource(host, "gateway-1", "filter"), time.Now().Add(time.Hour), "")
	}
	addr := h.MQTTAddr("tls").String()
	if _, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{ClientID: "gateway-1/filter", Username: user, Password: token(dev.Key)}); err != nil || code != v3BadCredentials {
		t.Fatalf("module with the device's key: 0x%02x %v, want refused", code, err)
	}
	if _, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{ClientID: "gateway-1/nope", Username: host + "/gateway-1/nope/?api-version=2021-04-12", Password: token(key)}); err != nil || code != v3BadCredentials {
		t.Fatalf("unknown module: 0x%02x %v, want refused", code, err)
	}
	c, code, err := hubtest.Dial(addr, h.TLSConfig(), hubtest.ConnectOptions{ClientID: "gateway-1/filter", Username: user, Password: token(key)})
	if err != nil || code != 0 {
		t.Fatalf("module with its own key: 0x%02x %v", code, err)
	}
	defer c.Disconnect()
	if code, err := c.Publish("devices/gateway-1/modules/filter/messages/events/kind=filtered", []byte("ok"), 1, false); err != nil || code != 0 {
		t.Fatalf("module telemetry: 0x%02x %v", code, err)
	}
	msgs := assertStored(t, h, 1)
	if msgs[0].DeviceID != "gateway-1" || msgs[0].ModuleID != "filter" {
		t.Fatalf("stored %+v", msgs[0])
	}
	if _, err := c.Subscribe("$iothub/twin/res/#"); err != nil {
		t.Fatal(err)
	}
	if status, version, _ := twinCall(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=1", []byte(`{"rate":5}`)); status != 204 || version != 2 {
		t.Fatalf("module reported patch: %d %d", status, version)
	}
	if status, _, body := twinCall(t, c, "$iothub/twin/GET/?$rid=2", []byte(" ")); status != 200 || string(body) != `{"desired":{"$version":1},"reported":{"rate":5,"$version":2}}` {
		t.Fatalf("module twin: %d %s", status, body)
	}
	// The device's own twin is untouched.
	tw := getTwin(t, h, dev.ID)
	if rep := tw["properties"].(map[string]any)["reported"].(map[string]any); rep["rate"] != nil {
		t.Fatalf("the module's patch reached the device twin: %v", rep)
	}
}

func TestDeviceModuleCommandForm(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	h.CreateDevice(t, "gw-2")
	var out, errb strings.Builder
	code := cli.Main(context.Background(), []string{"device", "module", "create", "gw-2", "m1", "--json",
		"--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), `"moduleId": "m1"`) {
		t.Fatalf("ferry device module create: %d %s %s", code, out.String(), errb.String())
	}
}

func TestModuleTwinNeedsModule(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "gw-3")
	ctx := context.Background()
	var out, errb strings.Builder
	// A twin of a module that does not exist is not found, and is not created.
	code := cli.Main(ctx, []string{"twin", "show", dev.ID, "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &out, &errb)
	if code != 0 {
		t.Fatalf("device twin: %d %s", code, errb.String())
	}
	if _, err := h.Client.CreateModule(ctx, registry.Module{DeviceID: dev.ID, ModuleID: "real"}); err != nil {
		t.Fatal(err)
	}
	for _, mid := range []string{"ghost", "real"} {
		_, err := h.Client.ModuleTwin(ctx, dev.ID, mid)
		if mid == "ghost" && !fault.Is(err, fault.NotFound) {
			t.Fatalf("twin of an unregistered module: %v, want not found", err)
		}
		if mid == "real" && err != nil {
			t.Fatalf("twin of a registered module: %v", err)
		}
	}
}
