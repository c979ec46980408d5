package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/registry"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var testSerial int64

// mkCert signs a certificate for cn with parent (nil: self-signed).
func mkCert(t *testing.T, cn string, isCA bool, parent *testCert, notBefore, notAfter time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	testSerial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(testSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key}
}

func TestVerifyChainReasons(t *testing.T) {
	now := time.Now()
	valid := func() (time.Time, time.Time) { return now.Add(-time.Hour), now.Add(time.Hour) }
	nb, na := valid()
	root := mkCert(t, "root", true, nil, nb, na)
	pending := mkCert(t, "pending root", true, nil, nb, na)
	inter := mkCert(t, "inter", true, root, nb, na)
	oldInter := mkCert(t, "old inter", true, root, now.Add(-3*time.Hour), now.Add(-2*time.Hour))
	pools := registry.CAPools{Verified: x509.NewCertPool(), Unverified: x509.NewCertPool()}
	pools.Verified.AddCert(root.cert)
	pools.Unverified.AddCert(pending.cert)

	cases := []struct {
		name  string
		chain []*x509.Certificate
		want  string
	}{
		{"direct", []*x509.Certificate{mkCert(t, "d", false, root, nb, na).cert}, ""},
		{"through an intermediate", []*x509.Certificate{mkCert(t, "d", false, inter, nb, na).cert, inter.cert}, ""},
		{"intermediate missing", []*x509.Certificate{mkCert(t, "d", false, inter, nb, na).cert}, reasonCertUntrusted},
		{"expired intermediate", []*x509.Certificate{mkCert(t, "d", false, oldInter, nb, na).cert, oldInter.cert}, reasonCertExpired},
		{"unverified root", []*x509.Certificate{mkCert(t, "d", false, pending, nb, na).cert}, reasonCertUnverified},
		{"self-signed", []*x509.Certificate{mkCert(t, "d", false, nil, nb, na).cert}, reasonCertUntrusted},
	}
	for _, tc := range cases {
		if _, got, detail := verifyChain(tc.chain, pools, now); got != tc.want {
			t.Errorf("%s: reason %q (%s), want %q", tc.name, got, detail, tc.want)
		}
	}
}

func TestThumbprintMatches(t *testing.T) {
	c := mkCert(t, "d", false, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)).cert
	s1, s256 := sha1.Sum(c.Raw), sha256.Sum256(c.Raw)
	other := sha256.Sum256([]byte("other"))
	for _, tc := range []struct {
		name string
		reg  [][]byte
		want bool
	}{
		{"sha-1", [][]byte{s1[:]}, true},
		{"sha-256 secondary", [][]byte{other[:], s256[:]}, true},
		{"sha-1 prefix of sha-256", [][]byte{s256[:20]}, false},
		{"none", nil, false},
		{"other", [][]byte{other[:]}, false},
	} {
		if got := thumbprintMatches(c, tc.reg); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if r, _ := checkValidity(c, time.Now().Add(2*time.Hour)); r != reasonCertExpired {
		t.Errorf("after NotAfter: %q", r)
	}
	if r, _ := checkValidity(c, time.Now().Add(-2*time.Hour)); r != reasonCertNotYetValid {
		t.Errorf("before NotBefore: %q", r)
	}
	if code := certCode(reasonCertExpired); code.Code != 0x86 || code.Reason == "" {
		t.Errorf("certCode(expired) = %+v", code)
	}
	if code := certCode(reasonCertThumbprint); code != packets.ErrBadUsernameOrPassword {
		t.Errorf("certCode(thumbprint) tells %q; registry facts must not reach the client", code.Reason)
	}
}

// TestCertAuthEnd checks when a certificate connection ends: at the leaf's
// NotAfter, or at a CA's when one of the chain ends first, and which CAs
// it depends on.
func TestCertAuthEnd(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	nb := now.Add(-time.Hour)
	root := mkCert(t, "root", true, nil, nb, now.Add(10*time.Hour))
	inter := mkCert(t, "inter", true, root, nb, now.Add(2*time.Hour))
	pools := registry.CAPools{Verified: x509.NewCertPool(), Unverified: x509.NewCertPool()}
	pools.Verified.AddCert(root.cert)

	short := mkCert(t, "d", false, inter, nb, now.Add(time.Hour)).cert
	long := mkCert(t, "d", false, inter, nb, now.Add(5*time.Hour)).cert
	for _, tc := range []struct {
		name    string
		certs   []*x509.Certificate
		want    time.Time
		caFirst bool
		cas     int
	}{
		{"leaf ends first", []*x509.Certificate{short, inter.cert}, now.Add(time.Hour), false, 2},
		{"intermediate ends first", []*x509.Certificate{long, inter.cert}, now.Add(2 * time.Hour), true, 2},
	} {
		chains, reason, detail := verifyChain(tc.certs, pools, now)
		if reason != "" {
			t.Fatalf("%s: %s %s", tc.name, reason, detail)
		}
		a := newCertAuth(tc.certs[0], chains)
		if got := a.end(chains); !got.Equal(tc.want.Add(time.Nanosecond)) || a.caFirst != tc.caFirst || len(a.cas) != tc.cas {
			t.Errorf("%s: ends %s (CA first %v, %d CAs), want %s (%v, %d)", tc.name, got, a.caFirst, len(a.cas), tc.want, tc.caFirst, tc.cas)
		}
		if !slices.Contains(a.cas, sha256.Sum256(root.cert.Raw)) {
			t.Errorf("%s: the root is not among the connection's CAs", tc.name)
		}
	}
	self := mkCert(t, "s", false, nil, nb, now.Add(3*time.Hour)).cert
	if a := newCertAuth(self, nil); !a.end(nil).Equal(now.Add(3*time.Hour+time.Nanosecond)) || a.caFirst || len(a.cas) != 0 {
		t.Errorf("self-signed: %+v ends %s", a, a.end(nil))
	}
}
