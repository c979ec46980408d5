package transport

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestWebSocket sends through the hub's HTTPS listener, as a device on a
// network that only lets port 443 out would.
func TestWebSocket(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "ws1")
	d := newDialer(h.HTTPAddr().String())
	rec := &recorder{}
	cfg := config(h, dev, d, rec)
	cfg.WebSocket = true
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	if ok, failed := publishAll(t, tr, dev, 0, 200); ok != 200 || failed != 0 {
		t.Fatalf("acked %d, failed %d; want 200, 0", ok, failed)
	}
	got := waitStored(t, h, dev.ID, 0, 200)
	for id, n := range got {
		if n != 1 {
			t.Fatalf("message %s stored %d times", id, n)
		}
	}
}

// TestWebSocketRefusedUpgrade reports a clear reason when the server does
// not speak MQTT over WebSockets at the path.
func TestWebSocketRefusedUpgrade(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "ws2")
	// The MQTT/TLS port answers TLS but not HTTP: the upgrade fails.
	d := newDialer(h.MQTTAddr("tls").String())
	rec := &recorder{}
	cfg := config(h, dev, d, rec)
	cfg.WebSocket = true
	cfg.Backoff.Min, cfg.Backoff.Max = 20*time.Millisecond, 40*time.Millisecond
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	hubtest.Eventually(t, 10*time.Second, func() error {
		for _, e := range rec.events() {
			if e.s == Disconnected && e.err != nil && strings.Contains(e.err.Error(), "websocket upgrade") {
				return nil
			}
		}
		return errors.New("no Disconnected status naming the websocket upgrade yet")
	})
}
