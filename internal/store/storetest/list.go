package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ferry-iot/ferry/internal/registry"
)

func testListPaging(t *testing.T, st registry.Store) {
	ctx := t.Context()
	if ds, err := st.ListDevices(ctx, "", 10); err != nil || len(ds) != 0 {
		t.Fatalf("ListDevices on an empty store = %d devices, %v; want none", len(ds), err)
	}
	// Mixed case and punctuation: the order is byte order, so "B" < "a"
	// and "Z" < "_". (A PostgreSQL store needs COLLATE "C" for this.)
	var ids []string
	for i := range 21 {
		ids = append(ids, fmt.Sprintf("dev-%02d", i))
	}
	ids = append(ids, "B", "a", "Z", "_", "a.b", "a-b")
	want := slices.Clone(ids)
	slices.Sort(want)
	for _, i := range rand.Perm(len(ids)) { // insertion order must not matter
		must(t, st.CreateDevice(ctx, newDevice(ids[i])))
	}

	var got []string
	after := ""
	for page := 0; ; page++ {
		ds, err := st.ListDevices(ctx, after, 10)
		must(t, err)
		if len(ds) > 10 {
			t.Fatalf("page %d has %d devices, limit 10", page, len(ds))
		}
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			got = append(got, d.DeviceID)
		}
		after = ds[len(ds)-1].DeviceID
		if page > len(ids) {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged ids =\n%q\nwant\n%q", got, want)
	}

	// Listed devices are complete, not just ids.
	ds, err := st.ListDevices(ctx, "dev-04", 1)
	must(t, err)
	if len(ds) != 1 {
		t.Fatalf("ListDevices(after dev-04, 1) = %d devices", len(ds))
	}
	if diff := diffDevice(&ds[0], newDevice("dev-05")); diff != "" {
		t.Errorf("listed device:\n%s", diff)
	}
	// after need not be an existing id.
	ds, err = st.ListDevices(ctx, "dev-04x", 2)
	must(t, err)
	if len(ds) != 2 || ds[0].DeviceID != "dev-05" || ds[1].DeviceID != "dev-06" {
		t.Errorf("ListDevices(after dev-04x, 2) = %v, want dev-05, dev-06", idsOf(ds))
	}
}

func idsOf(ds []registry.Device) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.DeviceID)
	}
	return ids
}

func testCount(t *testing.T, st registry.Store) {
	ctx := t.Context()
	count := func() int {
		t.Helper()
		n, err := st.CountDevices(ctx)
		must(t, err)
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("count of empty store = %d", n)
	}
	for i := range 7 {
		must(t, st.CreateDevice(ctx, newDevice(fmt.Sprintf("c%d", i))))
	}
	if n := count(); n != 7 {
		t.Errorf("count = %d, want 7", n)
	}
	must(t, st.DeleteDevice(ctx, "c3", "*"))
	if n := count(); n != 6 {
		t.Errorf("count after delete = %d, want 6", n)
	}
}
