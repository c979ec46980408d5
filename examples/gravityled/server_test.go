package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func init() { log.SetOutput(io.Discard) }

// startServer runs a server with simulated LEDs on a free loopback port.
func startServer(t *testing.T, max int) (*Server, string) {
	t.Helper()
	s := NewServer(newLEDs(&simPWM{}, &simPWM{}), max)
	s.Logf = t.Logf
	addr, err := s.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s, "ws://" + addr.String() + "/ws"
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// reply reads one JSON answer from the server.
func reply(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m map[string]any
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// closeCode reads until the server closes and returns its close frame.
func closeCode(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want a close frame, got %v", err)
		}
		return ce
	}
}

func send(t *testing.T, c *websocket.Conn, kind int, data []byte) {
	t.Helper()
	if err := c.WriteMessage(kind, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func TestFramesDriveLEDs(t *testing.T) {
	s, url := startServer(t, 1)
	c := dial(t, url)
	for _, tc := range []struct {
		kind        int
		data        []byte
		left, right float64
	}{
		{websocket.TextMessage, []byte("0 50 86.6"), 0, 50},
		{websocket.TextMessage, []byte("  -3.5\t-72.25 60  "), 72.3, 0},
		{websocket.BinaryMessage, binaryFrame(Tilt{10, 30, 95}), 0, 30},
		{websocket.BinaryMessage, binaryFrame(Tilt{0, -100, 0}), 100, 0},
		{websocket.TextMessage, []byte("0 0 100"), 0, 0},
	} {
		send(t, c, tc.kind, tc.data)
		m := reply(t, c)
		if m["left"] != tc.left || m["right"] != tc.right {
			t.Errorf("%q: answer %v, want left %v right %v", tc.data, m, tc.left, tc.right)
		}
		if d, _ := s.LEDs.Get(); d != (Duty{tc.left, tc.right}) {
			t.Errorf("%q: LEDs %+v", tc.data, d)
		}
	}
}

func TestConnectionLimit(t *testing.T) {
	s, url := startServer(t, 1)
	first := dial(t, url)
	send(t, first, websocket.TextMessage, []byte("0 20 97"))
	reply(t, first)

	ce := closeCode(t, dial(t, url))
	if ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "too many controllers: 1 of 1 connected") {
		t.Fatalf("second controller: %v", ce)
	}
	if err := s.SetMaxControllers(2); err != nil {
		t.Fatal(err)
	}
	second := dial(t, url)
	send(t, second, websocket.TextMessage, []byte("0 -40 91"))
	if m := reply(t, second); m["left"] != 40.0 {
		t.Fatalf("second controller's answer: %v", m)
	}
	if ce := closeCode(t, dial(t, url)); ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("third controller: %v", ce)
	}
	if err := s.SetMaxControllers(MaxControllersLimit + 1); err == nil {
		t.Fatal("a limit above MaxControllersLimit was accepted")
	}
	// The limit counts connected controllers: one leaves, one may come.
	_ = first.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	closeCode(t, first)
	waitFor(t, func() bool { return s.Controllers() == 1 })
	third := dial(t, url)
	send(t, third, websocket.TextMessage, []byte("0 10 99"))
	if m := reply(t, third); m["right"] != 10.0 {
		t.Fatalf("third controller after one left: %v", m)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMalformedFrames(t *testing.T) {
	s, url := startServer(t, 1)
	c := dial(t, url)
	nan := binaryFrame(Tilt{0, 0, 0})
	copy(nan[4:], []byte{0, 0, 0xc0, 0x7f}) // y = NaN
	for _, tc := range []struct {
		kind int
		data []byte
		want string
	}{
		{websocket.TextMessage, []byte("1 2"), "want three numbers"},
		{websocket.TextMessage, []byte("1 2 3 4"), "got 4 fields"},
		{websocket.TextMessage, []byte("a b c"), `"a" is not a number`},
		{websocket.TextMessage, []byte(""), "got 0 fields"},
		{websocket.TextMessage, []byte("0 NaN 0"), "y = NaN is not in [-100, 100]"},
		{websocket.TextMessage, []byte("0 +Inf 0"), "is not in [-100, 100]"},
		{websocket.TextMessage, []byte("0 100.5 0"), "y = 100.5 is not in [-100, 100]"},
		{websocket.TextMessage, []byte("-1e9 0 0"), "x = -1e+09"},
		{websocket.BinaryMessage, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "a binary frame is 12 bytes"},
		{websocket.BinaryMessage, nil, "got 0"},
		{websocket.BinaryMessage, nan, "y = NaN"},
		{websocket.BinaryMessage, binaryFrame(Tilt{0, 0, math.MaxFloat32}), "z = 3.4"},
	} {
		send(t, c, tc.kind, tc.data)
		m := reply(t, c)
		if e, _ := m["error"].(string); !strings.Contains(e, tc.want) {
			t.Errorf("%q: answer %v, want an error with %q", tc.data, m, tc.want)
		}
	}
	if d, _ := s.LEDs.Get(); d != (Duty{}) {
		t.Fatalf("malformed frames moved the LEDs: %+v", d)
	}
	// The connection survived: a good frame still works.
	send(t, c, websocket.TextMessage, []byte("0 25 96.8"))
	if m := reply(t, c); m["right"] != 25.0 {
		t.Fatalf("after malformed frames: %v", m)
	}

	// maxBadFrames malformed frames in a row: 1007.
	for range maxBadFrames {
		if err := c.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
			break
		}
	}
	if ce := closeCode(t, c); ce.Code != websocket.CloseInvalidFramePayloadData || !strings.Contains(ce.Text, fmt.Sprint(maxBadFrames, " malformed frames in a row")) {
		t.Fatalf("%d malformed frames: %v", maxBadFrames, ce)
	}

	// A huge frame: 1009, and the server goes on.
	waitFor(t, func() bool { return s.Controllers() == 0 })
	big := dial(t, url)
	_ = big.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("1 ", 1<<20)))
	if ce := closeCode(t, big); ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("huge frame: %v", ce)
	}
	waitFor(t, func() bool { return s.Controllers() == 0 })
	after := dial(t, url)
	send(t, after, websocket.BinaryMessage, binaryFrame(Tilt{0, -5, 99}))
	if m := reply(t, after); m["left"] != 5.0 {
		t.Fatalf("after a huge frame: %v", m)
	}
}

func TestShutdownClosesControllers(t *testing.T) {
	s, url := startServer(t, 3)
	var cs []*websocket.Conn
	for range 3 {
		c := dial(t, url)
		send(t, c, websocket.TextMessage, []byte("0 60 80"))
		reply(t, c)
		cs = append(cs, c)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	for _, c := range cs {
		if ce := closeCode(t, c); ce.Code != websocket.CloseGoingAway || ce.Text != "the LED server is shutting down" {
			t.Errorf("close: %v", ce)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not return")
	}
	if s.Controllers() != 0 {
		t.Fatalf("%d controllers after shutdown", s.Controllers())
	}
	if d, _ := s.LEDs.Get(); d != (Duty{}) {
		t.Fatalf("LEDs on after shutdown: %+v", d)
	}
	if _, _, err := websocket.DefaultDialer.Dial(url, nil); err == nil {
		t.Fatal("a controller connected after shutdown")
	}
}

func TestPage(t *testing.T) {
	_, url := startServer(t, 1)
	resp, err := httpGet(strings.Replace(strings.TrimSuffix(url, "ws"), "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp, "devicemotion") || !strings.Contains(resp, `"/ws"`) {
		t.Fatalf("page: %.200s", resp)
	}
}
