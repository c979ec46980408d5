package stream

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/natsd"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStartSeqSkipsOlderBatches checks that a read by time starts at the
// first batch stored at or after From (less the skew), not at the start.
func TestStartSeqSkipsOlderBatches(t *testing.T) {
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
	js, _ := jetstream.New(nc)
	s, err := NewStore(ctx, js, StoreConfig{ClockSkew: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	put := func(n int) time.Time {
		var last time.Time
		for i := range n {
			at := time.Now()
			data := Encode(nil, []Message{{DeviceID: "d", EnqueuedTime: at, Body: []byte{byte(i)}}})
			if _, err := js.Publish(ctx, IngestSubject, data); err != nil {
				t.Fatal(err)
			}
			last = at
		}
		return last
	}
	put(5)
	mid := time.Now()
	for !time.Now().After(mid) { // JetStream's clock must move past mid
	}
	put(3)

	seq, err := s.startSeq(ctx, mid)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 6 {
		t.Errorf("startSeq(mid) = %d, want 6", seq)
	}
	seq, err = s.startSeq(ctx, time.Now().Add(time.Hour))
	if err != nil || seq != 9 {
		t.Errorf("startSeq(future) = %d, %v; want 9 (the next batch)", seq, err)
	}
	if seq, _ := s.startSeq(ctx, time.Time{}); seq != 1 {
		t.Errorf("startSeq(zero) = %d, want 1", seq)
	}
	msgs, _, err := s.Read(ctx, Query{From: mid})
	if err != nil || len(msgs) != 3 || msgs[0].Cursor.Seq != 6 {
		t.Fatalf("Read(From: mid) = %d messages from %v, %v", len(msgs), msgs, err)
	}
}
