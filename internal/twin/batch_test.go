package twin_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/twin"
)

// gateStore holds every UpdateTwins call until the test releases it, so
// that patches pile up into one known batch, and records batch sizes.
type gateStore struct {
	*sqlite.DB
	entered chan int      // receives each batch's size as it starts
	release chan struct{} // one receive lets one batch proceed
}

func (g *gateStore) UpdateTwins(ctx context.Context, us []twin.Update) ([]error, error) {
	g.entered <- len(us)
	<-g.release
	return g.DB.UpdateTwins(ctx, us)
}

// newGated returns a Service over a gateStore on e's database.
func newGated(e *env, opts twin.Options) (*twin.Service, *gateStore) {
	g := &gateStore{DB: e.db, entered: make(chan int, 100), release: make(chan struct{})}
	opts.Now = e.clock.Now
	return twin.NewService(g, opts), g
}

// waitQueued waits until n patches wait for a batch.
func waitQueued(t *testing.T, s *twin.Service, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for twin.Queued(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d patches queued, want %d", twin.Queued(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPatchReportedConcurrent patches the same and different twins from
// many goroutines: every patch gets a distinct version, the versions of
// each twin are consecutive, and the final documents hold every patch.
func TestPatchReportedConcurrent(t *testing.T) {
	devs := []string{"d0", "d1", "d2"}
	e := newEnv(t, devs...)
	const workers, each = 24, 40
	ctx := t.Context()
	type twinKey struct{ dev, mod string }
	keyOf := func(w int) twinKey { return twinKey{devs[w%3], []string{"", "m1"}[w/3%2]} }
	versions := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			k := keyOf(w)
			for i := range each {
				v, err := e.svc.PatchReported(ctx, k.dev, k.mod, fmt.Appendf(nil, `{"w%d":{"i":%d},"last":null}`, w, i))
				if err != nil {
					t.Error(err)
					return
				}
				versions[w] = append(versions[w], v)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[twinKey]map[int64]bool{}
	for w, vs := range versions {
		k := keyOf(w)
		if seen[k] == nil {
			seen[k] = map[int64]bool{}
		}
		for i, v := range vs {
			if i > 0 && v <= vs[i-1] {
				t.Errorf("worker %d: version %d after %d", w, v, vs[i-1])
			}
			if seen[k][v] {
				t.Errorf("%v: version %d returned twice", k, v)
			}
			seen[k][v] = true
		}
	}
	for k, vs := range seen {
		n := int64(len(vs))
		for v := int64(2); v <= n+1; v++ { // versions start at 1; the first patch makes 2
			if !vs[v] {
				t.Errorf("%v: version %d missing among %d patches", k, v, n)
			}
		}
		tw, err := e.svc.Get(ctx, k.dev, k.mod)
		must(t, err)
		if tw.Reported.Version != n+1 || tw.Version != n+1 {
			t.Errorf("%v: reported version %d, twin version %d; want %d", k, tw.Reported.Version, tw.Version, n+1)
		}
		want := map[string]any{}
		for w := range workers {
			if keyOf(w) == k {
				want[fmt.Sprintf("w%d", w)] = map[string]any{"i": each - 1}
			}
		}
		wantJSON(t, fmt.Sprint(k), tw.Reported.Doc, string(mustJSON(t, want)))
		cs, err := e.svc.History(ctx, k.dev, k.mod, time.Time{}, time.Time{}, twin.MaxHistoryLimit)
		must(t, err)
		if int64(len(cs)) != n {
			t.Errorf("%v: %d history entries, want %d", k, len(cs), n)
		}
		for i, c := range cs {
			if c.TwinVersion != int64(i)+2 || c.Version != int64(i)+2 {
				t.Errorf("%v: history entry %d has versions %d/%d", k, i, c.TwinVersion, c.Version)
				break
			}
		}
	}
}

// TestPatchReportedBatchFailsAlone sends good patches, patches of the same
// twin, a patch that breaks the size limit and one for an unknown device
// as one batch: the bad ones fail with their own errors, the others commit.
func TestPatchReportedBatchFailsAlone(t *testing.T) {
	e := newEnv(t, "d1", "d2")
	svc, g := newGated(e, twin.Options{Limits: twin.Limits{MaxReported: 64}})
	ctx := t.Context()
	// The first patch takes the writer; the rest queue behind it.
	first := make(chan error, 1)
	go func() { _, err := svc.PatchReported(ctx, "d1", "", []byte(`{"a":0}`)); first <- err }()
	if n := <-g.entered; n != 1 {
		t.Fatalf("first batch has %d patches", n)
	}
	type result struct {
		v   int64
		err error
	}
	patches := []struct{ dev, patch string }{
		{"d1", `{"a":1}`},
		{"d1", `{"big":"` + fmt.Sprintf("%070d", 0) + `"}`}, // over 64 bytes once merged
		{"d2", `{"b":1}`},
		{"nobody", `{"c":1}`},
		{"d1", `{"a":2}`},
	}
	results := make([]chan result, len(patches))
	for i, p := range patches {
		results[i] = make(chan result, 1)
		go func() {
			v, err := svc.PatchReported(ctx, p.dev, "", []byte(p.patch))
			results[i] <- result{v, err}
		}()
		waitQueued(t, svc, i+1) // keep the queue in this order
	}
	g.release <- struct{}{}
	must(t, <-first)
	if n := <-g.entered; n != len(patches) {
		t.Fatalf("second batch has %d patches, want %d", n, len(patches))
	}
	g.release <- struct{}{}
	got := make([]result, len(patches))
	for i := range results {
		got[i] = <-results[i]
	}
	wantInvalid(t, got[1].err, "exceeds the 64-byte limit")
	if !fault.Is(got[3].err, fault.NotFound) {
		t.Errorf("unknown device: err %v, want NotFound", got[3].err)
	}
	for i, want := range map[int]int64{0: 3, 2: 2, 4: 4} {
		if got[i].err != nil || got[i].v != want {
			t.Errorf("patch %d: version %d, err %v; want version %d", i, got[i].v, got[i].err, want)
		}
	}
	tw, err := e.svc.Get(ctx, "d1", "")
	must(t, err)
	wantJSON(t, "d1 reported", tw.Reported.Doc, `{"a":2}`)
	tw, err = e.svc.Get(ctx, "d2", "")
	must(t, err)
	wantJSON(t, "d2 reported", tw.Reported.Doc, `{"b":1}`)
	must(t, svc.Close(ctx))
}

// TestPatchReportedDurable acknowledges patches from many goroutines,
// closes the service and the database, reopens the file and finds every
// acknowledged patch.
func TestPatchReportedDurable(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", on), func(t *testing.T) { testDurable(t, on) })
	}
}

func testDurable(t *testing.T, syncTwins bool) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	ctx := t.Context()
	db, err := sqlite.Open(ctx, path)
	must(t, err)
	db.SyncTwins(syncTwins)
	const devices, each = 20, 25
	e := &env{db: db, clock: &clock{now: t0}}
	for i := range devices {
		e.register(t, fmt.Sprintf("d%d", i))
	}
	svc := twin.NewService(db, twin.Options{Now: e.clock.Now})
	acked := make([]int64, devices)
	var wg sync.WaitGroup
	for d := range devices {
		wg.Go(func() {
			for i := range each {
				v, err := svc.PatchReported(ctx, fmt.Sprintf("d%d", d), "", fmt.Appendf(nil, `{"i":%d}`, i))
				if err != nil {
					t.Error(err)
					return
				}
				acked[d] = v
			}
		})
	}
	wg.Wait()
	must(t, svc.Close(ctx))
	must(t, db.Close())

	db, err = sqlite.Open(ctx, path)
	must(t, err)
	defer db.Close()
	for d := range devices {
		tw, err := db.GetTwin(ctx, fmt.Sprintf("d%d", d), "")
		must(t, err)
		if tw.Reported.Version != acked[d] || acked[d] != each+1 {
			t.Errorf("d%d: reported version %d after reopening, acknowledged %d", d, tw.Reported.Version, acked[d])
		}
		wantJSON(t, "reported", tw.Reported.Doc, fmt.Sprintf(`{"i":%d}`, each-1))
	}
}

// TestPatchReportedClose checks that Close waits for queued patches, that
// later reported patches fail with ErrClosed, and that the rest of the
// service keeps working.
func TestPatchReportedClose(t *testing.T) {
	e := newEnv(t, "d1")
	svc, g := newGated(e, twin.Options{})
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { _, err := svc.PatchReported(ctx, "d1", "", []byte(`{"a":1}`)); done <- err }()
	<-g.entered
	closed := make(chan error, 1)
	go func() { closed <- svc.Close(ctx) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v before the queued patch was committed", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.release <- struct{}{}
	must(t, <-done)
	must(t, <-closed)
	if _, err := svc.PatchReported(ctx, "d1", "", []byte(`{"a":2}`)); !errors.Is(err, twin.ErrClosed) {
		t.Errorf("patch after Close: err %v, want ErrClosed", err)
	}
	if _, _, err := svc.PatchDesired(ctx, "d1", "", []byte(`{"properties":{"desired":{"x":1}}}`), ""); err != nil {
		t.Errorf("desired patch after Close: %v", err)
	}
	must(t, svc.Close(ctx)) // idempotent
}

// TestPatchReportedCanceled checks that a caller whose context ends while
// its patch waits returns at once, and that the patch is then not applied
// if its batch had not started.
func TestPatchReportedCanceled(t *testing.T) {
	e := newEnv(t, "d1")
	svc, g := newGated(e, twin.Options{})
	ctx := t.Context()
	first := make(chan error, 1)
	go func() { _, err := svc.PatchReported(ctx, "d1", "", []byte(`{"a":1}`)); first <- err }()
	<-g.entered
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() { _, err := svc.PatchReported(cctx, "d1", "", []byte(`{"a":2}`)); res <- err }()
	waitQueued(t, svc, 1)
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	g.release <- struct{}{}
	must(t, <-first)
	must(t, svc.Close(ctx))
	tw, err := svc.Get(ctx, "d1", "")
	must(t, err)
	wantJSON(t, "reported", tw.Reported.Doc, `{"a":1}`)
}

// TestPatchReportedCloseTimeout checks that when Close's context ends, the
// patches not yet in a transaction fail with ErrClosed, the running batch
// still commits, and Close returns after it.
func TestPatchReportedCloseTimeout(t *testing.T) {
	e := newEnv(t, "d1")
	svc, g := newGated(e, twin.Options{})
	ctx := t.Context()
	first := make(chan error, 1)
	go func() { _, err := svc.PatchReported(ctx, "d1", "", []byte(`{"a":1}`)); first <- err }()
	<-g.entered
	second := make(chan error, 1)
	go func() { _, err := svc.PatchReported(ctx, "d1", "", []byte(`{"a":2}`)); second <- err }()
	waitQueued(t, svc, 1)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- svc.Close(cctx) }()
	if err := <-second; !errors.Is(err, twin.ErrClosed) {
		t.Errorf("queued patch: err %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a batch was running", err)
	case <-time.After(20 * time.Millisecond):
	}
	g.release <- struct{}{}
	must(t, <-first)
	if err := <-closed; !errors.Is(err, context.Canceled) {
		t.Errorf("Close: %v, want context.Canceled", err)
	}
}
