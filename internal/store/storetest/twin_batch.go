package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

// bump is an update function that adds one reported change with patch
// {"n":n}, keeping n in the reported document.
func bump(n int) func(t *twin.Twin) ([]twin.Change, error) {
	return func(tw *twin.Twin) ([]twin.Change, error) {
		tw.Version++
		tw.Reported.Version++
		tw.Reported.Doc = json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))
		tw.UpdatedAt = base
		return []twin.Change{{Side: twin.Reported, Version: tw.Reported.Version, TwinVersion: tw.Version,
			Time: base, Source: "device", Patch: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}}, nil
	}
}

// testTwinBatch checks UpdateTwins: updates apply in order, several to one
// twin each see the previous one, and a failing update (which leaves its
// copy of the twin half-changed) or an unknown device fails alone.
func testTwinBatch(t *testing.T, st TwinStore) {
	bs, ok := st.(twin.BatchStore)
	if !ok {
		t.Skip("the store does not implement twin.BatchStore")
	}
	addDevice(t, st, "d1")
	addDevice(t, st, "d2")
	ctx := t.Context()
	boom := errors.New("boom")
	errs, err := bs.UpdateTwins(ctx, []twin.Update{
		{DeviceID: "d1", Fn: bump(1)},
		{DeviceID: "d2", ModuleID: "m1", Fn: bump(10)}, // a module twin without a row yet
		{DeviceID: "d1", Fn: func(tw *twin.Twin) ([]twin.Change, error) {
			tw.Version = 99 // half-changed, then failed: must not be seen
			tw.Reported.Doc = json.RawMessage(`{"n":"bad"}`)
			return nil, boom
		}},
		{DeviceID: "nobody", Fn: bump(5)},
		{DeviceID: "d1", Fn: bump(2)},
		{DeviceID: "d2", Fn: func(*twin.Twin) ([]twin.Change, error) { return nil, nil }}, // no change
		{DeviceID: "d1", Fn: bump(3)},
	})
	must(t, err)
	if len(errs) != 7 {
		t.Fatalf("UpdateTwins returned %d errors for 7 updates", len(errs))
	}
	for i, want := range []error{nil, nil, boom, nil, nil, nil, nil} {
		switch {
		case i == 3:
			wantKind(t, errs[i], fault.NotFound, "DeviceNotFound")
		case want == nil && errs[i] != nil:
			t.Errorf("update %d: %v", i, errs[i])
		case want != nil && !errors.Is(errs[i], want):
			t.Errorf("update %d: err %v, want %v", i, errs[i], want)
		}
	}
	check := func(dev, mod, doc string, version int64, wantHist []int64) {
		t.Helper()
		got, err := st.GetTwin(ctx, dev, mod)
		must(t, err)
		if string(got.Reported.Doc) != doc || got.Version != version || got.Reported.Version != version {
			t.Errorf("%s/%s: reported %s, version %d/%d; want %s, %d", dev, mod, got.Reported.Doc,
				got.Version, got.Reported.Version, doc, version)
		}
		cs, err := st.TwinHistory(ctx, dev, mod, twin.HistoryQuery{})
		must(t, err)
		var vs []int64
		for _, c := range cs {
			vs = append(vs, c.TwinVersion)
		}
		if !equalInts(vs, wantHist) {
			t.Errorf("%s/%s: history versions %v, want %v", dev, mod, vs, wantHist)
		}
	}
	check("d1", "", `{"n":3}`, 4, []int64{2, 3, 4})
	check("d2", "m1", `{"n":10}`, 2, []int64{2})
	check("d2", "", `{}`, 1, nil)

	// A batch of failures only writes nothing and is not an error.
	errs, err = bs.UpdateTwins(ctx, []twin.Update{{DeviceID: "d1", Fn: func(*twin.Twin) ([]twin.Change, error) { return nil, boom }}})
	must(t, err)
	if !errors.Is(errs[0], boom) {
		t.Errorf("err %v, want %v", errs[0], boom)
	}
	check("d1", "", `{"n":3}`, 4, []int64{2, 3, 4})
}

// testTwinBatchMany checks a batch over many twins, several updates each,
// which a store may apply concurrently across twins.
func testTwinBatchMany(t *testing.T, st TwinStore) {
	bs, ok := st.(twin.BatchStore)
	if !ok {
		t.Skip("the store does not implement twin.BatchStore")
	}
	const devices, rounds = 40, 3
	for d := range devices {
		addDevice(t, st, fmt.Sprintf("d%02d", d))
	}
	ctx := t.Context()
	var us []twin.Update
	for r := range rounds {
		for d := range devices {
			us = append(us, twin.Update{DeviceID: fmt.Sprintf("d%02d", d), Fn: bump(r*100 + d)})
		}
	}
	errs, err := bs.UpdateTwins(ctx, us)
	must(t, err)
	for i, err := range errs {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	for d := range devices {
		got, err := st.GetTwin(ctx, fmt.Sprintf("d%02d", d), "")
		must(t, err)
		if want := fmt.Sprintf(`{"n":%d}`, (rounds-1)*100+d); string(got.Reported.Doc) != want || got.Version != rounds+1 {
			t.Errorf("d%02d: reported %s version %d, want %s version %d", d, got.Reported.Doc, got.Version, want, rounds+1)
		}
	}
}
