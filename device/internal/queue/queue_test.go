package queue_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

// openQueue opens a queue at path and closes it when the test ends.
func openQueue(t testing.TB, path string, opts queue.Options) *queue.Queue {
	t.Helper()
	q, err := queue.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "queue.db")
}

func mustEnqueue(t testing.TB, q *queue.Queue, r queue.Record) queue.Record {
	t.Helper()
	got, err := q.Enqueue(context.Background(), r)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return got
}

func peekSeqs(t testing.TB, q *queue.Queue) []uint64 {
	t.Helper()
	recs, err := q.Peek(0, 1<<30)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	seqs := []uint64{}
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func sameRecord(a, b queue.Record) bool {
	return a.Seq == b.Seq && a.Stream == b.Stream && a.ID == b.ID &&
		reflect.DeepEqual(a.Props, b.Props) && string(a.Body) == string(b.Body) &&
		a.Enqueued.Equal(b.Enqueued)
}

func TestOrderAndSeqAcrossReopen(t *testing.T) {
	path := tempPath(t)
	q := openQueue(t, path, queue.Options{})
	var want []queue.Record
	for i := range 10 {
		r := queue.Record{Stream: fmt.Sprintf("s%d", i%3), Body: []byte{byte(i), 0, 0xff}}
		if i%2 == 0 {
			r.Props = []queue.Property{{Key: "k", Value: "v"}, {Key: "", Value: ""}, {Key: "k", Value: "again"}}
		}
		if i == 3 {
			r.ID, r.Body = "fixed-id", nil
		}
		got := mustEnqueue(t, q, r)
		if got.ID == "" || got.Enqueued.IsZero() {
			t.Fatalf("record %d: ID or Enqueued not filled in: %+v", i, got)
		}
		if len(want) > 0 && got.Seq <= want[len(want)-1].Seq {
			t.Fatalf("Seq %d after %d: not increasing", got.Seq, want[len(want)-1].Seq)
		}
		want = append(want, got)
	}
	if want[3].ID != "fixed-id" {
		t.Errorf("given ID replaced by %q", want[3].ID)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, path, queue.Options{})
	got, err := q.Peek(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("after reopen: %d records, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Errorf("record %d after reopen:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	page, _ := q.Peek(want[4].Seq, 2)
	if len(page) != 2 || page[0].Seq != want[5].Seq || page[1].Seq != want[6].Seq {
		t.Errorf("Peek(after %d, 2) = %v", want[4].Seq, page)
	}

	// Acknowledge everything: the next Seq still continues after the last.
	for _, r := range want {
		if err := q.Ack(r.Seq); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	q = openQueue(t, path, queue.Options{})
	if n, b := q.Pending(); n != 0 || b != 0 {
		t.Errorf("Pending after acking all and reopening = %d, %d", n, b)
	}
	if r := mustEnqueue(t, q, queue.Record{}); r.Seq <= want[len(want)-1].Seq {
		t.Errorf("Seq %d reused after restart (last was %d)", r.Seq, want[len(want)-1].Seq)
	}
}

func TestConcurrentEnqueue(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{})
	const workers, each = 8, 50
	var wg sync.WaitGroup
	seen := make(chan uint64, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := mustEnqueue(t, q, queue.Record{Body: fmt.Appendf(nil, "%d/%d", w, i)})
				seen <- r.Seq
			}
		})
	}
	wg.Wait()
	close(seen)
	unique := map[uint64]bool{}
	for s := range seen {
		if unique[s] {
			t.Fatalf("Seq %d returned twice", s)
		}
		unique[s] = true
	}
	seqs := peekSeqs(t, q)
	if len(seqs) != workers*each {
		t.Fatalf("Peek: %d records, want %d", len(seqs), workers*each)
	}
	for i, s := range seqs {
		if !unique[s] || (i > 0 && s <= seqs[i-1]) {
			t.Fatalf("Peek order broken at %d: %v", i, seqs[max(0, i-1):i+1])
		}
	}
}

func TestAckExactlyThose(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{})
	var sizes []int64
	for range 5 {
		_, before := q.Pending()
		mustEnqueue(t, q, queue.Record{Body: make([]byte, 100)})
		_, after := q.Pending()
		sizes = append(sizes, after-before)
	}
	if n, _ := q.Pending(); n != 5 {
		t.Fatalf("Pending = %d, want 5", n)
	}
	if err := q.Ack(4, 2); err != nil {
		t.Fatal(err)
	}
	if got := peekSeqs(t, q); !reflect.DeepEqual(got, []uint64{1, 3, 5}) {
		t.Fatalf("after Ack(4, 2): %v, want [1 3 5]", got)
	}
	// Repeated, unknown and duplicate Seqs are harmless.
	if err := q.Ack(2, 2, 999, 0); err != nil {
		t.Fatal(err)
	}
	n, b := q.Pending()
	if want := sizes[0] + sizes[2] + sizes[4]; n != 3 || b != want {
		t.Fatalf("Pending = %d, %d; want 3, %d", n, b, want)
	}
	if err := q.Ack(5, 1, 3); err != nil {
		t.Fatal(err)
	}
	if n, b := q.Pending(); n != 0 || b != 0 {
		t.Fatalf("Pending after acking all = %d, %d", n, b)
	}
}

func TestPendingRecomputedAtOpen(t *testing.T) {
	path := tempPath(t)
	q := openQueue(t, path, queue.Options{})
	for i := range 4 {
		mustEnqueue(t, q, queue.Record{Body: make([]byte, 10*i)})
	}
	q.Ack(2)
	n, b := q.Pending()
	q.Close()
	q = openQueue(t, path, queue.Options{})
	if n2, b2 := q.Pending(); n2 != n || b2 != b {
		t.Fatalf("Pending after reopen = %d, %d; before %d, %d", n2, b2, n, b)
	}
}

func TestWaitWakesWhenDrained(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{})
	ctx := context.Background()
	if err := q.Wait(ctx); err != nil {
		t.Fatalf("Wait on empty queue: %v", err)
	}
	for range 3 {
		mustEnqueue(t, q, queue.Record{})
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with 3 pending = %v, want deadline exceeded", err)
	}

	done := make(chan error, 1)
	go func() { done <- q.Wait(ctx) }()
	q.Ack(1)
	q.Ack(3)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v with one record pending", err)
	default:
	}
	q.Ack(2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the queue drained")
	}
}

func TestEnqueueBatch(t *testing.T) {
	path := tempPath(t)
	q := openQueue(t, path, queue.Options{MaxRecords: 5, Full: queue.RejectNew})
	mustEnqueue(t, q, queue.Record{})
	got, err := q.EnqueueBatch(context.Background(), []queue.Record{{Body: []byte("a")}, {Body: []byte("b")}, {ID: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Seq != uint64(2+i) || r.ID == "" {
			t.Fatalf("record %d = %+v; want Seq %d and an ID", i, r, 2+i)
		}
	}
	// All or none: three more do not fit beside four.
	if _, err := q.EnqueueBatch(context.Background(), make([]queue.Record, 3)); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("EnqueueBatch over the bound = %v; want ErrQueueFull", err)
	}
	if _, err := q.EnqueueBatch(context.Background(), make([]queue.Record, 6)); !errors.Is(err, queue.ErrTooLarge) {
		t.Fatalf("EnqueueBatch larger than MaxRecords = %v; want ErrTooLarge", err)
	}
	q.Close()
	q = openQueue(t, path, queue.Options{})
	recs, err := q.Peek(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || !sameRecord(recs[0], got[0]) || !sameRecord(recs[2], got[2]) {
		t.Fatalf("after reopen: %+v\nwant %+v", recs, got)
	}
}
