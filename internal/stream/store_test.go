package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

func newStore(t testing.TB, h *hub) *stream.Store {
	t.Helper()
	s, err := stream.NewStore(context.Background(), h.js, stream.StoreConfig{Logger: testLogger()})
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendAll appends msgs through one acker and waits for all acks.
func appendAll(t testing.TB, w *stream.Writer, msgs []stream.Message) {
	t.Helper()
	r := newRecorder(len(msgs))
	for i := range msgs {
		if err := w.Append(&msgs[i], r, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	r.wait(t, 10*time.Second)
	r.check(t)
}

// readAll pages through q with the given page size and returns everything.
func readAll(t testing.TB, s *stream.Store, q stream.Query) []stream.Message {
	t.Helper()
	var all []stream.Message
	for {
		page, next, err := s.Read(context.Background(), q)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(page) == 0 && next == q.After {
			return all
		}
		all = append(all, page...)
		q.After = next
	}
}

// sameMessage compares everything but Cursor; Group/Stream default.
func sameMessage(got, want stream.Message) bool {
	got.Cursor = stream.Cursor{}
	if want.Group == "" {
		want.Group = stream.DefaultName
	}
	if want.Stream == "" {
		want.Stream = stream.DefaultName
	}
	if !got.EnqueuedTime.Equal(want.EnqueuedTime) || !bytes.Equal(got.Body, want.Body) {
		return false
	}
	got.EnqueuedTime, want.EnqueuedTime = time.Time{}, time.Time{}
	got.Body, want.Body = nil, nil
	return reflect.DeepEqual(got, want)
}

func TestConcurrentAppendThenPagedRead(t *testing.T) {
	h := startHub(t, t.TempDir())
	w := newWriter(t, h, stream.WriterConfig{MaxBatchCount: 50})
	s := newStore(t, h)
	const ackers, per = 6, 300
	sent := make(map[string]stream.Message) // by MessageID
	var mu sync.Mutex
	var wg sync.WaitGroup
	for a := range ackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRecorder(per)
			dev := fmt.Sprintf("dev-%d", a)
			for i := range per {
				m := msg(dev, i, time.Now())
				m.Stream, m.CorrelationID, m.ContentType = "s"+fmt.Sprint(a%2), "c", "application/json"
				keep := m
				keep.Body = bytes.Clone(m.Body)
				mu.Lock()
				sent[m.MessageID] = keep
				mu.Unlock()
				if err := w.Append(&m, r, uint64(i)); err != nil {
					t.Error(err)
					return
				}
				m.Body[0] = 'X' // Append must not keep m
			}
			r.wait(t, 10*time.Second)
			r.check(t)
		}()
	}
	wg.Wait()

	got := readAll(t, s, stream.Query{Limit: 37})
	if len(got) != ackers*per {
		t.Fatalf("read %d messages, want %d", len(got), ackers*per)
	}
	seen := make(map[string]bool)
	var prev stream.Cursor
	for i, m := range got {
		if i > 0 && !prev.Less(m.Cursor) {
			t.Fatalf("cursor %v not after %v", m.Cursor, prev)
		}
		prev = m.Cursor
		if seen[m.MessageID] {
			t.Fatalf("message %s read twice", m.MessageID)
		}
		seen[m.MessageID] = true
		if !sameMessage(m, sent[m.MessageID]) {
			t.Fatalf("message changed:\n got %+v\nwant %+v", m, sent[m.MessageID])
		}
	}
}

func TestReadFilters(t *testing.T) {
	h := startHub(t, t.TempDir())
	w := newWriter(t, h, stream.WriterConfig{})
	s := newStore(t, h)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var msgs []stream.Message
	for i := range 40 {
		m := msg(fmt.Sprintf("d%d", i%4), i, base.Add(time.Duration(i)*time.Minute))
		m.Group, m.Stream = fmt.Sprintf("g%d", i%2), fmt.Sprintf("s%d", i%5)
		msgs = append(msgs, m)
	}
	appendAll(t, w, msgs)

	count := func(keep func(m stream.Message) bool) int {
		n := 0
		for _, m := range msgs {
			if keep(m) {
				n++
			}
		}
		return n
	}
	from, to := base.Add(10*time.Minute), base.Add(19*time.Minute)
	for _, tc := range []struct {
		name string
		q    stream.Query
		keep func(m stream.Message) bool
	}{
		{"device", stream.Query{DeviceID: "d1"}, func(m stream.Message) bool { return m.DeviceID == "d1" }},
		{"stream", stream.Query{Stream: "s3"}, func(m stream.Message) bool { return m.Stream == "s3" }},
		{"group+stream", stream.Query{Group: "g0", Stream: "s2"}, func(m stream.Message) bool { return m.Group == "g0" && m.Stream == "s2" }},
		{"time", stream.Query{From: from, To: to}, func(m stream.Message) bool {
			return !m.EnqueuedTime.Before(from) && !m.EnqueuedTime.After(to)
		}},
		{"from only", stream.Query{From: to}, func(m stream.Message) bool { return !m.EnqueuedTime.Before(to) }},
		{"device+time", stream.Query{DeviceID: "d2", From: from, To: to, Limit: 1}, func(m stream.Message) bool {
			return m.DeviceID == "d2" && !m.EnqueuedTime.Before(from) && !m.EnqueuedTime.After(to)
		}},
		{"none", stream.Query{DeviceID: "nobody"}, func(stream.Message) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, s, tc.q)
			if want := count(tc.keep); len(got) != want {
				t.Fatalf("read %d, want %d", len(got), want)
			}
			for _, m := range got {
				if !tc.keep(m) {
					t.Errorf("unexpected %s (%s/%s %s)", m.MessageID, m.Group, m.Stream, m.EnqueuedTime)
				}
			}
		})
	}
}

func TestReadWaitWakesOnAppend(t *testing.T) {
	h := startHub(t, t.TempDir())
	w := newWriter(t, h, stream.WriterConfig{})
	s := newStore(t, h)
	appendAll(t, w, []stream.Message{msg("other", 0, time.Now())})
	tail, err := s.Last(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if msgs, next, err := s.Read(context.Background(), stream.Query{After: tail}); err != nil || len(msgs) != 0 || next != tail {
		t.Fatalf("Read after Last = %v, %v, %v; want nothing", msgs, next, err)
	}

	type result struct {
		msgs []stream.Message
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		msgs, _, err := s.Read(context.Background(), stream.Query{DeviceID: "d", After: tail, Wait: 20 * time.Second})
		done <- result{msgs, err, time.Since(start)}
	}()
	appendAll(t, w, []stream.Message{msg("other", 1, time.Now()), msg("d", 7, time.Now())})
	select {
	case r := <-done:
		if r.err != nil || len(r.msgs) != 1 || r.msgs[0].MessageID != "d-7" {
			t.Fatalf("Read = %v, %v", r.msgs, r.err)
		}
		t.Logf("woke after %v", r.took)
	case <-time.After(30 * time.Second): // past the Wait: a missed wake-up shows as an empty page
		t.Fatal("Read with Wait did not wake on a new message")
	}

	// Nothing arrives: the wait ends at the deadline with an empty page.
	start := time.Now()
	msgs, _, err := s.Read(context.Background(), stream.Query{DeviceID: "nobody", Wait: 100 * time.Millisecond})
	if err != nil || len(msgs) != 0 {
		t.Fatalf("Read = %v, %v", msgs, err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("returned after %v, before the wait ended", took)
	}
}

func TestStreamsIndex(t *testing.T) {
	h := startHub(t, t.TempDir())
	w := newWriter(t, h, stream.WriterConfig{})
	base := time.Now().Truncate(time.Millisecond)
	appendAll(t, w, []stream.Message{
		{DeviceID: "a", EnqueuedTime: base},
		{DeviceID: "a", EnqueuedTime: base.Add(time.Second), Stream: "x"},
		{DeviceID: "b", EnqueuedTime: base.Add(2 * time.Second)},
	})
	s := newStore(t, h)
	got, err := s.Streams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []stream.StreamInfo{
		{Group: "default", Name: "default", Messages: 2, First: base.UTC(), Last: base.Add(2 * time.Second).UTC()},
		{Group: "default", Name: "x", Messages: 1, First: base.Add(time.Second).UTC(), Last: base.Add(time.Second).UTC()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Streams:\n got %+v\nwant %+v", got, want)
	}
	// A second store continues from the saved index.
	appendAll(t, w, []stream.Message{{DeviceID: "c", EnqueuedTime: base.Add(3 * time.Second), Stream: "x"}})
	got, err = newStore(t, h).Streams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Messages != 2 || !got[1].Last.Equal(base.Add(3*time.Second)) {
		t.Fatalf("after more messages: %+v", got)
	}
}
