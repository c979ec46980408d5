package device_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// c2dLog records what a C2D handler was given.
type c2dLog struct {
	mu  sync.Mutex
	got []device.C2DMessage
}

func (l *c2dLog) add(m device.C2DMessage) {
	l.mu.Lock()
	l.got = append(l.got, m)
	l.mu.Unlock()
}

func (l *c2dLog) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.got {
		out = append(out, fmt.Sprintf("%s/%d", m.ID, m.DeliveryCount))
	}
	return out
}

func (l *c2dLog) waitIDs(t *testing.T, want ...string) {
	t.Helper()
	hubtest.Eventually(t, 15*time.Second, func() error {
		if got := l.ids(); !slices.Equal(got, want) {
			return fmt.Errorf("handled %v, want %v", got, want)
		}
		return nil
	})
}

func (e *env) sendC2D(t *testing.T, id, body string) {
	t.Helper()
	_, err := e.hub.Client.SendC2D(context.Background(), e.id, []byte(body), api.C2DOptions{MessageID: id})
	if err != nil {
		t.Fatalf("SendC2D: %v", err)
	}
}

func (e *env) hubPendingC2D(t *testing.T) int {
	t.Helper()
	msgs, err := e.hub.Client.PendingC2D(context.Background(), e.id)
	if err != nil {
		t.Fatalf("PendingC2D: %v", err)
	}
	return len(msgs)
}

func waitInboxEmpty(t *testing.T, c *device.Client) {
	t.Helper()
	hubtest.Eventually(t, 15*time.Second, func() error {
		if n := c.PendingC2D(); n != 0 {
			return fmt.Errorf("%d messages in the device's inbox", n)
		}
		return nil
	})
}

// TestC2DSentWhileOffline queues messages for an offline device: once
// connected it gets them in order, with their properties.
func TestC2DSentWhileOffline(t *testing.T) {
	e := newEnv(t, false)
	var log c2dLog
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		log.add(m)
		return device.Complete
	}
	c := e.start(t)
	_, err := e.hub.Client.SendC2D(context.Background(), e.id, []byte(`{"cmd":"on"}`), api.C2DOptions{
		MessageID: "m1", CorrelationID: "corr-1", ContentType: "application/json", ContentEncoding: "utf-8",
		TTL: time.Hour, Properties: map[string]string{"prio": "high", "x-tag": "c&d=e"}})
	if err != nil {
		t.Fatal(err)
	}
	e.sendC2D(t, "m2", "second")
	e.sendC2D(t, "m3", "third")
	e.link.up.Store(true)
	log.waitIDs(t, "m1/1", "m2/1", "m3/1")
	waitInboxEmpty(t, c)
	hubtest.Eventually(t, 10*time.Second, func() error {
		if n := e.hubPendingC2D(t); n != 0 {
			return fmt.Errorf("%d messages still queued at the hub", n)
		}
		return nil
	})
	m := log.got[0]
	if string(m.Body) != `{"cmd":"on"}` || m.CorrelationID != "corr-1" || m.ContentType != "application/json" ||
		m.ContentEncoding != "utf-8" || m.Properties["prio"] != "high" || m.Properties["x-tag"] != "c&d=e" ||
		len(m.Properties) != 2 || m.Received.IsZero() ||
		m.Expiry.Before(time.Now().Add(50*time.Minute)) || m.Expiry.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("first message: %+v", m)
	}
	if string(log.got[2].Body) != "third" {
		t.Fatalf("third message body %q", log.got[2].Body)
	}
}

// TestC2DInboxSurvivesRestart: the hub's queue is empty once the device
// stored the message, before the handler finished with it; the handler
// abandons it at Close, and the next Start (offline) hands it over again
// from the local store.
func TestC2DInboxSurvivesRestart(t *testing.T) {
	e := newEnv(t, true)
	got := make(chan device.C2DMessage, 1)
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		got <- m
		<-ctx.Done() // busy until Close
		return device.Abandon
	}
	c := e.start(t)
	e.sendC2D(t, "keep-me", "payload")
	select {
	case m := <-got:
		if m.ID != "keep-me" || m.DeliveryCount != 1 {
			t.Fatalf("first run got %+v", m)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("message not handed over")
	}
	hubtest.Eventually(t, 10*time.Second, func() error {
		if n := e.hubPendingC2D(t); n != 0 {
			return fmt.Errorf("%d queued at the hub", n)
		}
		return nil
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	e.link.up.Store(false) // only the local store can deliver it now
	var log c2dLog
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		log.add(m)
		return device.Complete
	}
	c2 := e.start(t)
	log.waitIDs(t, "keep-me/2")
	if string(log.got[0].Body) != "payload" {
		t.Fatalf("body after restart %q", log.got[0].Body)
	}
	waitInboxEmpty(t, c2)
}

// TestC2DDuplicatesDropped redelivers a message id, as the hub does after
// a lost PUBACK: the handler sees it once, also after it completed it and
// after a restart.
func TestC2DDuplicatesDropped(t *testing.T) {
	e := newEnv(t, true)
	var log c2dLog
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		log.add(m)
		return device.Complete
	}
	connected := make(chan struct{}, 10)
	e.cfg.OnStatus = func(s device.Status, err error) {
		if s == device.Connected {
			connected <- struct{}{}
		}
	}
	c := e.start(t)
	waitConnected(t, connected)
	topic := func(id string) string { return "devices/" + e.id + "/messages/devicebound/%24.mid=" + id + "&k=v" }
	deliver := func(id string) {
		t.Helper()
		if err := e.hub.Deliver(topic(id), []byte(id), 1); err != nil {
			t.Fatal(err)
		}
	}
	deliver("d1")
	deliver("d1")
	deliver("d2")
	log.waitIDs(t, "d1/1", "d2/1")
	deliver("d1") // completed already
	e.sendC2D(t, "d3", "through the queue")
	log.waitIDs(t, "d1/1", "d2/1", "d3/1")

	c.Close()
	e.cfg.OnStatus = func(s device.Status, err error) {
		if s == device.Connected {
			connected <- struct{}{}
		}
	}
	c = e.start(t)
	waitConnected(t, connected)
	deliver("d2")
	deliver("d4")
	log.waitIDs(t, "d1/1", "d2/1", "d3/1", "d4/1")
	waitInboxEmpty(t, c)
}

// TestC2DDispositions: Reject removes at once; Abandon hands the message
// over again, after the ones behind it, until MaxC2DDeliveries; a panic
// abandons.
func TestC2DDispositions(t *testing.T) {
	e := newEnv(t, false)
	e.cfg.MaxC2DDeliveries = 3
	device.SetC2DRetry(&e.cfg, 50*time.Millisecond)
	var log c2dLog
	var client atomic.Pointer[device.Client]
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		// The hub sends one message at a time: hold the first one until
		// all five are in the inbox, so "behind the next ones" means the
		// same thing however fast the hub is.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if c := client.Load(); c != nil && c.PendingC2D() >= 5 || len(log.ids()) > 0 {
				break
			}
		}
		log.add(m)
		switch {
		case m.ID == "reject":
			return device.Reject
		case m.ID == "abandon":
			return device.Abandon
		case m.ID == "panic" && m.DeliveryCount == 1:
			panic("handler bug")
		case strings.HasPrefix(m.ID, "flaky") && m.DeliveryCount == 1:
			return device.Abandon
		}
		return device.Complete
	}
	c := e.start(t)
	client.Store(c)
	for _, id := range []string{"abandon", "reject", "flaky", "panic", "last"} {
		e.sendC2D(t, id, id)
	}
	e.link.up.Store(true)
	hubtest.Eventually(t, 45*time.Second, func() error {
		got := log.ids()
		count := func(s string) int {
			return len(slices.DeleteFunc(slices.Clone(got), func(x string) bool { return x != s }))
		}
		for _, want := range []string{"abandon/1", "abandon/2", "abandon/3", "reject/1", "flaky/1", "flaky/2", "panic/1", "panic/2", "last/1"} {
			if count(want) != 1 {
				return fmt.Errorf("handled %v; want %s once", got, want)
			}
		}
		if len(got) != 9 {
			return fmt.Errorf("handled %v", got)
		}
		return nil
	})
	got := log.ids()
	if got[0] != "abandon/1" || slices.Index(got, "reject/1") > slices.Index(got, "abandon/2") {
		t.Fatalf("order %v: an abandoned message waits behind the next ones", got)
	}
	waitInboxEmpty(t, c)
	time.Sleep(300 * time.Millisecond) // no fourth delivery of "abandon"
	if n := len(log.ids()); n != 9 {
		t.Fatalf("handled %v after the last delivery", log.ids())
	}
}

func TestDispositionString(t *testing.T) {
	for d, want := range map[device.Disposition]string{device.Complete: "complete", device.Abandon: "abandon",
		device.Reject: "reject", device.Disposition(7): "Disposition(7)"} {
		if d.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(d), d.String(), want)
		}
	}
}
