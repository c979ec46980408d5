package hub_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestX509ExpiryEndsConnection connects certificate devices whose
// certificate, or the intermediate CA of whose chain, ends in 2-3 s: each
// connection is closed after that (MQTT 5 with DISCONNECT 0xA0), Debian's
// mosquitto_sub (3.1.1) is refused when it reconnects with the same
// certificate, and a device whose certificate lasts stays connected.
func TestX509ExpiryEndsConnection(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ep := tlsEndpoint(t, h)
	addr := h.MQTTAddr("tls").String()
	path := needTool(t, "mosquitto_sub")
	root := verifiedCA(t, h, "fleet-expiry")

	// NotAfter carries whole seconds.
	end := time.Now().Add(3 * time.Second).Truncate(time.Second)
	soon := hubtest.Validity(time.Now().Add(-time.Hour), end)

	caDev := createX509Device(t, h, "x-ca", registry.AuthCA)
	interDev := createX509Device(t, h, "x-inter", registry.AuthCA)
	steadyDev := createX509Device(t, h, "x-steady", registry.AuthCA)
	self := hubtest.SelfSigned(t, "anything", soon)
	selfDev := createX509Device(t, h, "x-self", registry.AuthSelfSigned, registry.Thumbprint(self.Cert.Raw))
	shortInter := root.Intermediate(t, "line 4", soon)

	type client struct {
		name, reason string
		c            *hubtest.Conn
	}
	connect := func(name, reason string, dev hubtest.Device, cert *hubtest.Cert) client {
		c, code, err := hubtest.Dial(addr, h.TLSConfigWith(cert), hubtest.ConnectOptions{
			ClientID: dev.ID, Username: dev.Username(), Version: 5})
		if err != nil || code != 0 {
			t.Fatalf("%s: CONNACK 0x%02x %v", name, code, err)
		}
		t.Cleanup(c.Close)
		return client{name, reason, c}
	}
	expiring := []client{
		connect("CA-signed leaf", "client certificate expired", caDev, root.Issue(t, caDev.ID, soon)),
		connect("intermediate CA", "CA certificate of the client certificate's chain expired", interDev, shortInter.Issue(t, interDev.ID)),
	}
	steady := connect("steady", "", steadyDev, root.Issue(t, steadyDev.ID))

	// The self-signed device is Debian's mosquitto_sub.
	certFile, keyFile := self.WriteFiles(t, t.TempDir(), "self")
	sub := startMosquittoSub(t, path, append(ep.args(), "-d", "-V", "mqttv311", "--cert", certFile, "--key", keyFile,
		"-q", "1", "-i", selfDev.ID, "-u", selfDev.Username(), "-t", "devices/"+selfDev.ID+"/messages/devicebound/#"))

	var wg sync.WaitGroup
	for _, cl := range expiring {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, closed, ok := awaitServerClose(t, cl.name, cl.c, end)
			if !ok {
				return
			}
			checkClosedAt(t, cl.name, end, closed)
			checkServerDisconnect(t, cl.name, got, true, 0xA0, cl.reason)
		}()
	}
	exited := sub.awaitExit(t, end)
	wg.Wait()
	checkClosedAt(t, "mosquitto_sub", end, exited)
	if o := sub.out.String(); strings.Count(o, "received CONNACK (0)") != 1 || !strings.Contains(o, "received CONNACK (4)") {
		t.Errorf("mosquitto_sub: want accepted once, then its reconnect with the expired certificate refused:\n%s", o)
	}

	if code, err := steady.c.Publish("devices/"+steadyDev.ID+"/messages/events/", []byte("still here"), 1, false); err != nil || code != 0 {
		t.Fatalf("the device with a lasting certificate: PUBACK 0x%02x %v", code, err)
	}
	m := scrape(t, h)
	if v := metric(t, m, `ferry_mqtt_credential_disconnects_total{reason="cert_expired"}`); v != 3 {
		t.Errorf(`ferry_mqtt_credential_disconnects_total{reason="cert_expired"} %v, want 3`, v)
	}
}
