package cli_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestE2ECACommands registers a CA with `ferry ca add`, fails and then
// passes proof of possession with `ferry ca verify`, creates certificate
// devices with `ferry device create --auth`, and connects mosquitto_pub
// with their certificates.
func TestE2ECACommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := hubtest.NewCA(t, "cli fleet root")
	caFile := write("ca.pem", ca.PEM)

	code := strings.TrimSpace(ferry(t, h, "ca", "add", "fleet", "--cert", caFile).expect(t, 0).stdout)
	if len(code) != 32 {
		t.Fatalf("ferry ca add printed %q, want the 32-digit verification code", code)
	}
	ferry(t, h, "ca", "add", "fleet", "--cert", caFile).expect(t, 5)                                 // name taken
	ferry(t, h, "ca", "add", "leaf", "--cert", write("leaf.pem", ca.Issue(t, "x").PEM)).expect(t, 1) // not a CA: the hub refuses
	ferry(t, h, "ca", "add", "nofile", "--cert", filepath.Join(dir, "missing.pem")).expect(t, 2)
	ferry(t, h, "ca", "add", "noflag").expect(t, 2)
	ferry(t, h, "ca", "verify", "ghost", "--cert", caFile).expect(t, 3)

	show := jsonObject(t, ferry(t, h, "ca", "show", "fleet", "--json").expect(t, 0).stdout)
	if show["isVerified"] != false || show["verificationCode"] != code || show["thumbprint"] != registry.Thumbprint(ca.Cert.Raw) {
		t.Fatalf("ca show --json: %v", show)
	}
	if out := ferry(t, h, "ca", "show", "fleet").expect(t, 0).stdout; !strings.Contains(out, code) || !strings.Contains(out, "CN=cli fleet root") {
		t.Errorf("ca show:\n%s", out)
	}

	// Proof of possession: the wrong CN, and the right CN signed by another key.
	other := hubtest.NewCA(t, "cli fleet root")
	r := ferry(t, h, "ca", "verify", "fleet", "--cert", write("wrong-cn.pem", ca.Issue(t, "not-"+code).PEM)).expect(t, 1)
	if !strings.Contains(r.stderr, "verification code") {
		t.Errorf("wrong CN: %s", r)
	}
	r = ferry(t, h, "ca", "verify", "fleet", "--cert", write("wrong-key.pem", other.Issue(t, code).PEM)).expect(t, 1)
	if !strings.Contains(r.stderr, "not signed by the key") {
		t.Errorf("another key: %s", r)
	}
	ferry(t, h, "ca", "verify", "fleet", "--cert", write("proof.pem", ca.Issue(t, code).PEM)).expect(t, 0)
	list := ferry(t, h, "ca", "list").expect(t, 0).stdout
	if !strings.Contains(list, "fleet") || !strings.Contains(list, "true") {
		t.Errorf("ca list:\n%s", list)
	}

	// Devices.
	self := hubtest.SelfSigned(t, "cam-1")
	ferry(t, h, "device", "create", "cam-1", "--auth", "x509-thumbprint",
		"--thumbprint", registry.Thumbprint(hubtest.SelfSigned(t, "old").Cert.Raw),
		"--secondary-thumbprint", strings.ToLower(registry.SHA1Thumbprint(self.Cert.Raw))).expect(t, 0)
	ferry(t, h, "device", "create", "pump-7", "--auth", "x509-ca").expect(t, 0)
	for _, bad := range [][]string{
		{"--auth", "x509-thumbprint"},
		{"--auth", "x509-thumbprint", "--thumbprint", "abc"},
		{"--auth", "x509-ca", "--thumbprint", registry.Thumbprint(self.Cert.Raw)},
		{"--auth", "x509-ca", "--primary-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"--auth", "password"},
	} {
		if r := ferry(t, h, append([]string{"device", "create", "bad-dev"}, bad...)...); r.code != 2 {
			t.Errorf("device create %v: %s", bad, r)
		}
	}
	if out := ferry(t, h, "device", "show", "pump-7").expect(t, 0).stdout; !strings.Contains(out, "certificateAuthority") {
		t.Errorf("device show pump-7:\n%s", out)
	}
	dev := jsonObject(t, ferry(t, h, "device", "show", "cam-1", "--json").expect(t, 0).stdout)
	if path(dev, "authentication", "type") != "selfSigned" {
		t.Errorf("device show cam-1 --json: %v", dev)
	}

	_, port, err := net.SplitHostPort(h.MQTTAddr("tls").String())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		cert *hubtest.Cert
	}{{"cam-1", self}, {"pump-7", ca.Issue(t, "pump-7", hubtest.Validity(time.Now().Add(-time.Minute), time.Now().Add(time.Hour)))}} {
		certFile, keyFile := tc.cert.WriteFiles(t, dir, tc.id)
		r := mosquittoPub(t, "--cafile", h.CAFile(), "-h", "localhost", "-p", port, "--cert", certFile, "--key", keyFile,
			"-V", "mqttv311", "-q", "1", "-i", tc.id, "-u", h.DeviceHost()+"/"+tc.id+"/?api-version=2021-04-12",
			"-t", "devices/"+tc.id+"/messages/events/", "-m", "hello from "+tc.id)
		if r.code != 0 {
			t.Fatalf("mosquitto_pub as %s: %s", tc.id, r)
		}
	}

	// Deleting the CA locks its devices out.
	ferry(t, h, "ca", "delete", "fleet").expect(t, 0)
	ferry(t, h, "ca", "show", "fleet").expect(t, 3)
	certFile, keyFile := ca.Issue(t, "pump-7").WriteFiles(t, dir, "pump-7b")
	r = mosquittoPub(t, "--cafile", h.CAFile(), "-h", "localhost", "-p", port, "--cert", certFile, "--key", keyFile,
		"-V", "mqttv311", "-q", "1", "-i", "pump-7", "-u", h.DeviceHost()+"/pump-7/?api-version=2021-04-12",
		"-t", "devices/pump-7/messages/events/", "-m", "after the CA was deleted")
	if r.code == 0 {
		t.Fatalf("a device of a deleted CA connected: %s", r)
	}
}
