package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

func TestAckedMessagesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir)
	w := newWriter(t, h, stream.WriterConfig{})
	var msgs []stream.Message
	for i := range 500 {
		msgs = append(msgs, msg(fmt.Sprintf("d%d", i%7), i, time.Now()))
	}
	appendAll(t, w, msgs) // every message acked
	s := newStore(t, h)
	if err := s.Commit(context.Background(), "cg", "default", stream.Cursor{Seq: 3, Index: 4}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	h.stop() // no Writer.Close: acked means stored, whatever comes after

	h2 := startHub(t, dir)
	s2 := newStore(t, h2)
	got := readAll(t, s2, stream.Query{Limit: 1000})
	if len(got) != len(msgs) {
		t.Fatalf("after restart read %d messages, want %d", len(got), len(msgs))
	}
	for i := range got {
		if !sameMessage(got[i], msgs[i]) {
			t.Fatalf("message %d changed: %+v", i, got[i])
		}
	}
	c, ok, err := s2.Position(context.Background(), "cg", "default")
	if err != nil || !ok || c != (stream.Cursor{Seq: 3, Index: 4}) {
		t.Fatalf("Position after restart = %v, %v, %v", c, ok, err)
	}
}

func TestPositions(t *testing.T) {
	h := startHub(t, t.TempDir())
	s := newStore(t, h)
	ctx := context.Background()
	if _, ok, err := s.Position(ctx, "cg", "temps"); err != nil || ok {
		t.Fatalf("Position before Commit = %v, %v", ok, err)
	}
	for _, tc := range []struct {
		cg, stream string
		c          stream.Cursor
	}{
		{"cg", "temps", stream.Cursor{Seq: 10, Index: 2}},
		{"cg", "other", stream.Cursor{Seq: 11}},
		{"cg.x", "y", stream.Cursor{Seq: 1}}, // must not collide with cg / x.y
		{"cg", "x.y", stream.Cursor{Seq: 2}},
		{"ünï cödé/*>", "", stream.Cursor{Seq: 3}},
	} {
		if err := s.Commit(ctx, tc.cg, tc.stream, tc.c); err != nil {
			t.Fatalf("Commit(%q, %q): %v", tc.cg, tc.stream, err)
		}
		defer func() {
			c, ok, err := s.Position(ctx, tc.cg, tc.stream)
			if err != nil || !ok || c != tc.c {
				t.Errorf("Position(%q, %q) = %v, %v, %v; want %v", tc.cg, tc.stream, c, ok, err, tc.c)
			}
		}()
	}
	if err := s.Commit(ctx, "", "x", stream.Cursor{}); err == nil {
		t.Error("Commit with empty consumer group succeeded")
	}
}

func TestDedupByMessageID(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir)
	met := new(stream.Metrics)
	w := newWriter(t, h, stream.WriterConfig{Metrics: met})
	first := msg("d", 1, time.Now())
	noID := stream.Message{DeviceID: "d", Body: []byte("x"), EnqueuedTime: time.Now()}
	// The resend arrives while the original may still be in flight, and
	// again after it is stored; a message without id is never dropped.
	appendAll(t, w, []stream.Message{first, first, noID, noID})
	appendAll(t, w, []stream.Message{first})
	otherModule := first
	otherModule.ModuleID = "m"
	appendAll(t, w, []stream.Message{otherModule})
	if got := met.Duplicates.Load(); got != 2 {
		t.Errorf("Duplicates = %d, want 2", got)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A new writer (hub restart) remembers ids from the stream's tail.
	met2 := new(stream.Metrics)
	w2 := newWriter(t, h, stream.WriterConfig{Metrics: met2})
	appendAll(t, w2, []stream.Message{first, msg("d", 2, time.Now())})
	if got := met2.Duplicates.Load(); got != 1 {
		t.Errorf("after restart Duplicates = %d, want 1", got)
	}
	got := readAll(t, newStore(t, h), stream.Query{})
	if len(got) != 5 { // first, noID twice, otherModule, d-2
		t.Fatalf("stored %d messages, want 5: %+v", len(got), got)
	}
}

func TestFailedBatchIsReportedAndNotDeduplicated(t *testing.T) {
	h := startHub(t, t.TempDir())
	met := new(stream.Metrics)
	w := newWriter(t, h, stream.WriterConfig{Metrics: met, AckTimeout: 2 * time.Second})
	if err := h.js.DeleteStream(context.Background(), stream.IngestStream); err != nil {
		t.Fatal(err)
	}
	m := msg("d", 1, time.Now())
	r := newRecorder(1)
	if err := w.Append(&m, r, 0); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 10*time.Second)
	if r.errs[0] == nil {
		t.Fatal("Acked(nil) for a message that could not be stored")
	}
	if met.Failed.Load() != 1 {
		t.Errorf("Failed = %d, want 1", met.Failed.Load())
	}
	// With the stream back, the resend is stored, not dropped as a duplicate.
	s := newStore(t, h) // recreates the stream
	appendAll(t, w, []stream.Message{m})
	if got := readAll(t, s, stream.Query{}); len(got) != 1 {
		t.Fatalf("stored %d messages after resend, want 1", len(got))
	}
}

// blockingAcker holds the writer's completer in Acked until released.
type blockingAcker struct{ release chan struct{} }

func (b *blockingAcker) Acked(uint64, error) { <-b.release }

func TestAppendBlocksAtMaxPending(t *testing.T) {
	h := startHub(t, t.TempDir())
	met := new(stream.Metrics)
	w := newWriter(t, h, stream.WriterConfig{Metrics: met, MaxPending: 3})
	a := &blockingAcker{release: make(chan struct{})}
	for i := range 3 {
		m := msg("d", i, time.Now())
		if err := w.Append(&m, a, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		m := msg("d", 3, time.Now())
		done <- w.Append(&m, a, 3)
	}()
	waitFor(t, 20*time.Second, func() error {
		if met.Blocked.Load() != 1 {
			return errors.New("Append did not block")
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("Append returned %v while 3 messages were pending", err)
	default:
	}
	close(a.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitFor polls check until it returns nil or d passes.
func waitFor(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
