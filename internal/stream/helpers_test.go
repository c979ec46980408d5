package stream_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/natsd"
	"github.com/ferry-iot/ferry/internal/stream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// hub is an embedded NATS server on a directory, with one connection.
type hub struct {
	dir string
	srv *natsd.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startHub(t testing.TB, dir string) *hub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv, err := natsd.Start(ctx, natsd.Config{Dir: dir, Sync: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("natsd.Start: %v", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{dir: dir, srv: srv, nc: nc, js: js}
	t.Cleanup(h.stop)
	return h
}

func (h *hub) stop() {
	h.nc.Close()
	h.srv.Shutdown(context.Background())
}

func newWriter(t testing.TB, h *hub, cfg stream.WriterConfig) *stream.Writer {
	t.Helper()
	cfg.Logger = testLogger()
	w, err := stream.NewWriter(context.Background(), h.nc, cfg)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// recorder is an Acker that remembers every call.
type recorder struct {
	mu    sync.Mutex
	acks  []uint64
	errs  map[uint64]error
	count map[uint64]int
	done  chan struct{} // closed when want acks arrived
	want  int
}

func newRecorder(want int) *recorder {
	return &recorder{errs: map[uint64]error{}, count: map[uint64]int{}, done: make(chan struct{}), want: want}
}

func (r *recorder) Acked(token uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks = append(r.acks, token)
	r.count[token]++
	if err != nil {
		r.errs[token] = err
	}
	if len(r.acks) == r.want {
		close(r.done)
	}
}

func (r *recorder) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Fatalf("got %d acks, want %d", len(r.acks), r.want)
	}
}

// check verifies that tokens 0..want-1 were acked once each, in order, and
// without error.
func (r *recorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, tok := range r.acks {
		if tok != uint64(i) {
			t.Fatalf("ack %d has token %d: out of order", i, tok)
		}
		if r.count[tok] != 1 {
			t.Fatalf("token %d acked %d times", tok, r.count[tok])
		}
		if err := r.errs[tok]; err != nil {
			t.Fatalf("token %d acked with %v", tok, err)
		}
	}
	if len(r.acks) != r.want {
		t.Fatalf("%d acks, want %d", len(r.acks), r.want)
	}
}

// msg builds a distinct message for device d, number i.
func msg(d string, i int, at time.Time) stream.Message {
	return stream.Message{
		DeviceID: d, EnqueuedTime: at, AuthMethod: "sas",
		MessageID:  fmt.Sprintf("%s-%d", d, i),
		Properties: []stream.Property{{Key: "n", Value: fmt.Sprint(i)}},
		Body:       []byte(fmt.Sprintf(`{"device":%q,"n":%d}`, d, i)),
	}
}
