package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/stream"
)

// TestScheduleFiresEachDeadlineOnce schedules many connections with
// different deadlines and removes a third of them: each of the others fires
// once, not before its deadline, the removed ones never, and the schedule
// ends empty.
func TestScheduleFiresEachDeadlineOnce(t *testing.T) {
	const n = 3000
	var (
		mu    sync.Mutex
		fired = make(map[*conn]time.Time)
		done  = make(chan struct{}, n)
	)
	s := newSchedule(time.Now, func(c *conn) {
		mu.Lock()
		if _, dup := fired[c]; dup {
			t.Errorf("connection %s fired twice", c.clientID)
		}
		fired[c] = time.Now()
		mu.Unlock()
		done <- struct{}{}
	})
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() { s.run(stop); close(stopped) }()
	defer func() { close(stop); <-stopped }()

	start := time.Now()
	conns := make([]*conn, n)
	var last time.Time
	for i := range conns {
		// A second of room: the removals below must come before any of
		// these deadlines even on a loaded machine under the race detector.
		at := start.Add(time.Second + time.Duration(rand.IntN(1500))*time.Millisecond)
		if at.After(last) {
			last = at
		}
		conns[i] = &conn{clientID: fmt.Sprint("c", i)}
		conns[i].expireAt(at)
		s.add(conns[i])
	}
	// An early deadline added after later ones must wake the schedule.
	early := &conn{clientID: "early"}
	early.expireAt(start.Add(20 * time.Millisecond))
	s.add(early)
	removed := make(map[*conn]bool)
	for i := 0; i < n; i += 3 {
		s.remove(conns[i])
		removed[conns[i]] = true
	}
	if late := time.Since(start); late > 900*time.Millisecond {
		t.Skipf("adding and removing took %s: the machine is too slow for this test's timing", late)
	}
	s.remove(&conn{}) // never scheduled: nothing happens

	want := n - len(removed) + 1
	timeout := time.After(30 * time.Second)
	for range want {
		select {
		case <-done:
		case <-timeout:
			mu.Lock()
			t.Fatalf("%d of %d deadlines fired within 30s", len(fired), want)
		}
	}
	time.Sleep(time.Until(last) + 200*time.Millisecond) // the removed ones had their time too
	mu.Lock()
	defer mu.Unlock()
	if len(fired) != want {
		t.Errorf("%d fired, want %d", len(fired), want)
	}
	for c, at := range fired {
		if removed[c] {
			t.Errorf("removed connection %s fired", c.clientID)
		}
		if at.UnixNano() < c.expires {
			t.Errorf("%s fired %s before its deadline", c.clientID, time.Unix(0, c.expires).Sub(at))
		}
		if c.heapPos != 0 {
			t.Errorf("%s fired but keeps heap position %d", c.clientID, c.heapPos)
		}
	}
	if l := s.len(); l != 0 {
		t.Errorf("schedule holds %d connections after every deadline passed or was removed", l)
	}
}

// fakeCreds knows every device, with one key.
type fakeCreds struct{ key []byte }

func (f fakeCreds) Keys(context.Context, string) ([]byte, []byte, registry.Status, error) {
	return f.key, nil, registry.StatusEnabled, nil
}
func (f fakeCreds) ModuleKeys(context.Context, string, string) ([]byte, []byte, registry.Status, error) {
	return nil, nil, "", fault.New(fault.NotFound, "NotFound", 404000, "no modules")
}
func (f fakeCreds) Policy(context.Context, string) (*registry.Policy, error) {
	return nil, fault.New(fault.NotFound, "NotFound", 404000, "no policies")
}

type nopAppender struct{}

func (nopAppender) Append(m *stream.Message, a stream.Acker, token uint64) error {
	a.Acked(token, nil)
	return nil
}

// TestBrokerEndsConnectionsAtTokenExpiry connects devices over TCP with
// tokens of different lifetimes; half of them disconnect on their own
// before their token ends. The others are closed by the hub once their
// token expires (MQTT 5 ones with DISCONNECT 0xA0), none before, and the
// schedule ends empty: a connection that ended leaves it.
func TestBrokerEndsConnectionsAtTokenExpiry(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	b, err := New(Config{TCP: "127.0.0.1:0", Credentials: fakeCreds{key}, Appender: nopAppender{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := b.Addr("tcp").String()

	type client struct {
		nc      net.Conn
		r       *bufio.Reader
		v5      bool
		expiry  time.Time
		leaving bool // disconnects before its token ends
	}
	const n = 40
	clients := make([]*client, n)
	for i := range clients {
		id := fmt.Sprint("dev-", i)
		// Whole seconds, as tokens carry them; at least 2s so the leaving
		// ones can leave first.
		exp := time.Now().Add(time.Duration(2+i%3) * time.Second).Truncate(time.Second).Add(time.Second)
		cl := &client{v5: i%2 == 0, expiry: exp, leaving: i%4 >= 2}
		version := byte(4)
		if cl.v5 {
			version = 5
		}
		cl.nc, cl.r = dialDevice(t, addr, version, id, "h/"+id+"/?api-version=2021-04-12",
			protocol.SignSAS(key, protocol.DeviceResource("h", id, ""), exp, ""))
		clients[i] = cl
	}
	// A connection joins the schedule right after its CONNACK is written,
	// so a client may read the CONNACK first.
	waitFor(t, func() bool { return b.sched.len() == n }, "every connection to join the schedule")
	for _, cl := range clients {
		if cl.leaving {
			_, _ = cl.nc.Write([]byte{packets.Disconnect << 4, 0})
		}
	}
	waitFor(t, func() bool { return b.sched.len() == n/2 }, "the disconnected devices to leave the schedule")

	var wg sync.WaitGroup
	for _, cl := range clients {
		if cl.leaving {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cl.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			pk, err := readPacket(cl.r, cl.v5)
			closed := time.Now()
			if closed.Before(cl.expiry) {
				t.Errorf("closed %s before the token's expiry", cl.expiry.Sub(closed))
			}
			if over := closed.Sub(cl.expiry); over > 10*time.Second {
				t.Errorf("closed %s after the token's expiry", over)
			}
			if cl.v5 {
				if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0xA0 || pk.Properties.ReasonString != "SAS token expired" {
					t.Errorf("MQTT 5 client: got %v (reason %#x %q), %v; want DISCONNECT 0xA0", pk.FixedHeader, pk.ReasonCode, pk.Properties.ReasonString, err)
					return
				}
				_, err = readPacket(cl.r, true)
			}
			if err == nil {
				t.Errorf("connection still open after its token expired")
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return b.ConnectedCount() == 0 && b.sched.len() == 0 }, "every connection to end and leave the schedule")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialDevice connects a device and reads its CONNACK.
func dialDevice(t *testing.T, addr string, version byte, id, user, pass string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	ack, err := readPacket(r, version == 5)
	if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %#x %v", id, ack.FixedHeader, ack.ReasonCode, err)
	}
	return nc, r
}

// readPacket reads one CONNACK or DISCONNECT.
func readPacket(r *bufio.Reader, v5 bool) (packets.Packet, error) {
	pk := packets.Packet{ProtocolVersion: 4}
	if v5 {
		pk.ProtocolVersion = 5
	}
	h, err := r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(h); err != nil {
		return pk, err
	}
	var lenBuf []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return pk, err
		}
		lenBuf = append(lenBuf, c)
		if c&0x80 == 0 {
			break
		}
	}
	n, _, _ := remainingLength(lenBuf)
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		return pk, pk.ConnackDecode(body)
	case packets.Disconnect:
		if n == 0 {
			return pk, nil
		}
		return pk, pk.DisconnectDecode(body)
	}
	return pk, fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
}
