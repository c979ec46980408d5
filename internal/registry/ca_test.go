package registry_test

import (
	"context"
	"crypto/x509"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// countingStore counts the store reads of the connect path.
type countingStore struct {
	*sqlite.DB
	gets, lists atomic.Int64
}

func (s *countingStore) GetDevice(ctx context.Context, id string) (*registry.Device, error) {
	s.gets.Add(1)
	return s.DB.GetDevice(ctx, id)
}

func (s *countingStore) ListCAs(ctx context.Context) ([]registry.StoredCA, error) {
	s.lists.Add(1)
	return s.DB.ListCAs(ctx)
}

func chainsTo(pool *x509.CertPool, ca *hubtest.CA, leaf *hubtest.Cert) bool {
	_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// TestCAsAndDeviceAuthAreCached checks that the connect path reads the store
// once per device and once for the CAs, that writes through the Service
// take effect at once, and that writes behind its back (another node) are
// seen after CacheTTL.
func TestCAsAndDeviceAuthAreCached(t *testing.T) {
	_, db := newService(t, registry.Options{})
	st := &countingStore{DB: db}
	clk := newClock()
	svc := registry.NewService(st, registry.Options{Now: clk.Now, CacheTTL: time.Minute})
	ctx := context.Background()

	// Certificates are checked against the real time; the clock only drives the cache.
	ca := hubtest.NewCA(t, "cache root")
	leaf := ca.Issue(t, "dev")
	added, err := svc.AddCA(ctx, "cache", ca.PEM)
	must(t, err)
	p, err := svc.TrustedCAs(ctx)
	must(t, err)
	if chainsTo(p.Verified, ca, leaf) || !chainsTo(p.Unverified, ca, leaf) {
		t.Fatal("an unverified CA must be in the Unverified pool only")
	}
	proof := ca.Issue(t, added.VerificationCode, hubtest.Validity(clk.Now().Add(-time.Hour), clk.Now().Add(time.Hour)))
	_, err = svc.VerifyCA(ctx, "cache", proof.PEM)
	must(t, err)
	p, err = svc.TrustedCAs(ctx)
	must(t, err)
	if !chainsTo(p.Verified, ca, leaf) {
		t.Fatal("VerifyCA did not reach the cached pools")
	}
	before := st.lists.Load()
	for range 100 {
		_, err := svc.TrustedCAs(ctx)
		must(t, err)
	}
	if n := st.lists.Load() - before; n != 0 {
		t.Errorf("100 TrustedCAs calls read the store %d times, want 0", n)
	}

	// Deleted behind the Service's back: trusted until the TTL runs out.
	must(t, db.DeleteCA(ctx, "cache"))
	p, _ = svc.TrustedCAs(ctx)
	if !chainsTo(p.Verified, ca, leaf) {
		t.Fatal("the cache should still hold the CA within the TTL")
	}
	clk.Advance(time.Minute + time.Second)
	p, _ = svc.TrustedCAs(ctx)
	if chainsTo(p.Verified, ca, leaf) {
		t.Fatal("a CA deleted by another node is still trusted after the TTL")
	}

	// DeviceAuth: one store read, then the cache; Update drops the entry.
	tp := strings.ToLower(registry.SHA1Thumbprint(leaf.Cert.Raw))
	_, err = svc.Create(ctx, registry.Device{DeviceID: "tp", Authentication: registry.Authentication{
		Type: registry.AuthSelfSigned, X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: &tp}}})
	must(t, err)
	before = st.gets.Load()
	for range 100 {
		a, err := svc.DeviceAuth(ctx, "tp")
		must(t, err)
		if a.Type != registry.AuthSelfSigned || len(a.Thumbprints) != 1 || len(a.Thumbprints[0]) != 20 {
			t.Fatalf("DeviceAuth = %+v", a)
		}
		a.Thumbprints[0][0] ^= 0xff // the caller's own copy
	}
	if n := st.gets.Load() - before; n != 1 {
		t.Errorf("100 DeviceAuth calls read the store %d times, want 1", n)
	}
	d, err := svc.Get(ctx, "tp")
	must(t, err)
	tp256 := registry.Thumbprint(leaf.Cert.Raw)
	d.Authentication.X509Thumbprint.SecondaryThumbprint = &tp256
	_, err = svc.Update(ctx, *d, "")
	must(t, err)
	a, err := svc.DeviceAuth(ctx, "tp")
	must(t, err)
	if len(a.Thumbprints) != 2 || len(a.Thumbprints[1]) != 32 {
		t.Fatalf("after Update: %+v", a)
	}
	must(t, svc.Delete(ctx, "tp", ""))
	if _, err := svc.DeviceAuth(ctx, "tp"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}

func TestAddCARefusals(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := context.Background()
	ca := hubtest.NewCA(t, "r")
	for _, tc := range []struct {
		name, pem, want string
	}{
		{"", ca.PEM, "name"},
		{"a/b", ca.PEM, "not allowed"},
		{"x", "", "PEM"},
		{"x", ca.PEM + ca.PEM, "more than one"},
		{"x", ca.Issue(t, "leaf").PEM, "not a CA"},
	} {
		_, err := svc.AddCA(ctx, tc.name, tc.pem)
		wantFault(t, err, fault.Invalid, tc.want)
	}
	_, err := svc.VerifyCA(ctx, "ghost", ca.PEM)
	wantFault(t, err, fault.NotFound)
	must(t, func() error { _, err := svc.AddCA(ctx, "r", ca.PEM); return err }())
	// Verifying with the CA certificate itself proves nothing: its CN is not the code.
	_, err = svc.VerifyCA(ctx, "r", ca.PEM)
	wantFault(t, err, fault.Invalid, "verification code")
}

// TestCAChangesNotified checks that SubscribeCAs reports adding, verifying
// and deleting a CA with its thumbprint, after the cache was dropped (a
// subscriber that looks the CAs up sees the change), and nothing after
// cancel or for a failed delete.
func TestCAChangesNotified(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := context.Background()
	ca := hubtest.NewCA(t, "notify root")
	leaf := ca.Issue(t, "dev")
	var got []registry.CAChange
	trustedAtDelete := true
	cancel := svc.SubscribeCAs(func(c registry.CAChange) {
		got = append(got, c)
		if c.Kind == registry.CADeleted {
			p, err := svc.TrustedCAs(ctx)
			must(t, err)
			trustedAtDelete = chainsTo(p.Verified, ca, leaf)
		}
	})
	added, err := svc.AddCA(ctx, "notify", ca.PEM)
	must(t, err)
	_, err = svc.VerifyCA(ctx, "notify", ca.Issue(t, added.VerificationCode).PEM)
	must(t, err)
	if _, err := svc.TrustedCAs(ctx); err != nil { // fills the cache, which the delete must drop
		t.Fatal(err)
	}
	must(t, svc.DeleteCA(ctx, "notify"))
	if err := svc.DeleteCA(ctx, "notify"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("deleting a missing CA: %v", err)
	}
	want := []registry.CAChange{
		{Kind: registry.CAAdded, Name: "notify", Thumbprint: added.Thumbprint},
		{Kind: registry.CAVerified, Name: "notify", Thumbprint: added.Thumbprint},
		{Kind: registry.CADeleted, Name: "notify", Thumbprint: added.Thumbprint},
	}
	if len(got) != len(want) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d: %+v (%s), want %+v", i, got[i], got[i].Kind, want[i])
		}
	}
	if added.Thumbprint != registry.Thumbprint(ca.Cert.Raw) {
		t.Errorf("thumbprint %s is not the SHA-256 of the certificate", added.Thumbprint)
	}
	if trustedAtDelete {
		t.Error("a subscriber told of the delete still found the CA trusted")
	}
	cancel()
	cancel()
	_, err = svc.AddCA(ctx, "notify", ca.PEM)
	must(t, err)
	if len(got) != len(want) {
		t.Errorf("notified after cancel: %+v", got[len(want):])
	}
}
