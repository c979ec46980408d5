package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/twin"
)

// TwinStore is what the twin suite needs: twins belong to registered
// devices, so the suite registers them through the same store.
type TwinStore interface {
	twin.Store
	registry.Store
}

// RunTwin runs the twin.Store conformance tests. open must return a new,
// empty store for each call.
func RunTwin(t *testing.T, open func(t *testing.T) TwinStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st TwinStore)
	}{
		{"UnknownDevice", testTwinUnknownDevice},
		{"Empty", testTwinEmpty},
		{"UpdateRoundTrip", testTwinUpdateRoundTrip},
		{"FailedUpdateWritesNothing", testTwinFailedUpdate},
		{"NoChangeWritesNothing", testTwinNoChange},
		{"ModulesApart", testTwinModulesApart},
		{"SerializedUpdates", testTwinSerialized},
		{"HistoryRange", testTwinHistoryRange},
		{"DeleteTwins", testTwinDelete},
		{"DeviceDeleteRemovesTwins", testTwinDeviceDelete},
		{"Batch", testTwinBatch},
		{"BatchMany", testTwinBatchMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// addDevice registers a device for twin tests.
func addDevice(t *testing.T, st TwinStore, id string) {
	t.Helper()
	must(t, st.CreateDevice(t.Context(), newDevice(id)))
}

// diffTwin returns "" if got equals want, comparing times as instants.
func diffTwin(got, want *twin.Twin) string {
	if got == nil || want == nil {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	g, w := *got, *want
	if !g.UpdatedAt.Equal(w.UpdatedAt) {
		return fmt.Sprintf("UpdatedAt = %v, want %v", g.UpdatedAt, w.UpdatedAt)
	}
	g.UpdatedAt, w.UpdatedAt = time.Time{}, time.Time{}
	if reflect.DeepEqual(g, w) {
		return ""
	}
	gj, _ := json.MarshalIndent(textTwin(g), "", "  ")
	wj, _ := json.MarshalIndent(textTwin(w), "", "  ")
	return fmt.Sprintf("got:\n%s\nwant:\n%s", gj, wj)
}

// textTwin shows a twin's JSON fields as text in failure messages.
func textTwin(t twin.Twin) map[string]any {
	return map[string]any{"etag": t.ETag, "version": t.Version, "tags": string(t.Tags), "tagsVersion": t.TagsVersion,
		"desired": string(t.Desired.Doc), "desiredMeta": string(t.Desired.Metadata), "desiredVersion": t.Desired.Version,
		"reported": string(t.Reported.Doc), "reportedMeta": string(t.Reported.Metadata), "reportedVersion": t.Reported.Version}
}

// changed is an UpdateTwin function that sets every field of the twin from
// seed and returns one reported change.
func changed(seed int, at time.Time) (func(t *twin.Twin) ([]twin.Change, error), *twin.Twin) {
	var want *twin.Twin
	fn := func(t *twin.Twin) ([]twin.Change, error) {
		t.Version++
		t.ETag = twin.ETag(t.Version)
		t.Tags = json.RawMessage(fmt.Sprintf(`{"site":"s%d"}`, seed))
		t.TagsVersion++
		t.Desired = twin.Properties{Doc: json.RawMessage(fmt.Sprintf(`{"rate":%d}`, seed)),
			Metadata: json.RawMessage(`{"$lastUpdated":"x","$lastUpdatedVersion":2}`), Version: t.Desired.Version + 1}
		t.Reported = twin.Properties{Doc: json.RawMessage(fmt.Sprintf(`{"temp":%d.5,"name":"é\"<>"}`, seed)),
			Metadata: json.RawMessage(`{"$lastUpdated":"y"}`), Version: t.Reported.Version + 1}
		t.UpdatedAt = at
		c := twin.Change{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Side: twin.Reported,
			Version: t.Reported.Version, TwinVersion: t.Version, Time: at, Source: "device",
			Patch: json.RawMessage(fmt.Sprintf(`{"temp":%d.5}`, seed))}
		cp := *t
		want = &cp
		return []twin.Change{c}, nil
	}
	return fn, want
}

func testTwinUnknownDevice(t *testing.T, st TwinStore) {
	ctx := t.Context()
	_, err := st.GetTwin(ctx, "nobody", "")
	wantKind(t, err, fault.NotFound, "DeviceNotFound")
	called := false
	err = st.UpdateTwin(ctx, "nobody", "m1", func(*twin.Twin) ([]twin.Change, error) {
		called = true
		return nil, nil
	})
	wantKind(t, err, fault.NotFound, "DeviceNotFound")
	if called {
		t.Error("UpdateTwin called fn for an unknown device")
	}
	must(t, st.DeleteTwins(ctx, "nobody"))
}

func testTwinEmpty(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	for _, m := range []string{"", "m1"} {
		got, err := st.GetTwin(t.Context(), "d1", m)
		must(t, err)
		if d := diffTwin(got, twin.Empty("d1", m)); d != "" {
			t.Errorf("module %q: fresh twin: %s", m, d)
		}
	}
	cs, err := st.TwinHistory(t.Context(), "d1", "", twin.HistoryQuery{})
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("fresh twin has history %v", cs)
	}
}

func testTwinUpdateRoundTrip(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	ctx := t.Context()
	for i, m := range []string{"", "m1", ""} {
		fn, _ := changed(i, base.Add(time.Duration(i)*time.Second))
		var want *twin.Twin
		must(t, st.UpdateTwin(ctx, "d1", m, func(tw *twin.Twin) ([]twin.Change, error) {
			cs, err := fn(tw)
			want = tw
			return cs, err
		}))
		got, err := st.GetTwin(ctx, "d1", m)
		must(t, err)
		if d := diffTwin(got, want); d != "" {
			t.Errorf("update %d: %s", i, d)
		}
	}
	cs, err := st.TwinHistory(ctx, "d1", "", twin.HistoryQuery{})
	must(t, err)
	want := []twin.Change{
		{DeviceID: "d1", Side: twin.Reported, Version: 2, TwinVersion: 2, Time: base, Source: "device", Patch: json.RawMessage(`{"temp":0.5}`)},
		{DeviceID: "d1", Side: twin.Reported, Version: 3, TwinVersion: 3, Time: base.Add(2 * time.Second), Source: "device", Patch: json.RawMessage(`{"temp":2.5}`)},
	}
	checkChanges(t, cs, want)
}

// checkChanges compares history entries, times as instants.
func checkChanges(t *testing.T, got, want []twin.Change) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("history has %d changes, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) {
			t.Errorf("change %d: time %v, want %v", i, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if string(g.Patch) != string(w.Patch) {
			t.Errorf("change %d: patch %s, want %s", i, g.Patch, w.Patch)
		}
		g.Patch, w.Patch = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("change %d = %+v, want %+v", i, g, w)
		}
	}
}

func testTwinFailedUpdate(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	ctx := t.Context()
	fn, _ := changed(1, base)
	must(t, st.UpdateTwin(ctx, "d1", "", fn))
	before, err := st.GetTwin(ctx, "d1", "")
	must(t, err)
	boom := errors.New("boom")
	fn2, _ := changed(2, base.Add(time.Second))
	err = st.UpdateTwin(ctx, "d1", "", func(tw *twin.Twin) ([]twin.Change, error) {
		fn2(tw) // modify in place, then fail
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateTwin = %v, want fn's error", err)
	}
	after, err := st.GetTwin(ctx, "d1", "")
	must(t, err)
	if d := diffTwin(after, before); d != "" {
		t.Errorf("failed update changed the twin: %s", d)
	}
	cs, err := st.TwinHistory(ctx, "d1", "", twin.HistoryQuery{})
	must(t, err)
	if len(cs) != 1 {
		t.Errorf("failed update left history: %+v", cs)
	}
}
