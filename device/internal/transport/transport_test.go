package transport

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// TestPublishWindow connects over TLS with the hub's CA, publishes 1,000 QoS 1
// messages through a window of 32, and finds every one stored.
func TestPublishWindow(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-window")
	rec := &recorder{}
	d := newDialer(tlsAddr(h))
	cfg := config(h, dev, d, rec)
	cfg.Window = 32
	tr := Start(context.Background(), cfg)
	waitConnected(t, tr)

	acked, failed := publishAll(t, tr, dev, 0, 1000)
	if acked != 1000 || failed != 0 {
		t.Fatalf("acked %d, failed %d; want 1000 acked", acked, failed)
	}
	got := waitStored(t, h, dev.ID, 0, 1000)
	if len(got) != 1000 {
		t.Errorf("%d distinct messages stored, want 1000", len(got))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []Status{Connecting, Connected, Closed}; !slices.Equal(rec.statuses(), want) {
		t.Errorf("statuses %v, want %v", rec.statuses(), want)
	}
	if err := tr.Publish(context.Background(), "devices/x/messages/events/", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestWindowBlocks fills the window while PUBACKs cannot arrive and checks
// that the next Publish blocks until its context ends.
func TestWindowBlocks(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-block")
	d := newDialer(tlsAddr(h))
	cfg := config(h, dev, d, &recorder{})
	cfg.Window = 4
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	d.lastConn().hold()
	topic := protocol.TelemetryTopic(dev.ID, "", protocol.Properties{})
	errs := make(chan error, 4)
	for range 4 {
		if err := tr.Publish(context.Background(), topic, []byte("x"), func(err error) { errs <- err }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := tr.Publish(ctx, topic, []byte("x"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fifth Publish: %v, want DeadlineExceeded", err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Error("fifth Publish did not block")
	}
	d.lastConn().unhold() // the link drops: the four fail
	for range 4 {
		if err := <-errs; !errors.Is(err, ErrConnectionLost) {
			t.Errorf("in-flight publish: %v, want ErrConnectionLost", err)
		}
	}
}

// TestC2D receives a cloud-to-device message through OnMessage.
func TestC2D(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-c2d")
	type msg struct {
		topic   string
		props   protocol.Properties
		payload string
	}
	got := make(chan msg, 1)
	cfg := config(h, dev, newDialer(tlsAddr(h)), &recorder{})
	cfg.Subscriptions = []string{"devices/" + dev.ID + "/messages/devicebound/#"}
	cfg.OnMessage = func(topic string, props protocol.Properties, payload []byte) error {
		got <- msg{topic, props, string(payload)}
		return nil
	}
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	topic := "devices/" + dev.ID + "/messages/devicebound/%24.mid=c1&k=v"
	if err := h.Deliver(topic, []byte("hello"), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.topic != topic || m.payload != "hello" || m.props.MessageID != "c1" {
			t.Errorf("got %+v", m)
		}
		if v, _ := m.props.Get("k"); v != "v" {
			t.Errorf("property k = %q, want v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no C2D message")
	}
}

// TestRefusedBackoff gives a wrong key: every CONNECT is refused, the status
// says why, and with the default backoff (floor 1s) attempts stay few.
func TestRefusedBackoff(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-refused")
	rec := &recorder{}
	d := newDialer(tlsAddr(h))
	cfg := config(h, dev, d, rec)
	cfg.Key = []byte("not the device key")
	start := time.Now()
	tr := Start(context.Background(), cfg)
	refusals := func() (n int) {
		for _, e := range rec.events() {
			var re *RefusedError
			if e.s == Disconnected && errors.As(e.err, &re) {
				n++
			}
		}
		return n
	}
	// The second attempt comes at most 2s after the first refusal, later
	// on a loaded machine: wait for it as long as it takes.
	hubtest.Eventually(t, 30*time.Second, func() error {
		if n := refusals(); n < 2 {
			return fmt.Errorf("%d refusals after %d connection attempts", n, d.dials.Load())
		}
		return nil
	})
	time.Sleep(3500*time.Millisecond - time.Since(start))
	n := d.dials.Load()
	el := time.Since(start)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// Attempt k starts at least k seconds in, so at most 4 fit in 3.5s.
	if n > int64(el/time.Second)+1 {
		t.Errorf("%d connection attempts in %s, want at most one a second", n, el)
	}
	refused := 0
	for _, e := range rec.events() {
		if e.s == Connected {
			t.Fatal("connected with a wrong key")
		}
		var re *RefusedError
		if e.s == Disconnected && errors.As(e.err, &re) {
			refused++
			if re.Code != 4 && re.Code != 5 {
				t.Errorf("refusal code %d, want 4 or 5", re.Code)
			}
		}
	}
	if refused < 2 {
		t.Errorf("%d refusals reported, want one per attempt: %v", refused, rec.events())
	}
}

// TestCloseStopsGoroutines checks that Close leaves nothing running, both
// connected and while backing off. A first round warms up what the hub
// starts lazily (its HTTP/2 and TLS connection goroutines), so the count
// before the measured round is the hub's steady state.
func TestCloseStopsGoroutines(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-close")
	round := func() {
		tr := Start(context.Background(), config(h, dev, newDialer(tlsAddr(h)), &recorder{}))
		waitConnected(t, tr)
		if a, f := publishAll(t, tr, dev, 0, 10); a != 10 || f != 0 {
			t.Fatalf("acked %d, failed %d", a, f)
		}
		_ = tr.Close()

		offline := newDialer("127.0.0.1:1") // nothing listens: refused at once
		tr = Start(context.Background(), config(h, dev, offline, &recorder{}))
		hubtest.Eventually(t, 20*time.Second, func() error {
			if offline.dials.Load() == 0 {
				return errors.New("no attempt yet")
			}
			return nil
		})
		_ = tr.Close()
	}
	round()
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	round()
	hubtest.Eventually(t, 20*time.Second, func() error {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "transport.(*") || strings.Contains(g, "transport.Start") {
				return fmt.Errorf("a transport goroutine is left:\n%s", g)
			}
		}
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, stacks)
		}
		return nil
	})
}
