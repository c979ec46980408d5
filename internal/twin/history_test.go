package twin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

// TestHistoryAndAsOf makes a series of changes of every kind, renders the
// twin after each, and checks that History lists them and that AsOf at each
// change's time reproduces the rendered twin exactly (metadata and etag
// included).
func TestHistoryAndAsOf(t *testing.T) {
	e := newEnv(t, "d1")
	ctx := twin.WithSource(t.Context(), "service:iothubowner")
	render := func(tw *twin.Twin) string {
		t.Helper()
		b, err := twin.Render(tw, twin.DeviceFacts{})
		must(t, err)
		return string(b)
	}
	fresh, err := e.svc.Get(ctx, "d1", "m1")
	must(t, err)
	type snap struct {
		at   time.Time
		twin string
	}
	var snaps []snap
	record := func() {
		tw, err := e.svc.Get(ctx, "d1", "m1")
		must(t, err)
		snaps = append(snaps, snap{tw.UpdatedAt, render(tw)})
	}
	steps := []func() error{
		func() error {
			_, err := e.svc.PatchReported(ctx, "d1", "m1", []byte(`{"a":{"b":1,"c":[1,2]}}`))
			return err
		},
		func() error {
			_, _, err := e.svc.PatchDesired(ctx, "d1", "m1", []byte(`{"tags":{"s":"A"},"properties":{"desired":{"x":{"y":1}}}}`), "")
			return err
		},
		func() error {
			_, err := e.svc.PatchReported(ctx, "d1", "m1", []byte(`{"a":{"b":null,"d":"e"}}`))
			return err
		},
		func() error {
			_, _, err := e.svc.Replace(ctx, "d1", "m1", []byte(`{"tags":{"s":"B"},"properties":{"desired":{"x":{"z":2}}}}`), "")
			return err
		},
		func() error { _, err := e.svc.PatchReported(ctx, "d1", "m1", []byte(`{"a":7}`)); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		record()
	}

	cs, err := e.svc.History(ctx, "d1", "m1", time.Time{}, time.Time{}, 0)
	must(t, err)
	var got []string
	for _, c := range cs {
		got = append(got, fmt.Sprintf("%d %s %d %s %s", c.TwinVersion, c.Side, c.Version, c.Source, c.Patch))
	}
	want := []string{
		`2 reported 2 service:iothubowner {"a":{"b":1,"c":[1,2]}}`,
		`3 desired 2 service:iothubowner {"x":{"y":1}}`,
		`3 tags 2 service:iothubowner {"s":"A"}`,
		`4 reported 3 service:iothubowner {"a":{"b":null,"d":"e"}}`,
		`5 desired 3 service:iothubowner {"x":{"y":null,"z":2}}`,
		`5 tags 3 service:iothubowner {"s":"B"}`,
		`6 reported 4 service:iothubowner {"a":7}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history:\n%q\nwant\n%q", got, want)
	}
	limited, err := e.svc.History(ctx, "d1", "m1", snaps[1].at, snaps[3].at, 0)
	must(t, err)
	if len(limited) != 3 || limited[0].TwinVersion != 3 || limited[2].TwinVersion != 4 {
		t.Errorf("History(from change 2, to change 4) = %+v, want versions 3, 3, 4", limited)
	}

	before, err := e.svc.AsOf(ctx, "d1", "m1", t0)
	must(t, err)
	if render(before) != render(fresh) {
		t.Errorf("AsOf before any change = %s, want the empty twin", render(before))
	}
	for i, s := range snaps {
		for _, at := range []time.Time{s.at, s.at.Add(500 * time.Microsecond)} {
			tw, err := e.svc.AsOf(ctx, "d1", "m1", at)
			must(t, err)
			if got := render(tw); got != s.twin {
				t.Errorf("AsOf(change %d at %v) =\n%s\nwant\n%s", i, at, got, s.twin)
			}
		}
	}
	if _, err := e.svc.AsOf(ctx, "nobody", "", t0); !fault.Is(err, fault.NotFound) {
		t.Errorf("AsOf of an unknown device = %v, want NotFound", err)
	}
	if _, err := e.svc.History(ctx, "d1", "", time.Time{}, time.Time{}, twin.MaxHistoryLimit+1); !fault.Is(err, fault.Invalid) {
		t.Errorf("History over the limit = %v, want Invalid", err)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, "d1", "d2")
	ctx := t.Context()
	for _, k := range [][2]string{{"d1", ""}, {"d1", "m1"}, {"d2", ""}} {
		_, err := e.svc.PatchReported(ctx, k[0], k[1], []byte(`{"a":1}`))
		must(t, err)
	}
	must(t, e.svc.Delete(ctx, "d1"))
	for _, m := range []string{"", "m1"} {
		tw, err := e.svc.Get(ctx, "d1", m)
		must(t, err)
		if tw.Version != 1 {
			t.Errorf("d1/%q version %d after Delete, want a fresh twin", m, tw.Version)
		}
	}
	tw, err := e.svc.Get(ctx, "d2", "")
	must(t, err)
	if tw.Version != 2 {
		t.Errorf("d2 version %d after deleting d1, want 2", tw.Version)
	}
}
