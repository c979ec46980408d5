package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// TestBackoffDelay checks the bounds of every delay: never under Min (no
// tight loop), never over Max, growing ceiling.
func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 60 * time.Second}
	for n := range 100 {
		ceil := b.Max
		if n < 30 {
			ceil = min(b.Max, b.Min<<(n+1))
		}
		for range 50 {
			d := b.Delay(n)
			if d < b.Min || d > ceil {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, b.Min, ceil)
			}
		}
	}
}

// TestHubRestart stops the hub while publishes are in flight, starts a new
// one on the same data directory, and checks that the transport reports the
// loss, fails the in-flight publishes, backs off while the hub is gone, and
// publishes again once it is back.
func TestHubRestart(t *testing.T) {
	h1 := hubtest.Start(t)
	dev := h1.CreateDevice(t, "dev-restart")
	rec := &recorder{}
	d := newDialer(tlsAddr(h1))
	cfg := config(h1, dev, d, rec)
	cfg.Backoff = Backoff{Min: 200 * time.Millisecond, Max: 400 * time.Millisecond}
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	if a, f := publishAll(t, tr, dev, 0, 100); a != 100 || f != 0 {
		t.Fatalf("before the restart: acked %d, failed %d", a, f)
	}

	// Hold back the PUBACKs of five publishes, then take the hub away.
	d.lastConn().hold()
	errs := make(chan error, 5)
	topic := protocol.TelemetryTopic(dev.ID, "", protocol.Properties{MessageID: "inflight"})
	for range 5 {
		if err := tr.Publish(context.Background(), topic, []byte("payload-inflight"), func(err error) { errs <- err }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d.lastConn().unhold()
	for range 5 {
		if err := <-errs; !errors.Is(err, ErrConnectionLost) {
			t.Errorf("in-flight publish: %v, want ErrConnectionLost", err)
		}
	}
	if err := tr.Publish(context.Background(), topic, nil, nil); !errors.Is(err, ErrOffline) {
		t.Errorf("Publish while the hub is down: %v, want ErrOffline", err)
	}

	// While the hub is down every attempt is refused by the OS at once, so
	// only the backoff paces them: at most one per Min.
	dialsDown := d.dials.Load()
	start := time.Now()
	hubtest.Eventually(t, 30*time.Second, func() error {
		if n := d.dials.Load() - dialsDown; n < 2 {
			return fmt.Errorf("%d attempts while the hub is down, want them to go on", n)
		}
		return nil
	})
	time.Sleep(1500*time.Millisecond - time.Since(start))
	attempts := d.dials.Load() - dialsDown
	// The first attempt may come at once, each next one at least Min later.
	if el := time.Since(start); attempts > int64(el/(200*time.Millisecond))+1 {
		t.Errorf("%d attempts in %s with Min 200ms", attempts, el)
	}

	h2 := hubtest.StartDir(t, h1.Dir)
	addr := tlsAddr(h2)
	d.addr.Store(&addr)
	waitConnected(t, tr)
	if a, f := publishAll(t, tr, dev, 100, 100); a != 100 || f != 0 {
		t.Fatalf("after the restart: acked %d, failed %d", a, f)
	}
	waitStored(t, h2, dev.ID, 0, 200)

	var seq []Status
	for _, e := range rec.events() {
		if len(seq) == 0 || seq[len(seq)-1] != e.s {
			seq = append(seq, e.s)
		}
		if e.s == Disconnected && e.err == nil {
			t.Error("Disconnected without a reason")
		}
	}
	want := []Status{Connecting, Connected, Disconnected, Connecting, Disconnected, Connecting, Connected}
	if !slicesHasPrefix(seq, want[:3]) || seq[len(seq)-1] != Connected {
		t.Errorf("status sequence %v, want %v with the middle repeated", seq, want)
	}
}

func slicesHasPrefix(s, p []Status) bool {
	if len(s) < len(p) {
		return false
	}
	for i := range p {
		if s[i] != p[i] {
			return false
		}
	}
	return true
}

// TestKeepAliveDetectsDeadLink stops delivering the hub's packets without
// closing anything: only the missing PINGRESP reveals the dead link.
func TestKeepAliveDetectsDeadLink(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-keepalive")
	rec := &recorder{}
	// Plain MQTT, so that the dialer's connection sees the PINGREQs.
	d := newDialer(h.MQTTAddr("tcp").String())
	cfg := config(h, dev, d, rec)
	cfg.InsecureTCP = true
	cfg.KeepAlive = time.Second
	cfg.Backoff = Backoff{Min: 100 * time.Millisecond, Max: 200 * time.Millisecond}
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	g := d.lastConn()
	g.hold()
	start := time.Now()
	hubtest.Eventually(t, 20*time.Second, func() error {
		for _, e := range rec.events() {
			if e.s == Disconnected {
				if e.err == nil || !strings.Contains(e.err.Error(), "PINGRESP") {
					t.Errorf("disconnected because %v, want a missing PINGRESP", e.err)
				}
				return nil
			}
		}
		return errors.New("still connected")
	})
	// Within two keep-alive periods: the PINGREQ of the first tick after
	// the hold goes unanswered and the next tick gives up, so at most one
	// PINGREQ goes out on the dead link. Counting ticks rather than
	// measuring time keeps this exact on a machine that runs timers late.
	if n := g.heldPings.Load(); n > 1 {
		t.Errorf("%d PINGREQs unanswered before the dead link was detected (after %s), want at most one", n, time.Since(start))
	}
	waitConnected(t, tr)
}

// TestTokenRenewal publishes across several renewals of a 3s token: no
// publish fails and no Disconnected status is reported.
func TestTokenRenewal(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-renew")
	rec := &recorder{}
	d := newDialer(tlsAddr(h))
	cfg := config(h, dev, d, rec)
	cfg.TokenTTL = 3 * time.Second
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)

	// Publish for at least 8s, and on until two renewals happened: a loaded
	// machine may renew late, never early.
	start := time.Now()
	total := 0
	for time.Since(start) < 8*time.Second || d.dials.Load() < 3 {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%d connections in %s with a 3s token, want at least 3 (renewals)", d.dials.Load(), time.Since(start))
		}
		a, f := publishAll(t, tr, dev, total, 50)
		if a != 50 || f != 0 {
			t.Fatalf("batch at %d: acked %d, failed %d", total, a, f)
		}
		total += 50
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range rec.events() {
		if e.s != Connecting && e.s != Connected {
			t.Errorf("status %v (%v) during planned renewals", e.s, e.err)
		}
	}
	waitStored(t, h, dev.ID, 0, total)
}
