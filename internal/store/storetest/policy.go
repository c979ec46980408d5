package storetest

import (
	"reflect"
	"testing"

	"github.com/ferry-iot/ferry/internal/registry"
)

func testPolicies(t *testing.T, st registry.Store) {
	ctx := t.Context()
	ps, err := st.ListPolicies(ctx)
	must(t, err)
	if len(ps) != 0 {
		t.Fatalf("new store has %d policies, want none", len(ps))
	}
	owner := registry.Policy{KeyName: "iothubowner", PrimaryKey: "cHJpbWFyeQ==", SecondaryKey: "c2Vjb25kYXJ5",
		Rights: []registry.Right{registry.RegistryRead, registry.RegistryWrite, registry.ServiceConnect, registry.DeviceConnect}}
	device := registry.Policy{KeyName: "device", PrimaryKey: "ZGV2aWNl", SecondaryKey: "ZGV2aWNlMg==",
		Rights: []registry.Right{registry.DeviceConnect}}
	must(t, st.PutPolicy(ctx, owner))
	must(t, st.PutPolicy(ctx, device))
	check := func(want ...registry.Policy) {
		t.Helper()
		got, err := st.ListPolicies(ctx)
		must(t, err)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ListPolicies =\n%+v\nwant (ordered by name)\n%+v", got, want)
		}
	}
	check(device, owner)

	// Put replaces keys and rights of an existing name.
	device.PrimaryKey = "cm9sbGVk"
	device.Rights = []registry.Right{registry.DeviceConnect, registry.ServiceConnect}
	must(t, st.PutPolicy(ctx, device))
	check(device, owner)
}
