package transport

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// nextSession waits until Session reports a live connection other than
// prev and returns its channel.
func nextSession(t *testing.T, tr *Transport, prev <-chan struct{}) <-chan struct{} {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		ch, ok := tr.Session()
		if ok && ch != prev {
			return ch
		}
		if !ok || ch == prev {
			wait := ch
			if ok { // still the old connection: its end is the next change
				wait = prev
			}
			select {
			case <-wait:
			case <-deadline:
				t.Fatal("no new connection within 15s")
			}
		}
	}
}

// TestSessionAcrossRenewalAndLoss checks that every connection, also one
// made for a token renewal (which reports no status), has its own Session
// channel, closed when it ends.
func TestSessionAcrossRenewalAndLoss(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-session")
	d := newDialer(tlsAddr(h))
	cfg := config(h, dev, d, &recorder{})
	cfg.TokenTTL = 2 * time.Second
	cfg.Backoff = Backoff{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond}
	tr := Start(context.Background(), cfg)
	defer tr.Close()

	first := nextSession(t, tr, nil)
	renewed := nextSession(t, tr, first) // the renewal, about 1.8s in
	select {
	case <-first:
	default:
		t.Fatal("the renewed connection's predecessor is still open")
	}
	d.lastConn().Close() // a lost connection
	select {
	case <-renewed:
	case <-time.After(20 * time.Second):
		t.Fatal("Session channel not closed when the connection broke")
	}
	nextSession(t, tr, renewed)
	tr.Close()
	if ch, ok := tr.Session(); ok {
		t.Fatal("Session reports a connection after Close")
	} else if ch == nil {
		t.Fatal("Session returned a nil channel")
	}
}

// TestRefusedMessageIsRedelivered refuses a C2D message once: it is not
// acknowledged, the connection is dropped, and the hub sends it again.
func TestRefusedMessageIsRedelivered(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "dev-refuse")
	d := newDialer(tlsAddr(h))
	cfg := config(h, dev, d, &recorder{})
	cfg.Backoff = Backoff{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond}
	cfg.Subscriptions = []string{"devices/" + dev.ID + "/messages/devicebound/#"}
	var calls atomic.Int32
	accepted := make(chan string, 1)
	cfg.OnMessage = func(topic string, props protocol.Properties, payload []byte) error {
		if calls.Add(1) == 1 {
			return errors.New("disk full")
		}
		accepted <- props.MessageID
		return nil
	}
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	if _, err := h.Client.SendC2D(context.Background(), dev.ID, []byte("x"), api.C2DOptions{MessageID: "m1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-accepted:
		if id != "m1" {
			t.Fatalf("accepted %q", id)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the refused message was not delivered again")
	}
	if n := d.dials.Load(); n < 2 {
		t.Fatalf("%d connections; the refusal should have dropped the first", n)
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		pending, err := h.Client.PendingC2D(context.Background(), dev.ID)
		if err != nil {
			return err
		}
		if len(pending) != 0 {
			return errors.New("the accepted message is still queued at the hub")
		}
		return nil
	})
}
