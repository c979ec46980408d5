package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// verifiedCA registers a new CA with the hub and proves possession of its key.
func verifiedCA(t *testing.T, h *hubtest.Hub, name string) *hubtest.CA {
	t.Helper()
	ca := hubtest.NewCA(t, name+" root")
	addVerified(t, h, name, ca)
	return ca
}

func addVerified(t *testing.T, h *hubtest.Hub, name string, ca *hubtest.CA) {
	t.Helper()
	ctx := context.Background()
	added, err := h.Client.AddCA(ctx, name, ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if added.Verified || added.VerificationCode == "" {
		t.Fatalf("a new CA: verified %v, code %q; want unverified with a code", added.Verified, added.VerificationCode)
	}
	proof := ca.Issue(t, added.VerificationCode)
	v, err := h.Client.VerifyCA(ctx, name, proof.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verified || v.VerificationCode != "" {
		t.Fatalf("after proof of possession: %+v", v)
	}
}

func createX509Device(t *testing.T, h *hubtest.Hub, id string, auth registry.AuthType, thumbprints ...string) hubtest.Device {
	t.Helper()
	d := registry.Device{DeviceID: id, Authentication: registry.Authentication{Type: auth}}
	if len(thumbprints) > 0 {
		d.Authentication.X509Thumbprint.PrimaryThumbprint = &thumbprints[0]
	}
	if len(thumbprints) > 1 {
		d.Authentication.X509Thumbprint.SecondaryThumbprint = &thumbprints[1]
	}
	if _, err := h.Client.CreateDevice(context.Background(), d); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return hubtest.Device{ID: id, Host: h.DeviceHost()}
}

// TestX509MosquittoPub publishes with mosquitto_pub authenticated by a
// client certificate, without a password: once signed by a verified CA
// (through an intermediate), once self-signed and matched by thumbprint.
func TestX509MosquittoPub(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ep := tlsEndpoint(t, h)
	dir := t.TempDir()
	root := verifiedCA(t, h, "fleet")
	inter := root.Intermediate(t, "fleet line 3")
	caDev := createX509Device(t, h, "cert-ca", registry.AuthCA)
	self := hubtest.SelfSigned(t, "anything")
	tpDev := createX509Device(t, h, "cert-tp", registry.AuthSelfSigned, strings.ToLower(registry.SHA1Thumbprint(self.Cert.Raw)))

	for _, tc := range []struct {
		dev  hubtest.Device
		cert *hubtest.Cert
	}{{caDev, inter.Issue(t, caDev.ID)}, {tpDev, self}} {
		for _, version := range []string{"mqttv311", "mqttv5"} {
			certFile, keyFile := tc.cert.WriteFiles(t, dir, tc.dev.ID)
			args := append(ep.args(), "--cert", certFile, "--key", keyFile, "-V", version, "-q", "1",
				"-i", tc.dev.ID, "-u", tc.dev.Username(),
				"-t", "devices/"+tc.dev.ID+"/messages/events/%24.mid="+version, "-m", "by certificate")
			if r := runTool(t, "", "mosquitto_pub", args...); r.code != 0 || r.stderr != "" {
				t.Fatalf("%s %s: mosquitto_pub: %s", tc.dev.ID, version, r)
			}
		}
		msgs := deviceMessages(t, h, tc.dev.ID)
		if len(msgs) != 2 {
			t.Fatalf("%s: %d messages stored, want 2", tc.dev.ID, len(msgs))
		}
		for _, m := range msgs {
			if string(m.Body) != "by certificate" || m.SystemProperties.AuthMethod != "x509" {
				t.Errorf("%s: stored %q with auth method %q", tc.dev.ID, m.Body, m.SystemProperties.AuthMethod)
			}
		}
	}

	// The same tool with an expired certificate is refused, and nothing is stored.
	old := inter.Issue(t, caDev.ID, hubtest.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)))
	certFile, keyFile := old.WriteFiles(t, dir, "old")
	args := append(ep.args(), "--cert", certFile, "--key", keyFile, "-V", "mqttv311", "-q", "1",
		"-i", caDev.ID, "-u", caDev.Username(), "-t", "devices/"+caDev.ID+"/messages/events/", "-m", "stale")
	if r := runTool(t, "", "mosquitto_pub", args...); r.code == 0 {
		t.Fatalf("an expired certificate was accepted: %s", r)
	}
	if n := len(deviceMessages(t, h, caDev.ID)); n != 2 {
		t.Fatalf("%d messages stored after the refusal, want 2", n)
	}
	if m := scrape(t, h); !strings.Contains(m, `ferry_mqtt_auth_failures_total{reason="cert_expired"} 1`) {
		t.Errorf("metrics lack the cert_expired refusal:\n%s", grep(m, "auth_failures"))
	}
}

// TestX509Refusals checks every way a certificate is refused, with MQTT 5
// and 3.1.1, and the reason the hub counts for each.
func TestX509Refusals(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	root := verifiedCA(t, h, "good")
	stranger := hubtest.NewCA(t, "stranger root") // never registered
	unverified := hubtest.NewCA(t, "unverified root")
	if _, err := h.Client.AddCA(ctx, "pending", unverified.PEM); err != nil {
		t.Fatal(err)
	}
	deleted := verifiedCA(t, h, "deleted")

	caDev := createX509Device(t, h, "x-ca", registry.AuthCA)
	self1, self2 := hubtest.SelfSigned(t, "x-tp"), hubtest.SelfSigned(t, "x-tp")
	tpDev := createX509Device(t, h, "x-tp", registry.AuthSelfSigned,
		registry.Thumbprint(self1.Cert.Raw), strings.ToLower(registry.SHA1Thumbprint(self2.Cert.Raw)))
	sasDev := h.CreateDevice(t, "x-sas")
	offDev := createX509Device(t, h, "x-off", registry.AuthCA)
	d, err := h.Client.GetDevice(ctx, offDev.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.Status = registry.StatusDisabled
	if _, err := h.Client.UpdateDevice(ctx, *d, ""); err != nil {
		t.Fatal(err)
	}
	deletedCert := deleted.Issue(t, caDev.ID)
	// Connect once with the CA before it is deleted, so the cached pools
	// must be dropped by the delete.
	dial(t, h, caDev, deletedCert, "", 0, 4)
	if err := h.Client.DeleteCA(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}

	// SAS tokens for the right resources, signed with keys that are not the device's.
	caDevToken := hubtest.Device{ID: caDev.ID, Key: sasDev.Key, Host: caDev.Host}.Token(time.Hour)
	forgedSAS := hubtest.Device{ID: sasDev.ID, Key: []byte("not the key of the device, 32 b."), Host: sasDev.Host}.Token(time.Hour)
	past := hubtest.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Minute))
	future := hubtest.Validity(time.Now().Add(time.Hour), time.Now().Add(48*time.Hour))
	cases := []struct {
		name   string
		dev    hubtest.Device
		cert   *hubtest.Cert
		pass   string
		reason string
		v5, v3 byte
	}{
		{"wrong CA", caDev, stranger.Issue(t, caDev.ID), "", "cert_untrusted", badCredentials, v3BadCredentials},
		{"expired", caDev, root.Issue(t, caDev.ID, past), "", "cert_expired", badCredentials, v3BadCredentials},
		{"not yet valid", caDev, root.Issue(t, caDev.ID, future), "", "cert_not_yet_valid", badCredentials, v3BadCredentials},
		{"CN mismatch", caDev, root.Issue(t, "someone-else"), "", "cert_cn_mismatch", badCredentials, v3BadCredentials},
		{"unverified CA", caDev, unverified.Issue(t, caDev.ID), "", "cert_ca_unverified", badCredentials, v3BadCredentials},
		{"deleted CA", caDev, deletedCert, "", "cert_untrusted", badCredentials, v3BadCredentials},
		{"server-only usage", caDev, root.Issue(t, caDev.ID, hubtest.ExtKeyUsage(x509.ExtKeyUsageServerAuth)), "", "cert_usage", badCredentials, v3BadCredentials},
		{"wrong thumbprint", tpDev, hubtest.SelfSigned(t, "x-tp"), "", "cert_thumbprint", badCredentials, v3BadCredentials},
		{"expired thumbprint cert", tpDev, hubtest.SelfSigned(t, "x-tp", past), "", "cert_expired", badCredentials, v3BadCredentials},
		{"X.509 device with a password only", caDev, nil, caDevToken, "cert_missing", badCredentials, v3BadCredentials},
		{"X.509 device with nothing", caDev, nil, "", "no_credentials", badCredentials, v3BadCredentials},
		{"SAS device with a cert and no password", sasDev, root.Issue(t, sasDev.ID), "", "cert_sas_device", badCredentials, v3BadCredentials},
		{"SAS device with a cert and a wrong token", sasDev, root.Issue(t, sasDev.ID), forgedSAS, "bad_signature", badCredentials, v3BadCredentials},
		{"disabled", offDev, root.Issue(t, offDev.ID), "", "disabled", notAuthorized, v3NotAuthorized},
	}
	for _, tc := range cases {
		for _, v := range []byte{5, 4} {
			want := tc.v5
			if v == 4 {
				want = tc.v3
			}
			if code := dial(t, h, tc.dev, tc.cert, tc.pass, want, v); code != want {
				t.Errorf("%s v%d: CONNACK 0x%02x, want 0x%02x", tc.name, v, code, want)
			}
		}
	}
	metrics := scrape(t, h)
	for _, tc := range cases {
		if !strings.Contains(metrics, `ferry_mqtt_auth_failures_total{reason="`+tc.reason+`"}`) {
			t.Errorf("%s: metrics lack auth failures with reason %s", tc.name, tc.reason)
		}
	}

	// What works: both thumbprints (SHA-256 primary, SHA-1 secondary), a
	// CA-signed certificate, and a SAS device's token with a certificate.
	dial(t, h, tpDev, self1, "", 0, 4)
	dial(t, h, tpDev, self2, "", 0, 5)
	dial(t, h, caDev, root.Issue(t, caDev.ID), "", 0, 4)
	dial(t, h, sasDev, root.Issue(t, sasDev.ID), sasDev.Token(time.Hour), 0, 4)
	assertStored(t, h, 0)

	// A changed thumbprint takes effect at once (the cached one is dropped).
	d, err = h.Client.GetDevice(ctx, tpDev.ID)
	if err != nil {
		t.Fatal(err)
	}
	tp := registry.Thumbprint(self2.Cert.Raw)
	d.Authentication.X509Thumbprint = registry.X509Thumbprint{PrimaryThumbprint: &tp}
	if _, err := h.Client.UpdateDevice(ctx, *d, ""); err != nil {
		t.Fatal(err)
	}
	dial(t, h, tpDev, self1, "", badCredentials, 5)
	dial(t, h, tpDev, self2, "", 0, 5)
}

// dial connects over TLS with cert (nil: none) and password, expecting the
// CONNACK code want; it returns the code it got.
func dial(t *testing.T, h *hubtest.Hub, dev hubtest.Device, cert *hubtest.Cert, password string, want, version byte) byte {
	t.Helper()
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfigWith(cert), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: password, Version: version})
	if err != nil {
		t.Fatalf("%s v%d: %v", dev.ID, version, err)
	}
	if c != nil {
		c.Disconnect()
	}
	if want == 0 && code != 0 {
		t.Fatalf("%s v%d: CONNACK 0x%02x, want acceptance", dev.ID, version, code)
	}
	return code
}

// TestCARegistry checks adding, proof of possession (and its refusals),
// listing and deleting CAs over REST.
func TestCARegistry(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	ca := hubtest.NewCA(t, "pop root")
	added, err := h.Client.AddCA(ctx, "pop", ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if added.Thumbprint != registry.Thumbprint(ca.Cert.Raw) || added.Subject == "" || added.NotAfter.IsZero() {
		t.Errorf("added %+v", added)
	}
	other := hubtest.NewCA(t, "pop root") // same name, another key
	bad := []struct {
		name  string
		proof string
		want  string
	}{
		{"wrong CN", ca.Issue(t, "not-the-code").PEM, "verification code"},
		{"signed by another key", other.Issue(t, added.VerificationCode).PEM, "not signed by the key"},
		{"expired proof", ca.Issue(t, added.VerificationCode,
			hubtest.Validity(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))).PEM, "not now"},
		{"not PEM", "hello", "PEM"},
	}
	for _, b := range bad {
		_, err := h.Client.VerifyCA(ctx, "pop", b.proof)
		if fault.KindOf(err) != fault.Invalid || !strings.Contains(fault.Public(err), b.want) {
			t.Errorf("%s: %v, want invalid mentioning %q", b.name, err, b.want)
		}
	}
	if got, err := h.Client.CA(ctx, "pop"); err != nil || got.Verified {
		t.Fatalf("after failed proofs: %+v, %v; want unverified", got, err)
	}
	if _, err := h.Client.VerifyCA(ctx, "pop", ca.Issue(t, strings.ToLower(added.VerificationCode)).PEM); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, pem string
		kind      fault.Kind
	}{
		{"pop", hubtest.NewCA(t, "x").PEM, fault.Conflict},
		{"again", ca.PEM, fault.Conflict}, // the same certificate under another name
		{"leaf", ca.Issue(t, "leaf").PEM, fault.Invalid},
		{"bad name!", ca.PEM, fault.Invalid},
		{"expired", hubtest.NewCA(t, "old", hubtest.Validity(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))).PEM, fault.Invalid},
	} {
		if _, err := h.Client.AddCA(ctx, tc.name, tc.pem); fault.KindOf(err) != tc.kind {
			t.Errorf("add %s: %v, want %v", tc.name, err, tc.kind)
		}
	}
	list, err := h.Client.CAs(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "pop" || !list[0].Verified {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := h.Client.DeleteCA(ctx, "pop"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.CA(ctx, "pop"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := h.Client.DeleteCA(ctx, "pop"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestClientCertificateRequests checks that the MQTT/TLS port asks for a
// client certificate and the HTTPS port does not (browsers would prompt).
func TestClientCertificateRequests(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	asked := func(addr string) bool {
		t.Helper()
		var requested bool
		cfg := h.TLSConfig()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			requested = true
			return &tls.Certificate{}, nil
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		defer c.Close()
		// With TLS 1.3 the request comes with the server's flight; a read
		// makes sure it was processed.
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Read(make([]byte, 1))
		return requested
	}
	if !asked(h.MQTTAddr("tls").String()) {
		t.Error("the MQTT/TLS port does not ask for a client certificate")
	}
	if asked(h.HTTPAddr().String()) {
		t.Error("the HTTPS port asks for a client certificate")
	}
}
