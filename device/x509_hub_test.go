package device_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// x509Hub starts a hub with a verified CA and a certificateAuthority device.
func x509Hub(t *testing.T, id string) (*hubtest.Hub, *hubtest.CA) {
	t.Helper()
	h := hubtest.Start(t)
	ctx := context.Background()
	ca := hubtest.NewCA(t, "sdk fleet root")
	added, err := h.Client.AddCA(ctx, "sdk-fleet", ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.VerifyCA(ctx, "sdk-fleet", ca.Issue(t, added.VerificationCode).PEM); err != nil {
		t.Fatal(err)
	}
	_, err = h.Client.CreateDevice(ctx, registry.Device{DeviceID: id,
		Authentication: registry.Authentication{Type: registry.AuthCA}})
	if err != nil {
		t.Fatal(err)
	}
	return h, ca
}

// TestX509ToHub sends with a CA-signed client certificate and no key.
func TestX509ToHub(t *testing.T) {
	h, ca := x509Hub(t, "sdk-cert")
	cert := ca.Issue(t, "sdk-cert").TLS
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: "HostName=" + h.DeviceHost() + ";DeviceId=sdk-cert;x509=true",
		StorePath:        filepath.Join(t.TempDir(), "d.db"),
		CAFile:           h.CAFile(),
		Certificate:      &cert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Stream("", "").Send(ctx, device.Message{Body: []byte("signed"), ID: "x1"}); err != nil {
		t.Fatalf("Send over X.509: %v", err)
	}
	page, err := h.Client.ReadStream(ctx, "*", api.ReadQuery{From: "beginning", Device: "sdk-cert"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || string(page.Messages[0].Body) != "signed" ||
		page.Messages[0].SystemProperties.MessageID != "x1" || page.Messages[0].SystemProperties.AuthMethod != "x509" {
		t.Fatalf("stored %+v", page.Messages)
	}
}

// TestX509ExpiredToHub starts with an expired certificate: the hub refuses
// it at CONNECT and counts the reason, the device reports Disconnected with
// the refusal, and keeps its message.
func TestX509ExpiredToHub(t *testing.T) {
	h, ca := x509Hub(t, "sdk-old")
	cert := ca.Issue(t, "sdk-old", hubtest.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Minute))).TLS
	reasons := make(chan error, 100)
	cfg := device.Config{
		ConnectionString: "HostName=" + h.DeviceHost() + ";DeviceId=sdk-old;x509=true",
		StorePath:        filepath.Join(t.TempDir(), "d.db"),
		CAFile:           h.CAFile(),
		Certificate:      &cert,
		OnStatus: func(s device.Status, err error) {
			if s == device.Disconnected {
				select {
				case reasons <- err:
				default:
				}
			}
		},
	}
	device.SetTestHooks(&cfg, nil, 50*time.Millisecond)
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Stream("", "").Enqueue(context.Background(), device.Message{Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reasons:
		// The hub answers a CONNACK refusal (0x04); the SDK names the
		// certificate's expiry beside it, as the hub's metrics do (below).
		if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "expired at") {
			t.Fatalf("Disconnected reason %v, want the hub's refusal naming the expiry", err)
		}
		t.Logf("Disconnected: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no Disconnected status for an expired certificate")
	}
	if n, _ := c.Pending(); n != 1 {
		t.Fatalf("Pending = %d, want the message kept", n)
	}
	m := scrapeMetrics(t, h)
	if !strings.Contains(m, `ferry_mqtt_auth_failures_total{reason="cert_expired"}`) {
		t.Fatalf("the hub did not count a cert_expired refusal")
	}
}

// scrapeMetrics reads the hub's Prometheus metrics.
func scrapeMetrics(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}}
	resp, err := hc.Get("https://" + h.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
