package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestCADeleteEndsConnections connects devices with certificates from two
// verified CAs, one of them through an intermediate, and deletes that CA
// over the REST API: its devices are disconnected at once (MQTT 5 with
// DISCONNECT 0x87; Debian's mosquitto_sub, 3.1.1, sees the close and is
// refused when it reconnects), and the device of the other CA stays.
func TestCADeleteEndsConnections(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	ep := tlsEndpoint(t, h)
	addr := h.MQTTAddr("tls").String()
	path := needTool(t, "mosquitto_sub")
	rootA := verifiedCA(t, h, "fleet-a")
	interA := rootA.Intermediate(t, "fleet-a line 1")
	rootB := verifiedCA(t, h, "fleet-b")

	devA := createX509Device(t, h, "ca-a1", registry.AuthCA)
	subDev := createX509Device(t, h, "ca-a2", registry.AuthCA)
	devB := createX509Device(t, h, "ca-b1", registry.AuthCA)
	dial5 := func(dev hubtest.Device, cert *hubtest.Cert) *hubtest.Conn {
		c, code, err := hubtest.Dial(addr, h.TLSConfigWith(cert), hubtest.ConnectOptions{
			ClientID: dev.ID, Username: dev.Username(), Version: 5})
		if err != nil || code != 0 {
			t.Fatalf("%s: CONNACK 0x%02x %v", dev.ID, code, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	a := dial5(devA, interA.Issue(t, devA.ID))
	b := dial5(devB, rootB.Issue(t, devB.ID))
	certFile, keyFile := interA.Issue(t, subDev.ID).WriteFiles(t, t.TempDir(), subDev.ID)
	sub := startMosquittoSub(t, path, append(ep.args(), "-d", "-V", "mqttv311", "--cert", certFile, "--key", keyFile,
		"-q", "1", "-i", subDev.ID, "-u", subDev.Username(), "-t", "devices/"+subDev.ID+"/messages/devicebound/#"))

	// Nothing happens before the delete.
	if code, err := a.Publish("devices/"+devA.ID+"/messages/events/", []byte("before"), 1, false); err != nil || code != 0 {
		t.Fatalf("before the delete: PUBACK 0x%02x %v", code, err)
	}
	deleted := time.Now()
	if err := h.Client.DeleteCA(ctx, "fleet-a"); err != nil {
		t.Fatal(err)
	}
	got, closed, ok := awaitServerClose(t, devA.ID, a, deleted)
	if ok {
		if late := closed.Sub(deleted); late > closeMargin {
			t.Errorf("closed %s after the CA was deleted, want within %s", late, closeMargin)
		}
		checkServerDisconnect(t, devA.ID, got, true, 0x87, "certificate authority removed")
	}
	exited := sub.awaitExit(t, deleted)
	if late := exited.Sub(deleted); late > closeMargin {
		t.Errorf("mosquitto_sub exited %s after the CA was deleted, want within %s", late, closeMargin)
	}
	if o := sub.out.String(); strings.Count(o, "received CONNACK (0)") != 1 || !strings.Contains(o, "received CONNACK (4)") {
		t.Errorf("mosquitto_sub: want accepted once, then its reconnect through the deleted CA refused:\n%s", o)
	}

	// The other CA's device is still served, on the same connection.
	if code, err := b.Publish("devices/"+devB.ID+"/messages/events/", []byte("still here"), 1, false); err != nil || code != 0 {
		t.Fatalf("the other CA's device: PUBACK 0x%02x %v", code, err)
	}
	if err := b.WaitClosed(100 * time.Millisecond); err == nil {
		t.Fatal("the other CA's device was disconnected")
	}
	m := scrape(t, h)
	if v := metric(t, m, `ferry_mqtt_credential_disconnects_total{reason="ca_deleted"}`); v != 2 {
		t.Errorf(`ferry_mqtt_credential_disconnects_total{reason="ca_deleted"} %v, want 2`, v)
	}
}

// TestThumbprintChangeEndsConnection connects a self-signed device and
// updates its registration: an update that keeps its thumbprint keeps the
// connection, one that replaces the thumbprint ends it (DISCONNECT 0x87).
func TestThumbprintChangeEndsConnection(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	cert := hubtest.SelfSigned(t, "cam")
	other := hubtest.SelfSigned(t, "cam")
	dev := createX509Device(t, h, "cam-1", registry.AuthSelfSigned, registry.Thumbprint(cert.Cert.Raw))
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfigWith(cert), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Version: 5})
	if err != nil || code != 0 {
		t.Fatalf("CONNACK 0x%02x %v", code, err)
	}
	defer c.Close()

	update := func(primary, secondary string) {
		t.Helper()
		d, err := h.Client.GetDevice(ctx, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		d.Authentication.X509Thumbprint.PrimaryThumbprint = &primary
		d.Authentication.X509Thumbprint.SecondaryThumbprint = &secondary
		if _, err := h.Client.UpdateDevice(ctx, *d, d.ETag); err != nil {
			t.Fatal(err)
		}
	}
	// The certificate's thumbprint moves to the secondary slot: still accepted.
	update(registry.Thumbprint(other.Cert.Raw), registry.SHA1Thumbprint(cert.Cert.Raw))
	if code, err := c.Publish("devices/"+dev.ID+"/messages/events/", []byte("kept"), 1, false); err != nil || code != 0 {
		t.Fatalf("after an update that keeps the thumbprint: PUBACK 0x%02x %v", code, err)
	}
	changed := time.Now()
	update(registry.Thumbprint(other.Cert.Raw), "")
	got, closed, ok := awaitServerClose(t, dev.ID, c, changed)
	if !ok {
		return
	}
	if late := closed.Sub(changed); late > closeMargin {
		t.Errorf("closed %s after the thumbprint changed, want within %s", late, closeMargin)
	}
	checkServerDisconnect(t, dev.ID, got, true, 0x87, "client certificate no longer registered for the device")
	if v := metric(t, scrape(t, h), `ferry_mqtt_credential_disconnects_total{reason="cert_revoked"}`); v != 1 {
		t.Errorf(`ferry_mqtt_credential_disconnects_total{reason="cert_revoked"} %v, want 1`, v)
	}
}
