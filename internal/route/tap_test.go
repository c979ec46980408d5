package route

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// tapRig is a router on a real ingest store (embedded NATS with
// JetStream), routing from the ingest writer's tap as in the hub, with
// every message routed to the NATS subject tap.every (seen receives each
// routed message's id) and a stream endpoint.
type tapRig struct {
	ingest *stream.Writer
	store  *stream.Store
	reader *countingReader
	svc    *Service
	reg    *prometheus.Registry
	seen   chan string
}

// countingReader counts the router's position writes.
type countingReader struct {
	*stream.Store
	commits atomic.Int64
}

func (c *countingReader) Commit(ctx context.Context, group, name string, at stream.Cursor) error {
	c.commits.Add(1)
	return c.Store.Commit(ctx, group, name, at)
}

// startTapRig starts the rig with a tap of tapLimit records; it stops
// when the test ends.
func startTapRig(t *testing.T, tapLimit int) *tapRig {
	ctx := context.Background()
	srv, err := natsd.Start(ctx, natsd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(ctx) })
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rig := &tapRig{reg: prometheus.NewRegistry(), seen: make(chan string, 1<<16)}
	var svc *Service
	rig.ingest, err = stream.NewWriter(ctx, nc, stream.WriterConfig{
		Tap: lateTap{&svc}, Settled: func(num, seq uint64, recs int, err error) {
			if svc != nil {
				svc.Settled(num, seq, recs, err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.ingest.Close(ctx) })
	copies, err := stream.NewWriter(ctx, nc, stream.WriterConfig{DedupWindow: -1,
		Settled: func(num, seq uint64, recs int, err error) { svc.CopyStored(num, seq, recs, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { copies.Close(ctx) })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if rig.store, err = stream.NewStore(ctx, js, stream.StoreConfig{}); err != nil {
		t.Fatal(err)
	}
	rig.reader = &countingReader{Store: rig.store}
	sub, err := nc.Subscribe("tap.every", func(m *nats.Msg) { rig.seen <- m.Header.Get("Ferry-Message-Id") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = sub.SetPendingLimits(-1, -1)
	s, err := New(ctx, Config{Metrics: NewMetrics(rig.reg), Store: &memStore{routes: map[string]Route{}, sets: map[string]string{}},
		Reader: rig.reader, Appender: copies, NATS: nc})
	if err != nil {
		t.Fatal(err)
	}
	s.tap.limit = tapLimit
	if _, err := s.Create(ctx, Route{Name: "every", Enabled: true, Condition: "true",
		Endpoints: []Endpoint{{Kind: KindNATS, Name: "tap.every"}, {Kind: KindStream, Name: "copies"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	svc = s
	rig.svc = s
	t.Cleanup(func() { s.Close(ctx) })
	return rig
}

// send appends message i of producer p to the ingest store, counted in acks.
func (rig *tapRig) send(t *testing.T, acks *sync.WaitGroup, p, i int) {
	m := stream.Message{DeviceID: fmt.Sprintf("d%d", p), EnqueuedTime: time.Now(),
		MessageID: fmt.Sprintf("d%d-%d", p, i), Body: []byte(`{}`)}
	acks.Add(1)
	if err := rig.ingest.Append(&m, wgAcker{acks}, 0); err != nil {
		acks.Done()
		t.Error(err)
	}
}

// position is the router's position as written in the store.
func (rig *tapRig) position(t *testing.T) stream.Cursor {
	c, _, err := rig.store.Position(context.Background(), PositionGroup, positionStream)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The router hands over between the tap and reading the store all the
// time here: its tap holds only three records, so a burst overflows it
// mid-batch, and a stream endpoint's copies land between the batches.
// Every message must still be routed exactly once.
func TestTapRoutesEveryMessageOnce(t *testing.T) {
	rig := startTapRig(t, 3)
	var acks sync.WaitGroup
	send := func(p, i int) { rig.send(t, &acks, p, i) }
	seen, reg := rig.seen, rig.reg

	// Rounds of paced messages (the router routes from the tap: a run
	// starts when nothing is pending) followed by a burst from every
	// producer at once (the tap overflows mid-batch).
	const producers, rounds, burst, paced = 4, 12, 120, 20
	sent := 0
	for r := range rounds {
		for range paced {
			send(0, sent)
			sent++
			acks.Wait() // as a device with one message in flight: nothing is pending
			// Room for the router to reach the tap before the next one.
			time.Sleep(time.Millisecond + time.Duration(rand.IntN(2000))*time.Microsecond)
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
	var order []string // routed, in the order of routing
	deadline := time.After(30 * time.Second)
	for len(got) < total {
		select {
		case id := <-seen:
			got[id]++
			order = append(order, id)
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
	// Routing follows the store's order.
	var stored []string
	for after := (stream.Cursor{}); ; {
		msgs, next, err := rig.store.Read(context.Background(), stream.Query{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if m.MessageType != RoutedType {
				stored = append(stored, m.MessageID)
			}
		}
		after = next
	}
	for i := range min(len(stored), len(order)) {
		if stored[i] != order[i] {
			t.Errorf("routed %d is %s; the store holds %s there", i, order[i], stored[i])
			break
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

// The router writes its position to the store at most every commitEvery
// (each write is a synced JetStream put), yet the last one soon after
// traffic stops, and at shutdown.
func TestRouterWritesItsPositionSparingly(t *testing.T) {
	rig := startTapRig(t, tapLimit)
	var acks sync.WaitGroup
	// Paced messages, each acknowledged before the next: every one is a
	// batch of its own, routed from the tap as a page of its own.
	const n = 400
	start := time.Now()
	for i := range n {
		rig.send(t, &acks, 0, i)
		acks.Wait()
	}
	for range n {
		select {
		case <-rig.seen:
		case <-time.After(30 * time.Second):
			t.Fatal("messages were not routed")
		}
	}
	last, err := rig.store.Last(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The copies of the stream endpoint may come after the last message.
	deadline := time.Now().Add(30 * time.Second)
	for rig.position(t).Seq < last.Seq-1 {
		if time.Now().After(deadline) {
			t.Fatalf("position %s was not written after traffic stopped (last message at %s)", rig.position(t), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	writes := rig.reader.commits.Load()
	// One write per commitEvery, plus the first and the one after
	// traffic stopped; a write per page would be about n.
	if limit := int64(elapsed/commitEvery) + 3; writes > limit {
		t.Errorf("%d position writes for %d pages in %s; want at most %d", writes, n, elapsed.Round(time.Millisecond), limit)
	}
	t.Logf("%d position writes for %d pages in %s", writes, n, elapsed.Round(time.Millisecond))

	// A message routed just before shutdown: Close writes its position.
	rig.send(t, &acks, 0, n)
	acks.Wait()
	<-rig.seen
	last, err = rig.store.Last(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rig.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rig.position(t); got.Seq < last.Seq-1 {
		t.Errorf("position after Close is %s; the last message is at %s", got, last)
	}
}
