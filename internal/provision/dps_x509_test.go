package provision_test

import (
	"crypto/x509"

	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// TestDPSX509Group: an enrollment group that references a verified CA
// accepts certificates of that CA whose CN is the registration id, and
// assigns certificateAuthority devices.
func TestDPSX509Group(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := registry.NewService(db, registry.Options{KeyCacheSize: -1})
	svc, err := provision.New(ctx, db, provision.Options{Registry: reg, Twins: &twinsRecorder{calls: map[string][2]string{}},
		CAs: reg, DeviceHost: func() string { return "hub.example:8883" }})
	if err != nil {
		t.Fatal(err)
	}
	group := func(ca string) provision.EnrollmentGroup {
		return provision.EnrollmentGroup{EnrollmentGroupID: "cams", Attestation: provision.Attestation{Type: provision.AttestationX509,
			X509: &provision.X509Attestation{CAReferences: &provision.CAReferences{Primary: ca}}}}
	}
	ca := hubtest.NewCA(t, "Cam Root")
	if _, err := svc.PutEnrollmentGroup(ctx, group("fleet"), false); !fault.Is(err, fault.Invalid) {
		t.Errorf("group of an unregistered CA: %v, want invalid", err)
	}
	added, err := reg.AddCA(ctx, "fleet", ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutEnrollmentGroup(ctx, group("fleet"), false); !fault.Is(err, fault.Invalid) {
		t.Errorf("group of an unverified CA: %v, want invalid", err)
	}
	if _, err := reg.VerifyCA(ctx, "fleet", ca.Issue(t, added.VerificationCode).PEM); err != nil {
		t.Fatal(err)
	}
	g, err := svc.PutEnrollmentGroup(ctx, group("fleet"), false)
	if err != nil {
		t.Fatal(err)
	}
	if g.Attestation.SymmetricKey != nil {
		t.Errorf("an X.509 group got symmetric keys: %+v", g.Attestation)
	}
	if _, err := svc.PutEnrollment(ctx, provision.IndividualEnrollment{RegistrationID: "x",
		Attestation: group("fleet").Attestation}, false); !fault.Is(err, fault.Invalid) {
		t.Errorf("X.509 individual enrollment: %v, want invalid", err)
	}

	scope := svc.IDScope()
	cert := ca.Issue(t, "cam-1")
	id, err := svc.AuthenticateDPSX509(ctx, scope, "cam-1", []*x509.Certificate{cert.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if id.Auth != registry.AuthCA || id.GroupID != "cams" || id.PrimaryKey != "" {
		t.Errorf("identity %+v", id)
	}
	st, err := svc.AssignDPS(ctx, id, nil)
	if err != nil || st.DeviceID != "cam-1" {
		t.Fatalf("assign: %+v, %v", st, err)
	}
	d, err := reg.Get(ctx, "cam-1")
	if err != nil || d.Authentication.Type != registry.AuthCA {
		t.Fatalf("device %+v, %v", d, err)
	}

	other := hubtest.NewCA(t, "Other Root")
	for name, tc := range map[string]struct {
		scope, reg string
		cert       *hubtest.Cert
	}{
		"cn mismatch": {scope, "cam-2", ca.Issue(t, "cam-9")},
		"other CA":    {scope, "cam-2", other.Issue(t, "cam-2")},
		"wrong scope": {"0ne00000000", "cam-1", cert},
		"self-signed": {scope, "cam-3", hubtest.SelfSigned(t, "cam-3")},
	} {
		if _, err := svc.AuthenticateDPSX509(ctx, tc.scope, tc.reg, []*x509.Certificate{tc.cert.Cert}); !fault.Is(err, fault.Unauthorized) {
			t.Errorf("%s: %v, want unauthorized", name, err)
		}
	}
	if _, err := svc.AuthenticateDPSX509(ctx, scope, "cam-1", nil); !fault.Is(err, fault.Unauthorized) {
		t.Errorf("no certificate: %v", err)
	}

	g.ProvisioningStatus = provision.EnrollmentDisabled
	if _, err := svc.PutEnrollmentGroup(ctx, *g, true); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateDPSX509(ctx, scope, "cam-1", []*x509.Certificate{cert.Cert}); !fault.Is(err, fault.Forbidden) {
		t.Errorf("disabled group: %v, want forbidden", err)
	}
	g.ProvisioningStatus = provision.EnrollmentEnabled
	if _, err := svc.PutEnrollmentGroup(ctx, *g, true); err != nil {
		t.Fatal(err)
	}
	// A deleted CA accepts nobody.
	if err := reg.DeleteCA(ctx, "fleet"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateDPSX509(ctx, scope, "cam-1", []*x509.Certificate{cert.Cert}); !fault.Is(err, fault.Unauthorized) {
		t.Errorf("deleted CA: %v, want unauthorized", err)
	}
}
