package transport

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
)

// The DPS client against the hub's DPS endpoint (the MQTT/TLS port).

func dpsScope(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	info, err := h.Client.DPSInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.IDScope
}

func register(t *testing.T, h *hubtest.Hub, cfg DPSConfig) (*Assignment, error) {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = h.DeviceHost()
	}
	if cfg.TLS == nil {
		cfg.TLS = h.TLSConfig()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Register(ctx, cfg)
}

func groupKey(t *testing.T, h *hubtest.Hub, group string) []byte {
	t.Helper()
	g, err := h.Client.PutEnrollmentGroup(context.Background(), provision.EnrollmentGroup{EnrollmentGroupID: group}, false)
	if err != nil {
		t.Fatal(err)
	}
	k, err := protocol.DecodeKey(g.Attestation.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func derived(t *testing.T, groupKey []byte, reg string) []byte {
	t.Helper()
	k, err := protocol.DecodeKey(protocol.DeriveDeviceKey(groupKey, reg))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDPSGroupRegistersAndConnects: a symmetric-key group device registers
// with a model id, is assigned to the hub's device host, and connects there
// with the derived key.
func TestDPSGroupRegistersAndConnects(t *testing.T) {
	h := hubtest.Start(t)
	scope := dpsScope(t, h)
	gk := groupKey(t, h, "line-3")
	key := derived(t, gk, "sensor-17")
	a, err := register(t, h, DPSConfig{IDScope: scope, RegistrationID: "sensor-17", Key: key,
		Payload: json.RawMessage(`{"modelId":"dtmi:com:example:Thermostat;1","site":"north"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if a.AssignedHub != h.DeviceHost() || a.DeviceID != "sensor-17" || a.Status != "assigned" || a.Substatus != "initialAssignment" {
		t.Fatalf("assignment %+v, want sensor-17 at %s", a, h.DeviceHost())
	}
	d, err := h.Client.GetDevice(context.Background(), "sensor-17")
	if err != nil {
		t.Fatal(err)
	}
	if d.ModelID != "dtmi:com:example:Thermostat;1" || d.Authentication.Type != registry.AuthSAS {
		t.Errorf("device %+v", d)
	}
	// The device connects where it was assigned, with the derived key.
	dev := hubtest.Device{ID: a.DeviceID, Key: key, Host: a.AssignedHub}
	rec := &recorder{}
	tr := Start(context.Background(), config(h, dev, newDialer(tlsAddr(h)), rec))
	defer tr.Close()
	waitConnected(t, tr)
	if ok, failed := publishAll(t, tr, dev, 0, 3); ok != 3 || failed != 0 {
		t.Fatalf("acked %d, failed %d", ok, failed)
	}
	// Registering again reprovisions the same device.
	a, err = register(t, h, DPSConfig{IDScope: scope, RegistrationID: "sensor-17", Key: key})
	if err != nil || a.Substatus != "reprovisionedToInitialAssignment" {
		t.Fatalf("second registration: %+v, %v", a, err)
	}
}

// TestDPSIndividualEnrollment: the enrollment's own key, and its device id.
func TestDPSIndividualEnrollment(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	e, err := h.Client.PutEnrollment(ctx, provision.IndividualEnrollment{RegistrationID: "reg-9", DeviceID: "boiler-9"}, false)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := protocol.DecodeKey(e.Attestation.SymmetricKey.SecondaryKey)
	a, err := register(t, h, DPSConfig{IDScope: dpsScope(t, h), RegistrationID: "reg-9", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if a.DeviceID != "boiler-9" || a.AssignedHub != h.DeviceHost() {
		t.Fatalf("assignment %+v", a)
	}
	d, err := h.Client.GetDevice(ctx, "boiler-9")
	if err != nil || d.Authentication.SymmetricKey.SecondaryKey != e.Attestation.SymmetricKey.SecondaryKey {
		t.Fatalf("device %+v, %v", d, err)
	}
}

// TestDPSX509CAGroup: a device with a certificate from a verified CA that
// an X.509 group references registers without a key, gets a
// certificateAuthority device, and connects with the same certificate.
func TestDPSX509CAGroup(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	ca := hubtest.NewCA(t, "Fleet Root")
	added, err := h.Client.AddCA(ctx, "fleet", ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.VerifyCA(ctx, "fleet", ca.Issue(t, added.VerificationCode).PEM); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: "fleet-x509",
		Attestation: provision.Attestation{Type: provision.AttestationX509,
			X509: &provision.X509Attestation{CAReferences: &provision.CAReferences{Primary: "fleet"}}}}, false); err != nil {
		t.Fatal(err)
	}
	scope := dpsScope(t, h)
	cert := ca.Issue(t, "cam-1")
	a, err := register(t, h, DPSConfig{IDScope: scope, RegistrationID: "cam-1", TLS: h.TLSConfigWith(cert)})
	if err != nil {
		t.Fatal(err)
	}
	if a.DeviceID != "cam-1" || a.AssignedHub != h.DeviceHost() {
		t.Fatalf("assignment %+v", a)
	}
	d, err := h.Client.GetDevice(ctx, "cam-1")
	if err != nil || d.Authentication.Type != registry.AuthCA {
		t.Fatalf("device %+v, %v", d, err)
	}
	// The device connects with the certificate it registered with.
	cfg := config(h, hubtest.Device{ID: "cam-1", Host: a.AssignedHub}, newDialer(tlsAddr(h)), &recorder{})
	cfg.Key = nil
	cfg.TLS = h.TLSConfigWith(cert)
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)

	// A certificate whose CN is not the registration id, one from another
	// CA, and one that expired are refused at CONNECT.
	other := hubtest.NewCA(t, "Stranger Root")
	expired := ca.Issue(t, "cam-3", hubtest.Validity(time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)))
	for name, c := range map[string]struct {
		reg  string
		cert *hubtest.Cert
	}{
		"cn mismatch": {"cam-2", ca.Issue(t, "cam-9")},
		"other CA":    {"cam-2", other.Issue(t, "cam-2")},
		"expired":     {"cam-3", expired},
	} {
		_, err := register(t, h, DPSConfig{IDScope: scope, RegistrationID: c.reg, TLS: h.TLSConfigWith(c.cert)})
		var ref *RefusedError
		if !errors.As(err, &ref) || ref.Code != 4 {
			t.Errorf("%s: %v, want a RefusedError with code 4", name, err)
		}
	}
}

// TestDPSRefusals: a tampered derived key and a wrong ID scope are refused
// at CONNECT; a disabled enrollment is refused by the service with 401.
func TestDPSRefusals(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	scope := dpsScope(t, h)
	gk := groupKey(t, h, "g1")
	key := derived(t, gk, "dev-1")

	tampered := append([]byte(nil), key...)
	tampered[0] ^= 1
	for name, cfg := range map[string]DPSConfig{
		"tampered key":   {IDScope: scope, RegistrationID: "dev-1", Key: tampered},
		"other's key":    {IDScope: scope, RegistrationID: "dev-1", Key: derived(t, gk, "dev-2")},
		"wrong ID scope": {IDScope: "0ne00000000", RegistrationID: "dev-1", Key: key},
	} {
		_, err := register(t, h, cfg)
		var ref *RefusedError
		if !errors.As(err, &ref) || ref.Code != 4 {
			t.Errorf("%s: %v, want a RefusedError with code 4", name, err)
		}
	}
	if _, err := h.Client.GetDevice(ctx, "dev-1"); err == nil {
		t.Error("a refused registration created its device")
	}

	g, err := h.Client.EnrollmentGroup(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	g.ProvisioningStatus = provision.EnrollmentDisabled
	if _, err := h.Client.PutEnrollmentGroup(ctx, *g, true); err != nil {
		t.Fatal(err)
	}
	_, err = register(t, h, DPSConfig{IDScope: scope, RegistrationID: "dev-1", Key: key})
	var de *DPSError
	if !errors.As(err, &de) || de.Status != 401 || de.Code != 401002 || !strings.Contains(de.Message, "disabled") || !de.Permanent() {
		t.Fatalf("disabled group: %v, want a permanent DPSError 401 naming the disabled group", err)
	}
}

// TestDPSConcurrentSameRegistration: registrations of one id at once all
// succeed, on one device.
func TestDPSConcurrentSameRegistration(t *testing.T) {
	h := hubtest.Start(t)
	scope := dpsScope(t, h)
	key := derived(t, groupKey(t, h, "g"), "twin-reg")
	const n = 6
	errs := make(chan error, n)
	subs := make(chan string, n)
	for range n {
		go func() {
			a, err := register(t, h, DPSConfig{IDScope: scope, RegistrationID: "twin-reg", Key: key})
			if err == nil {
				subs <- a.Substatus
			}
			errs <- err
		}()
	}
	initial := 0
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(subs)
	for s := range subs {
		if s == "initialAssignment" {
			initial++
		}
	}
	if initial != 1 {
		t.Errorf("%d registrations were initial assignments, want 1", initial)
	}
	list, _, err := h.Client.ListDevices(context.Background(), 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("%d devices, want 1", len(list))
	}
}

// TestDPSOverWebSocket registers through the hub's HTTPS listener
// (/$iothub/websocket), as a device behind a proxy that lets only 443 out.
func TestDPSOverWebSocket(t *testing.T) {
	h := hubtest.Start(t)
	key := derived(t, groupKey(t, h, "ws"), "ws-1")
	d := newDialer(h.HTTPAddr().String())
	a, err := register(t, h, DPSConfig{IDScope: dpsScope(t, h), RegistrationID: "ws-1", Key: key, WebSocket: true, Dial: d.dial})
	if err != nil {
		t.Fatal(err)
	}
	if a.DeviceID != "ws-1" || a.AssignedHub != h.DeviceHost() {
		t.Fatalf("assignment %+v", a)
	}
}
