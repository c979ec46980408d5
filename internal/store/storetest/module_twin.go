package storetest

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

// testModuleDeviceDelete checks that deleting a device deletes its modules
// and their twins: a device re-created with the old id starts without them.
func testModuleDeviceDelete(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	must(t, st.CreateDevice(ctx, newDevice("d2")))
	must(t, st.CreateModule(ctx, newModule("d1", "m1")))
	must(t, st.CreateModule(ctx, newModule("d2", "m1")))
	fn, _ := changed(1, base)
	must(t, st.UpdateTwin(ctx, "d1", "m1", fn))
	fn2, _ := changed(2, base)
	must(t, st.UpdateTwin(ctx, "d2", "m1", fn2))
	want2, err := st.GetTwin(ctx, "d2", "m1")
	must(t, err)

	must(t, st.DeleteDevice(ctx, "d1", "*"))
	_, err = st.GetModule(ctx, "d1", "m1")
	wantKind(t, err, fault.NotFound, "ModuleNotFound")
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	list, err := st.ListModules(ctx, "d1")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("re-created device inherited %d modules", len(list))
	}
	got, err := st.GetTwin(ctx, "d1", "m1")
	must(t, err)
	if d := diffTwin(got, twin.Empty("d1", "m1")); d != "" {
		t.Errorf("re-created device inherited its module twin: %s", d)
	}
	// The other device's module and twin are untouched.
	if _, err := st.GetModule(ctx, "d2", "m1"); err != nil {
		t.Errorf("other device's module: %v", err)
	}
	got, err = st.GetTwin(ctx, "d2", "m1")
	must(t, err)
	if d := diffTwin(got, want2); d != "" {
		t.Errorf("other device's module twin changed: %s", d)
	}
}

// testModuleDeleteTwin checks that deleting a module deletes its twin and
// twin history, and leaves the device twin and other modules' twins alone.
func testModuleDeleteTwin(t *testing.T, st ModuleStore) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("d1")))
	must(t, st.CreateModule(ctx, newModule("d1", "m1")))
	must(t, st.CreateModule(ctx, newModule("d1", "m2")))
	fn, _ := changed(1, base)
	must(t, st.UpdateTwin(ctx, "d1", "m1", fn))
	fnDev, _ := changed(2, base)
	must(t, st.UpdateTwin(ctx, "d1", "", fnDev))
	fnM2, _ := changed(3, base)
	must(t, st.UpdateTwin(ctx, "d1", "m2", fnM2))
	wantDev, err := st.GetTwin(ctx, "d1", "")
	must(t, err)
	wantM2, err := st.GetTwin(ctx, "d1", "m2")
	must(t, err)

	must(t, st.DeleteModule(ctx, "d1", "m1", "*"))
	must(t, st.CreateModule(ctx, newModule("d1", "m1")))
	got, err := st.GetTwin(ctx, "d1", "m1")
	must(t, err)
	if d := diffTwin(got, twin.Empty("d1", "m1")); d != "" {
		t.Errorf("re-created module inherited its twin: %s", d)
	}
	cs, err := st.TwinHistory(ctx, "d1", "m1", twin.HistoryQuery{})
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("re-created module inherited twin history: %+v", cs)
	}
	for _, c := range []struct {
		module string
		want   *twin.Twin
	}{{"", wantDev}, {"m2", wantM2}} {
		got, err := st.GetTwin(ctx, "d1", c.module)
		must(t, err)
		if d := diffTwin(got, c.want); d != "" {
			t.Errorf("twin %q changed by a module delete: %s", c.module, d)
		}
	}
}
