package provision_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
)

// nodeToken signs as the Node provisioning SDK does: sr raw, skn=registration.
func nodeToken(key []byte, sr string, exp time.Time) string {
	se := strconv.FormatInt(exp.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&skn=registration&se=" + se
}

func TestDPSGroup(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	g := must[*provision.EnrollmentGroup](t)(f.svc.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: "line-3",
		InitialTwin: &provision.InitialTwin{Tags: json.RawMessage(`{"line":3}`)}}, false))
	if g.ProvisioningStatus != "enabled" || g.Attestation.SymmetricKey == nil || g.Attestation.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("group = %+v", g)
	}
	scope := f.svc.IDScope()
	if !strings.HasPrefix(scope, "0ne") || len(scope) != 11 {
		t.Errorf("id scope %q", scope)
	}
	groupKey, _ := protocol.DecodeKey(g.Attestation.SymmetricKey.PrimaryKey)
	derived := protocol.DeriveDeviceKey(groupKey, "sensor-1")
	devKey, _ := protocol.DecodeKey(derived)
	sr := protocol.RegistrationResource(scope, "sensor-1")
	exp := f.clk.now().Add(time.Hour)

	// Node's encoding (sr raw, skn) and Python's (sr encoded, no skn) both work.
	for _, tok := range []string{nodeToken(devKey, sr, exp), protocol.SignSAS(devKey, sr, exp, "")} {
		id, err := f.svc.AuthenticateDPS(ctx, scope, "sensor-1", tok)
		if err != nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		if id.GroupID != "line-3" || id.DeviceID != "sensor-1" || id.PrimaryKey != derived {
			t.Errorf("identity = %+v", id)
		}
	}
	id := must[*provision.DPSIdentity](t)(f.svc.AuthenticateDPS(ctx, scope, "sensor-1", nodeToken(devKey, sr, exp)))
	st := must[*provision.RegistrationState](t)(f.svc.AssignDPS(ctx, id, json.RawMessage(`{"modelId":"dtmi:com:example:Thermostat;1"}`)))
	if st.Status != "assigned" || st.Substatus != "initialAssignment" || st.AssignedHub != "hub.example:8883" || st.DeviceID != "sensor-1" {
		t.Errorf("state = %+v", st)
	}
	d := must[*registry.Device](t)(f.reg.Get(ctx, "sensor-1"))
	if d.Authentication.SymmetricKey.PrimaryKey != derived || d.ModelID != "dtmi:com:example:Thermostat;1" {
		t.Errorf("device = %+v", d)
	}
	if got := f.twins.calls["sensor-1"]; got[0] != `{"line":3}` {
		t.Errorf("initial twin = %q", got)
	}
	// Registering again is a reprovisioning of the same device.
	st = must[*provision.RegistrationState](t)(f.svc.AssignDPS(ctx, id, nil))
	if st.Substatus != "reprovisionedToInitialAssignment" {
		t.Errorf("second registration substatus = %s", st.Substatus)
	}

	// Refusals.
	wrongKey, _ := protocol.DecodeKey(protocol.DeriveDeviceKey(groupKey, "sensor-2"))
	for name, tc := range map[string]struct{ scope, reg, tok string }{
		"wrong id scope":     {"0neFFFFFFFF", "sensor-1", nodeToken(devKey, protocol.RegistrationResource("0neFFFFFFFF", "sensor-1"), exp)},
		"tampered key":       {scope, "sensor-1", nodeToken(wrongKey, sr, exp)},
		"other registration": {scope, "sensor-2", nodeToken(devKey, protocol.RegistrationResource(scope, "sensor-2"), exp)},
		"resource mismatch":  {scope, "sensor-1", nodeToken(devKey, protocol.RegistrationResource(scope, "sensor-9"), exp)},
		"expired":            {scope, "sensor-1", nodeToken(devKey, sr, f.clk.now().Add(-time.Minute))},
		"garbage":            {scope, "sensor-1", "SharedAccessSignature nope"},
		"bad registration":   {scope, "bad id", nodeToken(devKey, sr, exp)},
	} {
		if _, err := f.svc.AuthenticateDPS(ctx, tc.scope, tc.reg, tc.tok); !fault.Is(err, fault.Unauthorized) {
			t.Errorf("%s: %v, want unauthorized", name, err)
		}
	}
	for _, p := range []string{`[1]`, `{"modelId":"nope"}`, `{`} {
		if _, err := f.svc.AssignDPS(ctx, id, json.RawMessage(p)); !fault.Is(err, fault.Invalid) {
			t.Errorf("payload %s: %v, want invalid", p, err)
		}
	}
	// A disabled group refuses, at once (the cache is invalidated).
	g.ProvisioningStatus = "disabled"
	must[*provision.EnrollmentGroup](t)(f.svc.PutEnrollmentGroup(ctx, *g, true))
	_, err := f.svc.AuthenticateDPS(ctx, scope, "sensor-1", nodeToken(devKey, sr, exp))
	if e := fault.As(err); e == nil || e.Code != "EnrollmentDisabled" {
		t.Errorf("disabled group: %v", err)
	}
}

func TestDPSIndividual(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	e := must[*provision.IndividualEnrollment](t)(f.svc.PutEnrollment(ctx, provision.IndividualEnrollment{RegistrationID: "reg-9", DeviceID: "boiler-9"}, false))
	if _, err := f.svc.PutEnrollment(ctx, provision.IndividualEnrollment{RegistrationID: "reg-9"}, false); !fault.Is(err, fault.Conflict) {
		t.Errorf("duplicate enrollment: %v", err)
	}
	key, _ := protocol.DecodeKey(e.Attestation.SymmetricKey.SecondaryKey)
	scope := f.svc.IDScope()
	tok := protocol.SignSAS(key, protocol.RegistrationResource(scope, "reg-9"), f.clk.now().Add(time.Hour), "registration")
	id := must[*provision.DPSIdentity](t)(f.svc.AuthenticateDPS(ctx, scope, "reg-9", tok))
	st := must[*provision.RegistrationState](t)(f.svc.AssignDPS(ctx, id, nil))
	if st.DeviceID != "boiler-9" {
		t.Errorf("state = %+v", st)
	}
	if _, err := f.svc.AuthenticateDPS(ctx, scope, "reg-9", strings.Replace(tok, "skn=registration", "skn=device", 1)); err == nil {
		t.Error("a token with another skn was accepted")
	}
	e.ProvisioningStatus = "disabled"
	must[*provision.IndividualEnrollment](t)(f.svc.PutEnrollment(ctx, *e, true))
	if _, err := f.svc.AuthenticateDPS(ctx, scope, "reg-9", tok); !fault.Is(err, fault.Forbidden) {
		t.Errorf("disabled enrollment: %v, want forbidden", err)
	}
	for _, bad := range []provision.IndividualEnrollment{
		{RegistrationID: "bad id"},
		{RegistrationID: "x", ProvisioningStatus: "maybe"},
		{RegistrationID: "x", Attestation: provision.Attestation{Type: "x509"}},
		{RegistrationID: "x", Attestation: provision.Attestation{SymmetricKey: &registry.SymmetricKey{PrimaryKey: "c2hvcnQ="}}},
	} {
		if _, err := f.svc.PutEnrollment(ctx, bad, false); !fault.Is(err, fault.Invalid) {
			t.Errorf("PutEnrollment(%+v) = %v, want invalid", bad, err)
		}
	}
}
