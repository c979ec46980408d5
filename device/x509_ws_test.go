package device_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestWebSocketToHub sends through the hub's HTTPS port, as a device behind
// a firewall that lets only HTTPS out would.
func TestWebSocketToHub(t *testing.T) {
	e := newEnv(t, true)
	httpAddr := e.hub.HTTPAddr().String()
	var d net.Dialer
	device.SetTestHooks(&e.cfg, func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, httpAddr)
	}, 50*time.Millisecond)
	e.cfg.WebSocket = true
	c := e.start(t)
	ids := enqueueN(t, c, 300)
	flush(t, c)
	exactlyOnce(t, e.read(t), ids)
}

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string // the server's
	client                    tls.Certificate
}

func newPKI(t *testing.T, clientCN string, clientNotAfter time.Time) *pki {
	t.Helper()
	dir := t.TempDir()
	ca := hubtest.NewCA(t, "test CA")
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, []byte(ca.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := ca.Issue(t, "127.0.0.1", hubtest.ExtKeyUsage(x509.ExtKeyUsageServerAuth),
		func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")} })
	certFile, keyFile := srv.WriteFiles(t, dir, "server")
	cli := ca.Issue(t, clientCN, hubtest.Validity(time.Now().Add(-time.Hour), clientNotAfter))
	return &pki{dir: dir, caFile: caFile, certFile: certFile, keyFile: keyFile, client: cli.TLS}
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMosquittoX509 runs Debian's mosquitto with a TLS listener that
// requires client certificates from p's CA (the certificate's CN becomes
// the user name) and a plain listener for mosquitto_sub. It returns both
// ports.
func startMosquittoX509(t *testing.T, p *pki) (tlsPort, plainPort int) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto is not installed (scripts/test installs it)")
		}
		t.Skip("mosquitto is not installed; scripts/test installs it")
	}
	tlsPort, plainPort = freePort(t), freePort(t)
	conf := fmt.Sprintf(`per_listener_settings true
user root
listener %d 127.0.0.1
allow_anonymous true
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
allow_anonymous false
`, plainPort, tlsPort, p.caFile, p.certFile, p.keyFile)
	cf := filepath.Join(p.dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf)
	out, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	// The log is read to its end before the test ends: a line read late
	// would be logged after the test completed, which panics.
	t.Cleanup(func() { cmd.Process.Kill(); <-drained; cmd.Wait() })
	go func() { // keep the pipe drained
		defer close(drained)
		s := bufio.NewScanner(out)
		for s.Scan() {
			t.Log("mosquitto:", s.Text())
		}
	}()
	hubtest.Eventually(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort))
		if err == nil {
			c.Close()
		}
		return err
	})
	return tlsPort, plainPort
}

// subscribe runs mosquitto_sub on topic and returns a channel of its
// "topic payload" lines once the subscription is in place: mosquitto_sub
// also subscribes to a probe topic, in the same SUBSCRIBE, and probes are
// published until one arrives. The probes are left out of lines.
func subscribe(t *testing.T, port int, topic string) <-chan string {
	t.Helper()
	const probe = "ferry-test/subscribed"
	cmd := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", topic, "-t", probe, "-v", "-q", "1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1000)
	subscribed := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), probe+" ") {
				once.Do(func() { close(subscribed) })
				continue
			}
			lines <- s.Text()
		}
	}()
	deadline := time.After(30 * time.Second)
	for {
		if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", probe, "-m", "probe", "-q", "1").CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
		select {
		case <-subscribed:
			return lines
		case <-deadline:
			t.Fatal("mosquitto_sub saw no probe within 30s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestX509WithMosquitto authenticates with a client certificate against a
// broker we did not write, which checks it against its CA.
func TestX509WithMosquitto(t *testing.T) {
	p := newPKI(t, "cert-dev", time.Now().Add(time.Hour))
	tlsPort, plainPort := startMosquittoX509(t, p)
	lines := subscribe(t, plainPort, "devices/cert-dev/messages/events/#")

	cfg := device.Config{
		ConnectionString: fmt.Sprintf("HostName=127.0.0.1:%d;DeviceId=cert-dev;x509=true", tlsPort),
		StorePath:        filepath.Join(t.TempDir(), "d.db"),
		CAFile:           p.caFile,
		Certificate:      &p.client,
	}
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Stream("", "certs").Send(ctx, device.Message{Body: []byte("signed"), ID: "m1"}); err != nil {
		t.Fatalf("Send over X.509: %v", err)
	}
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "devices/cert-dev/messages/events/") || !strings.Contains(l, "stream=certs") ||
			!strings.HasSuffix(l, " signed") {
			t.Fatalf("mosquitto_sub saw %q", l)
		}
	case <-ctx.Done():
		t.Fatal("mosquitto_sub saw nothing")
	}
}

// TestX509Refused checks that a certificate the broker does not trust
// (expired here) keeps the device disconnected with a TLS reason, and
// that the message stays stored.
func TestX509Refused(t *testing.T) {
	good := newPKI(t, "cert-dev", time.Now().Add(time.Hour))
	tlsPort, _ := startMosquittoX509(t, good)
	expired := newPKI(t, "cert-dev", time.Now().Add(-time.Minute)) // another CA, and expired
	reasons := make(chan error, 100)
	cfg := device.Config{
		ConnectionString: fmt.Sprintf("HostName=127.0.0.1:%d;DeviceId=cert-dev;x509=true", tlsPort),
		StorePath:        filepath.Join(t.TempDir(), "d.db"),
		CAFile:           good.caFile,
		Certificate:      &expired.client,
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
		if err == nil {
			t.Fatal("Disconnected without a reason")
		}
		if !strings.Contains(err.Error(), "expired at") {
			t.Fatalf("refusal reason %q does not say the certificate expired", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no Disconnected status for an untrusted certificate")
	}
	if n, _ := c.Pending(); n != 1 {
		t.Fatalf("Pending = %d, want the message kept", n)
	}
	if _, err := device.Start(context.Background(), device.Config{ConnectionString: "HostName=h;DeviceId=d;x509=true",
		StorePath: filepath.Join(t.TempDir(), "e.db")}); err == nil || !strings.Contains(err.Error(), "Certificate") {
		t.Fatalf("Start with x509=true and no certificate: %v", err)
	}
}
