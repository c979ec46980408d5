package stream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

func TestWriterAcksInOrderPerAcker(t *testing.T) {
	h := startHub(t, t.TempDir())
	met := new(stream.Metrics)
	w := newWriter(t, h, stream.WriterConfig{Metrics: met, MaxBatchCount: 64})
	const ackers, per = 8, 500
	recs := make([]*recorder, ackers)
	var wg sync.WaitGroup
	for a := range ackers {
		recs[a] = newRecorder(per)
		wg.Add(1)
		go func() {
			defer wg.Done()
			dev := fmt.Sprintf("dev-%d", a)
			for i := range per {
				m := msg(dev, i, time.Now())
				if err := w.Append(&m, recs[a], uint64(i)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, r := range recs {
		r.wait(t, 10*time.Second)
		r.check(t)
	}
	if got := met.Stored.Load(); got != ackers*per {
		t.Errorf("Stored = %d, want %d", got, ackers*per)
	}
	t.Logf("batches %d, messages/batch %.1f", met.Batches.Load(), float64(met.Stored.Load())/float64(met.Batches.Load()))
}

func TestWriterCloseFlushesAndRefuses(t *testing.T) {
	h := startHub(t, t.TempDir())
	w := newWriter(t, h, stream.WriterConfig{Linger: time.Hour}) // nothing leaves unless Close flushes
	r := newRecorder(3)
	for i := range 3 {
		m := msg("d", i, time.Now())
		if err := w.Append(&m, r, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.wait(t, time.Second) // Close returned, so every ack was made
	r.check(t)
	m := msg("d", 9, time.Now())
	if err := w.Append(&m, r, 9); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseGivesUpAtDeadline(t *testing.T) {
	h := startHub(t, t.TempDir())
	w := newWriter(t, h, stream.WriterConfig{AckTimeout: time.Minute})
	h.srv.Shutdown(context.Background()) // acks can no longer come
	r := newRecorder(2)
	for i := range 2 {
		m := msg("d", i, time.Now())
		if err := w.Append(&m, r, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// Either the deadline passes first, or the client notices the server is
	// gone and fails the publish first: both are fine, hanging is not.
	if err := w.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want nil or deadline exceeded", err)
	}
	// Far below the minute of AckTimeout, however loaded the machine.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Close took %s with a 200ms deadline", d)
	}
	r.wait(t, time.Second)
	for tok, err := range r.errs {
		if err == nil {
			t.Errorf("token %d acked as stored, but the server was down", tok)
		}
	}
	if len(r.errs) != 2 {
		t.Errorf("%d tokens failed, want 2", len(r.errs))
	}
}
