package natsd_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/natsd"
	"github.com/nats-io/nats.go/jetstream"
)

func start(t *testing.T, cfg natsd.Config) *natsd.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := natsd.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func TestInProcessJetStreamSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := start(t, natsd.Config{Dir: dir, Sync: true})
	if got := s.ClientURL(); got != "" {
		t.Errorf("ClientURL without Listen = %q, want empty", got)
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := s.Connect(); !errors.Is(err, natsd.ErrStopped) {
		t.Fatalf("Connect after Shutdown: %v, want ErrStopped", err)
	}

	s2 := start(t, natsd.Config{Dir: dir, Sync: true})
	nc2, err := s2.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	st, err := js2.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg after restart: %v", err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("after restart: data %q, want hello", m.Data)
	}
}

func TestListenAndDial(t *testing.T) {
	s := start(t, natsd.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
	url := s.ClientURL()
	if url == "" {
		t.Fatal("ClientURL empty with Listen set")
	}
	nc, err := natsd.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != natsd.DefaultMaxPayload {
		t.Errorf("MaxPayload = %d, want %d", got, natsd.DefaultMaxPayload)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := natsd.Start(ctx, natsd.Config{}); !fault.Is(err, fault.Invalid) {
		t.Errorf("no Dir: %v, want Invalid", err)
	}
	if _, err := natsd.Start(ctx, natsd.Config{Dir: t.TempDir(), Listen: "nope"}); !fault.Is(err, fault.Invalid) {
		t.Errorf("bad Listen: %v, want Invalid", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = natsd.Start(ctx, natsd.Config{Dir: t.TempDir(), Listen: l.Addr().String()})
	if !fault.Is(err, fault.Unavailable) {
		t.Errorf("port in use: %v, want Unavailable", err)
	}
}

func TestDialUnreachable(t *testing.T) {
	if _, err := natsd.Dial("nats://127.0.0.1:1"); !fault.Is(err, fault.Unavailable) {
		t.Errorf("Dial: %v, want Unavailable", err)
	}
}
