package device_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"encoding/base64"
	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// link is a test network: it refuses to dial while down, and can cut every
// connection it made.
type link struct {
	up    atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func (l *link) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if !l.up.Load() {
		return nil, errors.New("test link: network unreachable")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// cut closes every connection made so far.
func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

type env struct {
	hub  *hubtest.Hub
	id   string
	cfg  device.Config
	link *link
}

// newEnv starts a hub, registers a device and returns a Config for it whose
// network starts up or down.
func newEnv(t *testing.T, up bool) *env {
	t.Helper()
	h := hubtest.Start(t)
	d := h.CreateDevice(t, "dev1")
	e := &env{hub: h, id: d.ID, link: &link{}}
	e.link.up.Store(up)
	e.cfg = device.Config{
		ConnectionString: fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s",
			d.Host, d.ID, base64.StdEncoding.EncodeToString(d.Key)),
		StorePath: filepath.Join(t.TempDir(), "device.db"),
		CAFile:    h.CAFile(),
	}
	device.SetTestHooks(&e.cfg, e.link.dial, 50*time.Millisecond)
	return e
}

func (e *env) start(t *testing.T) *device.Client {
	t.Helper()
	c, err := device.Start(context.Background(), e.cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// read returns every message the hub stored, in stream order.
func (e *env) read(t *testing.T) []api.Message {
	t.Helper()
	return readAll(t, e.hub.Client)
}

// exactlyOnce checks that the hub holds each of ids once and nothing else.
func exactlyOnce(t *testing.T, msgs []api.Message, ids map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.SystemProperties.MessageID]++
	}
	for id := range ids {
		if seen[id] != 1 {
			t.Errorf("message %s stored %d times", id, seen[id])
		}
	}
	if len(msgs) != len(ids) {
		t.Errorf("hub holds %d messages, want %d", len(msgs), len(ids))
	}
}

func flush(t *testing.T, c *device.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if n, _ := c.Pending(); n != 0 {
		t.Fatalf("Pending after Flush = %d", n)
	}
}

func TestSendAndEnqueueFlush(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	ctx := context.Background()
	const n = 1000
	ids := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sensors := c.Stream("", "sensors")
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 10 {
				id := fmt.Sprintf("send-%d-%d", g, i)
				err := sensors.Send(ctx, device.Message{Body: []byte(`{"t":21}`), ID: id,
					ContentType: "application/json", ContentEncoding: "utf-8", CorrelationID: "c-" + id,
					Properties: map[string]string{"kind": "send", "a b/c": "x&y=z"}})
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				mu.Lock()
				ids[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	def := c.Stream("", "")
	for i := range n {
		info, err := def.Enqueue(ctx, device.Message{Body: []byte("reading " + strconv.Itoa(i)),
			Properties: map[string]string{"kind": "enqueue"}})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if info.ID == "" || info.Seq == 0 {
			t.Fatalf("Enqueue returned %+v", info)
		}
		ids[info.ID] = true
	}
	flush(t, c)

	msgs := e.read(t)
	exactlyOnce(t, msgs, ids)
	for _, m := range msgs {
		id := m.SystemProperties.MessageID
		if strings.HasPrefix(id, "send-") {
			if m.Stream != "sensors" || m.Properties["stream"] != "sensors" || m.Properties["kind"] != "send" ||
				m.Properties["a b/c"] != "x&y=z" || m.SystemProperties.ContentType != "application/json" ||
				m.SystemProperties.ContentEncoding != "utf-8" || m.SystemProperties.CorrelationID != "c-"+id ||
				string(m.Body) != `{"t":21}` || m.DeviceID != e.id {
				t.Fatalf("sent message stored as %+v", m)
			}
		} else if m.Stream != "default" || m.Properties["kind"] != "enqueue" || !strings.HasPrefix(string(m.Body), "reading ") {
			t.Fatalf("enqueued message stored as %+v", m)
		}
	}
}

func TestOfflineFirst(t *testing.T) {
	e := newEnv(t, false)
	var disconnected atomic.Int32
	e.cfg.OnStatus = func(s device.Status, err error) {
		if s == device.Disconnected {
			disconnected.Add(1)
		}
	}
	c := e.start(t)
	ids := map[string]bool{}
	s := c.Stream("", "offline")
	for i := range 200 {
		info, err := s.Enqueue(context.Background(), device.Message{Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatalf("Enqueue while offline: %v", err)
		}
		ids[info.ID] = true
	}
	if n, b := c.Pending(); n != 200 || b == 0 {
		t.Fatalf("Pending = %d, %d bytes; want 200", n, b)
	}
	hubtest.Eventually(t, 20*time.Second, func() error {
		if disconnected.Load() == 0 {
			return errors.New("no Disconnected status yet")
		}
		return nil
	})
	e.link.up.Store(true)
	flush(t, c)
	exactlyOnce(t, e.read(t), ids)
}

func TestDurableAcrossRestart(t *testing.T) {
	e := newEnv(t, false)
	c := e.start(t)
	ids := map[string]bool{}
	for i := range 150 {
		info, err := c.Stream("", "").Enqueue(context.Background(), device.Message{Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		ids[info.ID] = true
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Stream("", "").Enqueue(context.Background(), device.Message{}); !errors.Is(err, device.ErrClosed) {
		t.Fatalf("Enqueue after Close: %v, want ErrClosed", err)
	}

	e.link.up.Store(true)
	c2 := e.start(t)
	if n, _ := c2.Pending(); n != 150 {
		t.Fatalf("Pending after restart = %d, want 150", n)
	}
	flush(t, c2)
	exactlyOnce(t, e.read(t), ids)
}

func TestEnqueueBatch(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	s := c.Stream("", "batch")
	ids := map[string]bool{}
	for b := range 20 {
		ms := make([]device.Message, 50)
		for i := range ms {
			ms[i] = device.Message{Body: []byte(fmt.Sprintf("%d/%d", b, i))}
		}
		infos, err := s.EnqueueBatch(context.Background(), ms)
		if err != nil {
			t.Fatalf("EnqueueBatch: %v", err)
		}
		for i, info := range infos {
			if i > 0 && info.Seq != infos[i-1].Seq+1 {
				t.Fatalf("Seqs not consecutive: %d after %d", info.Seq, infos[i-1].Seq)
			}
			ids[info.ID] = true
		}
	}
	bad := []device.Message{{Body: []byte("ok")}, {Properties: map[string]string{"$x": "y"}}}
	if _, err := s.EnqueueBatch(context.Background(), bad); !errors.Is(err, device.ErrInvalidMessage) {
		t.Fatalf("EnqueueBatch with a bad message: %v, want ErrInvalidMessage", err)
	}
	flush(t, c)
	exactlyOnce(t, e.read(t), ids) // the bad batch stored nothing, not even its good message
}
