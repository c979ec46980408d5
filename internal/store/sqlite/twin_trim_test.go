package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/twin"
)

// trimClock is a settable clock for the twin service.
type trimClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *trimClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *trimClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// batchSpy is the store with a record of what each trim transaction
// deleted.
type batchSpy struct {
	*sqlite.DB
	mu      sync.Mutex
	deletes []int64
}

func (s *batchSpy) TrimTwinHistory(ctx context.Context, deviceID, moduleID string, prev int64, base *twin.Twin) (int64, error) {
	n, err := s.DB.TrimTwinHistory(ctx, deviceID, moduleID, prev, base)
	s.mu.Lock()
	s.deletes = append(s.deletes, n)
	s.mu.Unlock()
	return n, err
}

type trimRig struct {
	t   *testing.T
	db  *sqlite.DB
	spy *batchSpy
	svc *twin.Service
	clk *trimClock
}

func newTrimRig(t *testing.T, devices ...string) *trimRig {
	t.Helper()
	db := mustOpen(t, filepath.Join(t.TempDir(), "ferry.db"))
	r := &trimRig{t: t, db: db, spy: &batchSpy{DB: db}, clk: &trimClock{t: t0}}
	r.svc = twin.NewService(r.spy, twin.Options{Now: r.clk.now})
	t.Cleanup(func() { r.svc.Close(context.Background()) })
	for _, id := range devices {
		d := &registry.Device{DeviceID: id, GenerationID: "g", ETag: "e",
			ConnectionState: registry.Disconnected, Status: registry.StatusEnabled,
			Authentication: registry.Authentication{Type: registry.AuthSAS, SymmetricKey: &registry.SymmetricKey{
				PrimaryKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", SecondaryKey: "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="}},
			ParentScopes: []string{}}
		if err := db.CreateDevice(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// change makes n changes of one twin a minute apart from the clock on:
// reported patches, and every fifth a service PATCH of tags and desired
// (two history rows of one version). It returns the times of the changes.
func (r *trimRig) change(device, module string, n int) []time.Time {
	r.t.Helper()
	ctx := r.t.Context()
	var ts []time.Time
	for i := range n {
		r.clk.set(r.clk.now().Add(time.Minute))
		var err error
		if i%5 == 4 {
			_, _, err = r.svc.PatchDesired(ctx, device, module,
				fmt.Appendf(nil, `{"tags":{"i":%d},"properties":{"desired":{"i":%d,"k%d":true}}}`, i, i, i%7), "*")
		} else {
			_, err = r.svc.PatchReported(ctx, device, module, fmt.Appendf(nil, `{"i":%d,"r%d":%d}`, i, i%3, i))
		}
		if err != nil {
			r.t.Fatal(err)
		}
		ts = append(ts, r.clk.now())
	}
	return ts
}

// history returns all kept changes of a twin.
func (r *trimRig) history(device, module string) []twin.Change {
	r.t.Helper()
	cs, err := r.db.TwinHistory(r.t.Context(), device, module, twin.HistoryQuery{})
	if err != nil {
		r.t.Fatal(err)
	}
	return cs
}

// render is a twin in the service's JSON form, for comparisons.
func render(t *testing.T, tw *twin.Twin) string {
	t.Helper()
	b, err := twin.Render(tw, twin.DeviceFacts{})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// asOfAll reads the twin as of each time and half a minute after it.
func (r *trimRig) asOfAll(device, module string, times []time.Time) map[time.Time]string {
	r.t.Helper()
	out := map[time.Time]string{}
	for _, at := range times {
		for _, q := range []time.Time{at, at.Add(30 * time.Second)} {
			tw, err := r.svc.AsOf(r.t.Context(), device, module, q)
			if err != nil {
				r.t.Fatalf("as of %s: %v", q, err)
			}
			out[q] = render(r.t, tw)
		}
	}
	return out
}

// checkAsOf checks the "as of" reads after a trim: times from the oldest
// readable on answer as before the trim, earlier ones are refused naming it.
func (r *trimRig) checkAsOf(device, module string, before map[time.Time]string, oldest time.Time) {
	r.t.Helper()
	var answered, refused int
	for at, want := range before {
		tw, err := r.svc.AsOf(r.t.Context(), device, module, at)
		if at.Before(oldest) {
			if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), oldest.UTC().Format(time.RFC3339Nano)) {
				r.t.Errorf("as of %s, before the oldest kept %s: %v, want a refusal naming it", at, oldest, err)
			}
			refused++
			continue
		}
		if err != nil {
			r.t.Fatalf("as of %s: %v", at, err)
		}
		if got := render(r.t, tw); got != want {
			r.t.Errorf("as of %s after trimming:\n got %s\nwant %s", at, got, want)
		}
		answered++
	}
	if answered == 0 || refused == 0 {
		r.t.Errorf("%d reads answered, %d refused: the test should have both", answered, refused)
	}
}

// versions returns the distinct twin versions of cs in order.
func versions(cs []twin.Change) []int64 {
	var vs []int64
	for _, c := range cs {
		if len(vs) == 0 || vs[len(vs)-1] != c.TwinVersion {
			vs = append(vs, c.TwinVersion)
		}
	}
	return vs
}

// The count bound keeps each twin's newest changes (versions, whatever
// their rows), leaves twins within it alone, and "as of" reads over the
// kept range answer as before while earlier times are refused.
func TestTrimTwinHistoryCount(t *testing.T) {
	r := newTrimRig(t, "busy", "quiet")
	ctx := t.Context()
	times := r.change("busy", "", 40)
	r.change("quiet", "", 8)
	before := r.asOfAll("busy", "", times)
	cur, _ := r.svc.Get(ctx, "busy", "")
	quietBefore := r.history("quiet", "")

	n, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxChanges: 10})
	if err != nil {
		t.Fatal(err)
	}
	kept := r.history("busy", "")
	vs := versions(kept)
	if len(vs) != 10 || vs[0] != cur.Version-9 || vs[9] != cur.Version {
		t.Fatalf("kept versions %v, want the 10 newest up to %d", vs, cur.Version)
	}
	if want := int64(30 + 6); n != want { // 30 versions, 6 of them two rows
		t.Errorf("trimmed %d rows, want %d", n, want)
	}
	if got := r.history("quiet", ""); len(got) != len(quietBefore) {
		t.Errorf("the twin within the bound lost changes: %d of %d kept", len(got), len(quietBefore))
	}
	if hs, _ := r.svc.HistoryStart(ctx, "quiet", ""); !hs.IsZero() {
		t.Errorf("history start of the untrimmed twin = %s, want none", hs)
	}
	// The newest trimmed change is the 30th: reads from its time on answer.
	oldest := times[29]
	if hs, err := r.svc.HistoryStart(ctx, "busy", ""); err != nil || !hs.Equal(oldest) {
		t.Errorf("history start = %s, %v; want %s", hs, err, oldest)
	}
	r.checkAsOf("busy", "", before, oldest)
	if now, _ := r.svc.Get(ctx, "busy", ""); render(t, now) != render(t, cur) {
		t.Error("trimming changed the current twin")
	}
	// A second trim has nothing to do; the twin grows on from its base.
	if n, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxChanges: 10}); n != 0 || err != nil {
		t.Errorf("second trim: %d, %v", n, err)
	}
	more := r.change("busy", "", 5)
	if _, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxChanges: 10}); err != nil {
		t.Fatal(err)
	}
	if vs := versions(r.history("busy", "")); len(vs) != 10 {
		t.Errorf("after more changes and a trim: %d versions kept, want 10", len(vs))
	}
	after := r.asOfAll("busy", "", more)
	after[times[0]] = "" // refused
	r.checkAsOf("busy", "", after, times[34])
}

// The age bound trims what is older than the cutoff, in twins of any
// count, and nothing younger.
func TestTrimTwinHistoryAge(t *testing.T) {
	r := newTrimRig(t, "old", "young")
	ctx := t.Context()
	times := r.change("old", "", 30) // t0+1m .. t0+30m
	r.clk.set(t0.Add(time.Hour))
	r.change("young", "", 5) // t0+61m ..
	before := r.asOfAll("old", "", times)
	youngBefore := r.history("young", "")

	// At t0+80m with a 60 minute age: changes before t0+20m go.
	r.clk.set(t0.Add(80 * time.Minute))
	cutoff := t0.Add(20 * time.Minute)
	if _, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	kept := r.history("old", "")
	if len(kept) == 0 || kept[0].Time.Before(cutoff) || !kept[0].Time.Equal(cutoff) {
		t.Fatalf("oldest kept change at %v, want the one at the cutoff %s", kept[0].Time, cutoff)
	}
	if got := r.history("young", ""); len(got) != len(youngBefore) {
		t.Errorf("young twin: %d of %d changes kept", len(got), len(youngBefore))
	}
	r.checkAsOf("old", "", before, times[18]) // the 19th change, at t0+19m, is the newest trimmed

	// Once every change is older than the age, the base is the current
	// twin: reads from its time on answer, earlier ones are refused.
	cur, _ := r.svc.Get(ctx, "old", "")
	r.clk.set(t0.Add(24 * time.Hour))
	if _, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := r.history("old", ""); len(got) != 0 {
		t.Errorf("%d changes older than the age kept", len(got))
	}
	tw, err := r.svc.AsOf(ctx, "old", "", cur.UpdatedAt.Add(time.Hour))
	if err != nil || render(t, tw) != render(t, cur) {
		t.Errorf("as of after the last change: %v", err)
	}
	if _, err := r.svc.AsOf(ctx, "old", "", cur.UpdatedAt.Add(-time.Second)); !fault.Is(err, fault.Invalid) {
		t.Errorf("as of before the last change with all history trimmed: %v, want a refusal", err)
	}
}

// A long history is trimmed in transactions of at most twin.TrimBatch
// rows, each ending on a whole version, and the base they leave replays
// exactly.
func TestTrimTwinHistoryBatches(t *testing.T) {
	r := newTrimRig(t, "chatty")
	ctx := t.Context()
	// Three changes of one row first, so that the 500th row is the first
	// of a two-row version: the first batch must stop before it.
	r.change("chatty", "", 3)
	times := r.change("chatty", "", 1300) // 1560 rows more
	sample := []time.Time{}
	for i := 1000; i < len(times); i += 37 {
		sample = append(sample, times[i])
	}
	sample = append(sample, times[100], times[500])
	before := r.asOfAll("chatty", "", sample)
	n, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxChanges: 250})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, d := range r.spy.deletes {
		if d > twin.TrimBatch {
			t.Errorf("one transaction deleted %d rows, more than %d", d, twin.TrimBatch)
		}
		sum += d
	}
	if len(r.spy.deletes) < 3 || sum != n {
		t.Errorf("%d transactions deleted %d rows (reported %d); want several adding up", len(r.spy.deletes), sum, n)
	}
	if vs := versions(r.history("chatty", "")); len(vs) != 250 {
		t.Errorf("%d versions kept, want 250", len(vs))
	}
	r.checkAsOf("chatty", "", before, times[1300-251])
}

// A trim that finds the base moved (another node trimmed) changes nothing.
func TestTrimTwinHistoryConflict(t *testing.T) {
	r := newTrimRig(t, "d1")
	ctx := t.Context()
	r.change("d1", "", 10)
	base, cs, err := r.db.TwinHistoryFromBase(ctx, "d1", "", twin.HistoryQuery{})
	if err != nil || base != nil || len(cs) == 0 {
		t.Fatalf("before any trim: base %v, %d changes, %v", base, len(cs), err)
	}
	if _, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxChanges: 5}); err != nil {
		t.Fatal(err)
	}
	stale := twin.Empty("d1", "")
	stale.Version = 8
	kept := r.history("d1", "")
	if _, err := r.db.TrimTwinHistory(ctx, "d1", "", 0, stale); !errors.Is(err, twin.ErrTrimConflict) {
		t.Errorf("trim from a stale base: %v, want a conflict", err)
	}
	if got := r.history("d1", ""); len(got) != len(kept) {
		t.Errorf("a refused trim deleted %d rows", len(kept)-len(got))
	}
}

// The base goes with its module and with its device.
func TestTrimTwinHistoryBaseDeleted(t *testing.T) {
	r := newTrimRig(t, "d1")
	ctx := t.Context()
	m := &registry.Module{DeviceID: "d1", ModuleID: "m1", GenerationID: "g", ETag: "e",
		ConnectionState: registry.Disconnected, ConnectionStateUpdatedTime: t0,
		Authentication: registry.Authentication{Type: registry.AuthSAS, SymmetricKey: &registry.SymmetricKey{
			PrimaryKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", SecondaryKey: "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="}}}
	if err := r.db.CreateModule(ctx, m); err != nil {
		t.Fatal(err)
	}
	r.change("d1", "", 5)
	r.change("d1", "m1", 5)
	if _, err := r.svc.TrimHistory(ctx, twin.HistoryBound{MaxChanges: 2}); err != nil {
		t.Fatal(err)
	}
	bases := func() int {
		var n int
		rows, err := r.db.ReadQuery(ctx, `SELECT COUNT(*) FROM twin_history_base`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	if n := bases(); n != 2 {
		t.Fatalf("%d bases after trimming a device and a module twin, want 2", n)
	}
	if err := r.db.DeleteModule(ctx, "d1", "m1", "*"); err != nil {
		t.Fatal(err)
	}
	if n := bases(); n != 1 {
		t.Errorf("%d bases after deleting the module, want 1", n)
	}
	if err := r.db.DeleteDevice(ctx, "d1", "*"); err != nil {
		t.Fatal(err)
	}
	if n := bases(); n != 0 {
		t.Errorf("%d bases after deleting the device, want 0", n)
	}
}

// The trim's statements are ranges of indexes, never scans of history.
func TestTrimTwinHistoryPlans(t *testing.T) {
	r := newTrimRig(t, "d1")
	r.change("d1", "", 3)
	for _, c := range []struct {
		stmt string
		args []any
		want string
	}{
		{sqlite.SQLTwinsChangedBefore, []any{"2026", 10}, "SEARCH twin_history USING COVERING INDEX twin_history_at (at<?)"},
		{sqlite.SQLTrimTwinHistory, []any{"d1", "", 0, 5}, "SEARCH twin_history USING PRIMARY KEY (device_id=? AND module_id=? AND twin_version>? AND twin_version<?)"},
		{sqlite.SQLTwinsOverCount, []any{"", "", 10, 100}, "SEARCH b USING INDEX sqlite_autoindex_twin_history_base_1 (device_id=? AND module_id=?)"},
	} {
		plan := explain(t, r.db, c.stmt, c.args)
		if !strings.Contains(plan, c.want) {
			t.Errorf("plan of %s:\n%s\nwant %s", c.stmt, plan, c.want)
		}
		if strings.Contains(plan, "SCAN twin_history") {
			t.Errorf("plan of %s scans history:\n%s", c.stmt, plan)
		}
	}
}
