package storetest

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/twin"
)

func testTwinNoChange(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	ctx := t.Context()
	must(t, st.UpdateTwin(ctx, "d1", "m1", func(tw *twin.Twin) ([]twin.Change, error) {
		tw.Version = 99 // without changes nothing is stored
		return nil, nil
	}))
	got, err := st.GetTwin(ctx, "d1", "m1")
	must(t, err)
	if d := diffTwin(got, twin.Empty("d1", "m1")); d != "" {
		t.Errorf("an update without changes wrote: %s", d)
	}
}

func testTwinModulesApart(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	addDevice(t, st, "d2")
	ctx := t.Context()
	fn, _ := changed(1, base)
	must(t, st.UpdateTwin(ctx, "d1", "m1", fn))
	for _, k := range [][2]string{{"d1", ""}, {"d1", "m2"}, {"d2", "m1"}} {
		got, err := st.GetTwin(ctx, k[0], k[1])
		must(t, err)
		if d := diffTwin(got, twin.Empty(k[0], k[1])); d != "" {
			t.Errorf("%v changed by an update of d1/m1: %s", k, d)
		}
		cs, err := st.TwinHistory(ctx, k[0], k[1], twin.HistoryQuery{})
		must(t, err)
		if len(cs) != 0 {
			t.Errorf("%v has history of d1/m1: %+v", k, cs)
		}
	}
}

func testTwinSerialized(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	ctx := t.Context()
	const workers, each = 8, 10
	errs := make(chan error, workers*each)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < each; i++ {
				errs <- st.UpdateTwin(ctx, "d1", "", func(tw *twin.Twin) ([]twin.Change, error) {
					tw.Version++
					tw.Reported.Version++
					return []twin.Change{{Side: twin.Reported, Version: tw.Reported.Version, TwinVersion: tw.Version,
						Time: base, Source: "device", Patch: []byte(`{}`)}}, nil
				})
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(errs)
	must(t, errNil(errs))
	got, err := st.GetTwin(ctx, "d1", "")
	must(t, err)
	if want := int64(1 + workers*each); got.Version != want || got.Reported.Version != want {
		t.Errorf("after %d concurrent updates: version %d, reported %d; want %d", workers*each, got.Version, got.Reported.Version, want)
	}
	cs, err := st.TwinHistory(ctx, "d1", "", twin.HistoryQuery{})
	must(t, err)
	if len(cs) != workers*each {
		t.Errorf("history has %d changes, want %d", len(cs), workers*each)
	}
}

func testTwinHistoryRange(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	ctx := t.Context()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	for i := 1; i <= 5; i++ {
		must(t, st.UpdateTwin(ctx, "d1", "", func(tw *twin.Twin) ([]twin.Change, error) {
			tw.Version++
			tw.TagsVersion++
			tw.Desired.Version++
			tw.UpdatedAt = at(i)
			// Two sides in one twin version, as a service PATCH of tags and desired.
			return []twin.Change{
				{Side: twin.Tags, Version: tw.TagsVersion, TwinVersion: tw.Version, Time: at(i), Source: "service:owner", Patch: []byte(`{"a":1}`)},
				{Side: twin.Desired, Version: tw.Desired.Version, TwinVersion: tw.Version, Time: at(i), Source: "service:owner", Patch: []byte(`{"b":2}`)},
			}, nil
		}))
	}
	versions := func(q twin.HistoryQuery) []int64 {
		t.Helper()
		cs, err := st.TwinHistory(ctx, "d1", "", q)
		must(t, err)
		var vs []int64
		for i, c := range cs {
			if i > 0 && c.TwinVersion < cs[i-1].TwinVersion {
				t.Errorf("history out of order: %+v", cs)
			}
			vs = append(vs, c.TwinVersion)
		}
		return vs
	}
	tests := []struct {
		name string
		q    twin.HistoryQuery
		want []int64
	}{
		{"all", twin.HistoryQuery{}, []int64{2, 2, 3, 3, 4, 4, 5, 5, 6, 6}},
		{"from inclusive", twin.HistoryQuery{From: at(4)}, []int64{5, 5, 6, 6}},
		{"to exclusive", twin.HistoryQuery{To: at(2)}, []int64{2, 2}},
		{"range", twin.HistoryQuery{From: at(2), To: at(4)}, []int64{3, 3, 4, 4}},
		{"limit", twin.HistoryQuery{From: at(2), Limit: 3}, []int64{3, 3, 4}},
		{"empty", twin.HistoryQuery{From: at(6)}, nil},
	}
	for _, tt := range tests {
		if got := versions(tt.q); !equalInts(got, tt.want) {
			t.Errorf("%s: twin versions %v, want %v", tt.name, got, tt.want)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testTwinDelete(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	addDevice(t, st, "d2")
	ctx := t.Context()
	for _, k := range [][2]string{{"d1", ""}, {"d1", "m1"}, {"d2", ""}} {
		fn, _ := changed(1, base)
		must(t, st.UpdateTwin(ctx, k[0], k[1], fn))
	}
	must(t, st.DeleteTwins(ctx, "d1"))
	for _, m := range []string{"", "m1"} {
		got, err := st.GetTwin(ctx, "d1", m)
		must(t, err) // d1 is still registered: its twins are empty again
		if d := diffTwin(got, twin.Empty("d1", m)); d != "" {
			t.Errorf("d1/%s after DeleteTwins: %s", m, d)
		}
		cs, err := st.TwinHistory(ctx, "d1", m, twin.HistoryQuery{})
		must(t, err)
		if len(cs) != 0 {
			t.Errorf("d1/%s history after DeleteTwins: %+v", m, cs)
		}
	}
	got, err := st.GetTwin(ctx, "d2", "")
	must(t, err)
	if got.Version != 2 {
		t.Errorf("d2 twin version %d after deleting d1's twins, want 2", got.Version)
	}
}

func testTwinDeviceDelete(t *testing.T, st TwinStore) {
	addDevice(t, st, "d1")
	ctx := t.Context()
	fn, _ := changed(1, base)
	must(t, st.UpdateTwin(ctx, "d1", "m1", fn))
	must(t, st.DeleteDevice(ctx, "d1", "*"))
	// A new device with the old id starts with fresh twins and no history.
	addDevice(t, st, "d1")
	got, err := st.GetTwin(ctx, "d1", "m1")
	must(t, err)
	if d := diffTwin(got, twin.Empty("d1", "m1")); d != "" {
		t.Errorf("re-created device inherited its twin: %s", d)
	}
	cs, err := st.TwinHistory(ctx, "d1", "m1", twin.HistoryQuery{})
	must(t, err)
	if len(cs) != 0 {
		t.Errorf("re-created device inherited history: %+v", cs)
	}
}
