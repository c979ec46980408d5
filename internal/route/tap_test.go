package route

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/natsd"
	"github.com/ferry-iot/ferry/internal/stream"
)

// memStore keeps routes in memory (the hub keeps them in SQLite).
type memStore struct {
	mu     sync.Mutex
	routes map[string]Route
	sets   map[string]string
}

func (m *memStore) CreateRoute(_ context.Context, r *Route) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.routes[r.Name] = *r
	return nil
}

func (m *memStore) UpdateRoute(_ context.Context, r *Route) error { return m.CreateRoute(nil, r) }

func (m *memStore) GetRoute(_ context.Context, name string) (*Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.routes[name]
	if !ok {
		return nil, fault.New(fault.NotFound, "", 0, "route %s not found", name)
	}
	return &r, nil
}

func (m *memStore) ListRoutes(context.Context) ([]Route, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Route
	for _, r := range m.routes {
		out = append(out, r)
	}
	return out, nil
}

func (m *memStore) DeleteRoute(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.routes, name)
	return nil
}

func (m *memStore) RouteSetting(_ context.Context, k string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.sets[k]
	return v, ok, nil
}

func (m *memStore) PutRouteSetting(_ context.Context, k, v string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets[k] = v
	return nil
}

// lateTap forwards to the router's tap once the router exists: the ingest
// writer is made first, as in the hub.
type lateTap struct{ s **Service }

func (l lateTap) Begin() bool { return *l.s != nil && (*l.s).Tap().Begin() }
func (l lateTap) Record(num uint64, index uint32, rec []byte) bool {
	return *l.s != nil && (*l.s).Tap().Record(num, index, rec)
}

// wgAcker counts acknowledgements down.
type wgAcker struct{ wg *sync.WaitGroup }

func (a wgAcker) Acked(uint64, error) { a.wg.Done() }

// The router hands over between the tap and reading the store all the
// time here: its tap holds only three records, so a burst overflows it
// mid-batch, and a stream endpoint's copies land between the batches.
// Every message must still be routed exactly once.
func TestTapRoutesEveryMessageOnce(t *testing.T) {
	ctx := context.Background()
	srv, err := natsd.Start(ctx, natsd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var svc *Service
	ingest, err := stream.NewWriter(ctx, nc, stream.WriterConfig{
		Tap: lateTap{&svc}, Settled: func(num, seq uint64, recs int, err error) {
			if svc != nil {
				svc.Settled(num, seq, recs, err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)
	copies, err := stream.NewWriter(ctx, nc, stream.WriterConfig{DedupWindow: -1,
		Settled: func(num, seq uint64, recs int, err error) { svc.CopyStored(num, seq, recs, err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer copies.Close(ctx)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stream.NewStore(ctx, js, stream.StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1<<16)
	sub, err := nc.Subscribe("tap.every", func(m *nats.Msg) { seen <- m.Header.Get("Ferry-Message-Id") })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	reg := prometheus.NewRegistry()
	s, err := New(ctx, Config{Metrics: NewMetrics(reg), Store: &memStore{routes: map[string]Route{}, sets: map[string]string{}},
		Reader: st, Appender: copies, NATS: nc})
	if err != nil {
		t.Fatal(err)
	}
	s.tap.limit = 3
	if _, err := s.Create(ctx, Route{Name: "every", Enabled: true, Condition: "true",
		Endpoints: []Endpoint{{Kind: KindNATS, Name: "tap.every"}, {Kind: KindStream, Name: "copies"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	svc = s
	defer s.Close(ctx)

	// Rounds of paced messages (the router routes from the tap: a run
	// starts when nothing is pending) followed by a burst from every
	// producer at once (the tap overflows mid-batch).
	const producers, rounds, burst, paced = 4, 12, 120, 20
	sent := 0
	var acks sync.WaitGroup
	send := func(p, i int) {
		m := stream.Message{DeviceID: fmt.Sprintf("d%d", p), EnqueuedTime: time.Now(),
			MessageID: fmt.Sprintf("d%d-%d", p, i), Body: []byte(`{}`)}
		acks.Add(1)
		if err := ingest.Append(&m, wgAcker{&acks}, 0); err != nil {
			acks.Done()
			t.Error(err)
		}
	}
	for r := range rounds {
		for range paced {
			send(0, sent)
			sent++
			acks.Wait() // as a device with one message in flight: nothing is pending
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range burst {
					send(p+1, r*burst+i)
				}
			}()
		}
		wg.Wait()
		acks.Wait()
	}
	total := rounds * (paced + producers*burst)
	got := map[string]int{}
	deadline := time.After(30 * time.Second)
	for len(got) < total {
		select {
		case id := <-seen:
			got[id]++
		case <-deadline:
			t.Fatalf("routed %d distinct messages of %d", len(got), total)
		}
	}
	quiet := time.After(300 * time.Millisecond)
	for done := false; !done; {
		select {
		case id := <-seen:
			got[id]++
		case <-quiet:
			done = true
		}
	}
	twice := 0
	for id, n := range got {
		if n != 1 {
			twice++
			if twice < 5 {
				t.Errorf("%s routed %d times", id, n)
			}
		}
	}
	if twice > 0 {
		t.Errorf("%d messages routed more than once", twice)
	}
	handed := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ferry_route_batches_handed_total" {
			handed = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if handed == 0 {
		t.Error("nothing was routed from the tap")
	}
	t.Logf("%d messages; %.0f batches or parts of batches routed from the tap", len(got), handed)
}
