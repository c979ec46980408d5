// Package hubtest starts a real hub for tests: on 127.0.0.1 with free ports,
// its data in a temporary directory, shut down when the test ends. It also
// carries a small MQTT client for tests that must see raw protocol answers
// (reason codes, PUBACK timing) which off-the-shelf clients hide.
package hubtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Hub is a running hub under test.
type Hub struct {
	*hub.Hub
	Dir    string      // data directory
	Client *api.Client // REST client with the owner connection string
	CAPool *x509.CertPool
}

// Option changes the hub's configuration before it starts.
type Option func(*hub.Config)

// Start runs a hub until the test ends.
func Start(t testing.TB, opts ...Option) *Hub {
	t.Helper()
	dir := t.TempDir()
	return StartDir(t, dir, opts...)
}

// StartDir runs a hub on an existing data directory (to test restarts).
func StartDir(t testing.TB, dir string, opts ...Option) *Hub {
	t.Helper()
	h, stop, err := Launch(dir, opts...)
	if err != nil {
		t.Fatalf("hubtest: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("hubtest: %v", err)
		}
	})
	return h
}

// Launch runs a hub on dir outside a test (a TestMain, an example), with
// the same loopback listeners as Start. stop shuts it down.
func Launch(dir string, opts ...Option) (h *Hub, stop func() error, err error) {
	cfg := hub.Config{
		DataDir:   dir,
		MQTTAddr:  "127.0.0.1:0",
		MQTTSAddr: "127.0.0.1:0",
		HTTPAddr:  "127.0.0.1:0",
		Logger:    testLogger(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hb, err := hub.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := hb.Start(); err != nil {
		_ = hb.Shutdown(context.Background())
		return nil, nil, err
	}
	stop = func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := hb.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	}
	pemCA, err := os.ReadFile(hb.CAFile())
	if err != nil {
		_ = stop()
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	client, err := api.NewClient(hb.OwnerConnectionString(), api.ClientOptions{CAFile: hb.CAFile()})
	if err != nil {
		_ = stop()
		return nil, nil, fmt.Errorf("api client: %w", err)
	}
	return &Hub{Hub: hb, Dir: dir, Client: client, CAPool: pool}, stop, nil
}

// TLSConfig trusts the hub's CA.
func (h *Hub) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: h.CAPool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Device is a registered device and what it needs to connect.
type Device struct {
	ID   string
	Key  []byte // primary key, decoded
	Host string // host name for the username and the token
}

// CreateDevice registers a device with generated keys.
func (h *Hub) CreateDevice(t testing.TB, id string) Device {
	t.Helper()
	d, err := h.Client.CreateDevice(context.Background(), registry.Device{DeviceID: id})
	if err != nil {
		t.Fatalf("hubtest: create device %s: %v", id, err)
	}
	key, err := protocol.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatalf("hubtest: device key: %v", err)
	}
	return Device{ID: id, Key: key, Host: h.DeviceHost()}
}

// Username is the MQTT username Azure's SDKs send.
func (d Device) Username() string {
	return d.Host + "/" + d.ID + "/?api-version=2021-04-12"
}

// Token is a SAS token for the device valid for ttl.
func (d Device) Token(ttl time.Duration) string {
	return protocol.SignSAS(d.Key, protocol.DeviceResource(d.Host, d.ID, ""), time.Now().Add(ttl), "")
}

func testLogger() *slog.Logger {
	if os.Getenv("FERRY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Eventually polls fn until it returns nil or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}
