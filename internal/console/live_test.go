package console

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/stream"
)

// fakeTelemetry stores one new batch per Last call: a device sending as
// fast as the tailer looks.
type fakeTelemetry struct {
	mu    sync.Mutex
	seq   uint64
	reads atomic.Int64
	after []stream.Cursor // the After of every Read
}

func (f *fakeTelemetry) Last(context.Context) (stream.Cursor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq += 10 // ten batches since the last look: more than a tick reads
	return stream.Cursor{Seq: f.seq, Index: ^uint32(0)}, nil
}

func (f *fakeTelemetry) Read(_ context.Context, q stream.Query) ([]stream.Message, stream.Cursor, error) {
	f.reads.Add(1)
	f.mu.Lock()
	f.after = append(f.after, q.After)
	seq := f.seq
	f.mu.Unlock()
	var msgs []stream.Message
	for i := range 500 {
		msgs = append(msgs, stream.Message{DeviceID: q.DeviceID, EnqueuedTime: time.Now(),
			Body: fmt.Appendf(nil, `{"t":%d,"nested":{"x":%d},"on":true,"s":"x"}`, i, i)})
	}
	return msgs, stream.Cursor{Seq: seq, Index: ^uint32(0)}, nil
}

// A browser that stops reading loses its oldest updates; the tailer and
// the other browsers go on at the rate limit, and a burst is sampled.
func TestLiveFanOutNeverBlocks(t *testing.T) {
	tel := &fakeTelemetry{}
	l := newLive(tel, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	defer l.close()
	slow, stopSlow := l.subscribe("d1")
	fast, stopFast := l.subscribe("d1")
	defer stopSlow()
	defer stopFast()
	if n := len(l.tails); n != 1 {
		t.Fatalf("%d tailers for one device, want 1", n)
	}
	// Count on progress, not on a rate: a loaded machine may run the
	// tailer late, but never faster than one update per tick.
	const want = 2 * subBuffer
	got := 0
	start := time.Now()
	deadline := time.After(20 * time.Second)
	for got < want {
		select {
		case b := <-fast.ch:
			got++
			if len(b) > 64<<10 {
				t.Fatalf("update of %d bytes: the burst was not sampled", len(b))
			}
		case <-deadline:
			t.Fatalf("the reading browser got %d updates in 20s, want them to keep coming", got)
		}
	}
	if limit := int(time.Since(start)/(20*time.Millisecond)) + 2; got > limit {
		t.Errorf("the reading browser got %d updates in %v at one per 20ms", got, time.Since(start))
	}
	if len(slow.ch) != subBuffer || slow.dropped.Load() == 0 {
		t.Errorf("the stalled browser holds %d updates and dropped %d; want a full buffer and drops", len(slow.ch), slow.dropped.Load())
	}
	// Behind by ten batches per tick, the tailer reads only the newest ones.
	tel.mu.Lock()
	for _, a := range tel.after[1:] {
		if a.Index != ^uint32(0) {
			t.Errorf("a read started inside a batch: %+v", a)
		}
	}
	last := tel.after[len(tel.after)-1]
	seq := tel.seq
	tel.mu.Unlock()
	if seq-last.Seq > 64 {
		t.Errorf("read after batch %d while the newest is %d: the tailer fell behind", last.Seq, seq)
	}
}

// The tailer stops when its last browser leaves, and starts again for the
// next one.
func TestLiveTailerStops(t *testing.T) {
	tel := &fakeTelemetry{}
	l := newLive(tel, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	_, stop := l.subscribe("d1")
	time.Sleep(30 * time.Millisecond)
	stop()
	stop() // twice is harmless
	l.mu.Lock()
	n := len(l.tails)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d tailers after the last browser left", n)
	}
	// A read the tailer had begun may still finish: wait, as long as a
	// loaded machine takes, for the tailer to end, then for no more reads.
	ended := make(chan struct{})
	go func() { l.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the tailer did not end after the last browser left")
	}
	before := tel.reads.Load()
	time.Sleep(50 * time.Millisecond)
	if after := tel.reads.Load(); after != before {
		t.Errorf("reads went on after the tailer stopped: %d -> %d", before, after)
	}
	_, stop = l.subscribe("d1")
	stop()
	l.close()
}

func TestNumericFields(t *testing.T) {
	got := numericFields([]byte(`{"a":1.5,"b":"x","c":true,"d":{"e":-2,"f":[1]},"g":null}`))
	want := map[string]float64{"a": 1.5, "c": 1, "d.e": -2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("numericFields = %v, want %v", got, want)
	}
	for _, b := range []string{``, `[1,2]`, `42`, `{bad`, "\x00\x01"} {
		if got := numericFields([]byte(b)); len(got) != 0 {
			t.Errorf("numericFields(%q) = %v", b, got)
		}
	}
}

func TestPointsOfComponents(t *testing.T) {
	now := time.Now()
	pts := pointsOf([]stream.Message{
		{EnqueuedTime: now, Component: "thermostat1", Body: []byte(`{"temperature":21}`)},
		{EnqueuedTime: now, Component: "thermostat2", Body: []byte(`{"temperature":35}`)},
		{EnqueuedTime: now, Body: []byte(`{"workingSet":512}`)},
		{EnqueuedTime: now, Body: []byte(`not json`)},
	})
	got := fmt.Sprint(pts[0].V, pts[1].V, pts[2].V, len(pts))
	if want := "map[thermostat1/temperature:21] map[thermostat2/temperature:35] map[workingSet:512] 3"; got != want {
		t.Errorf("points = %s, want %s", got, want)
	}
}
