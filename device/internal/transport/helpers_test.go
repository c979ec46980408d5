package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// recorder keeps every status change, for assertions on the sequence.
type recorder struct {
	mu  sync.Mutex
	got []statusEvent
}

func (r *recorder) on(s Status, err error) {
	r.mu.Lock()
	r.got = append(r.got, statusEvent{s, err})
	r.mu.Unlock()
}

func (r *recorder) events() []statusEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]statusEvent(nil), r.got...)
}

func (r *recorder) statuses() []Status {
	var out []Status
	for _, e := range r.events() {
		out = append(out, e.s)
	}
	return out
}

// dialer dials whatever address addr holds (the current hub's), counts
// attempts, and can hold the reads of the connection it made last.
type dialer struct {
	addr  atomic.Pointer[string]
	dials atomic.Int64
	mu    sync.Mutex
	last  *gateConn
}

func newDialer(addr string) *dialer {
	d := &dialer{}
	d.addr.Store(&addr)
	return d
}

func (d *dialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d.dials.Add(1)
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, network, *d.addr.Load())
	if err != nil {
		return nil, err
	}
	g := &gateConn{Conn: nc, release: make(chan struct{}), closed: make(chan struct{})}
	d.mu.Lock()
	d.last = g
	d.mu.Unlock()
	return g, nil
}

func (d *dialer) lastConn() *gateConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// gateConn simulates a network that stops delivering: while held, Read
// blocks, and once released (or closed) it fails, so whatever the hub sent
// meanwhile (PUBACKs, PINGRESPs) is lost like on a dead link.
type gateConn struct {
	net.Conn
	held      atomic.Bool
	heldPings atomic.Int64 // PINGREQs written while held (plain MQTT only)
	release   chan struct{}
	closed    chan struct{}
	relOnce   sync.Once
	closeOnce sync.Once
}

var errDropped = errors.New("test: link dropped")

func (g *gateConn) hold()   { g.held.Store(true) }
func (g *gateConn) unhold() { g.relOnce.Do(func() { close(g.release) }) }

func (g *gateConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if !g.held.Load() {
		n, err = g.Conn.Read(p)
	}
	if g.held.Load() {
		// Whatever arrives while held is lost, like on a dead link.
		select {
		case <-g.release:
		case <-g.closed:
		}
		return 0, errDropped
	}
	return n, err
}

// Write counts the PINGREQs written while held. Over TLS the bytes are
// sealed, so only a plain MQTT connection shows them.
func (g *gateConn) Write(p []byte) (int, error) {
	if g.held.Load() && len(p) == 2 && p[0] == 0xC0 && p[1] == 0 {
		g.heldPings.Add(1)
	}
	return g.Conn.Write(p)
}

func (g *gateConn) Close() error {
	g.closeOnce.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

// config is a transport configuration for dev on hub h over TLS.
func config(h *hubtest.Hub, dev hubtest.Device, d *dialer, rec *recorder) Config {
	return Config{
		Host:     dev.Host,
		DeviceID: dev.ID,
		Key:      dev.Key,
		TLS:      h.TLSConfig(),
		Dial:     d.dial,
		OnStatus: rec.on,
	}
}

func tlsAddr(h *hubtest.Hub) string { return h.MQTTAddr("tls").String() }

// publishAll publishes n messages numbered from first, waiting on Connected
// whenever the transport is offline, and returns once every done ran.
func publishAll(t *testing.T, tr *Transport, dev hubtest.Device, first, n int) (acked, failed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	for i := first; i < first+n; {
		topic := protocol.TelemetryTopic(dev.ID, "", protocol.Properties{MessageID: strconv.Itoa(i)})
		wg.Add(1)
		err := tr.Publish(ctx, topic, []byte("payload-"+strconv.Itoa(i)), func(err error) {
			if err != nil {
				bad.Add(1)
			} else {
				ok.Add(1)
			}
			wg.Done()
		})
		if err != nil {
			wg.Done()
			if !errors.Is(err, ErrOffline) {
				t.Fatalf("publish %d: %v", i, err)
			}
			select {
			case <-tr.Connected():
			case <-ctx.Done():
				t.Fatalf("publish %d: never connected", i)
			}
			continue
		}
		i++
	}
	wg.Wait()
	return int(ok.Load()), int(bad.Load())
}

// stored returns how often each message id of dev is stored in the hub.
func stored(t *testing.T, h *hubtest.Hub, dev string) map[string]int {
	t.Helper()
	out := map[string]int{}
	after := ""
	for {
		page, err := h.Client.ReadStream(context.Background(), "*",
			api.ReadQuery{From: "beginning", Device: dev, After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 {
			return out
		}
		for _, m := range page.Messages {
			if want := "payload-" + m.SystemProperties.MessageID; string(m.Body) != want {
				t.Fatalf("stored body %q, want %q", m.Body, want)
			}
			out[m.SystemProperties.MessageID]++
		}
		after = page.Next
	}
}

// waitStored waits until every id in [first, first+n) is stored.
func waitStored(t *testing.T, h *hubtest.Hub, dev string, first, n int) map[string]int {
	t.Helper()
	var got map[string]int
	hubtest.Eventually(t, 10*time.Second, func() error {
		got = stored(t, h, dev)
		for i := first; i < first+n; i++ {
			if got[strconv.Itoa(i)] == 0 {
				return fmt.Errorf("message %d not stored (%d stored)", i, len(got))
			}
		}
		return nil
	})
	return got
}

func waitConnected(t *testing.T, tr *Transport) {
	t.Helper()
	select {
	case <-tr.Connected():
	case <-time.After(15 * time.Second):
		t.Fatal("not connected within 15s")
	}
}
