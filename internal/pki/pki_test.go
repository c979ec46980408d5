package pki_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/pki"
)

func TestEnsureCreatesOnceAndCoversHosts(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	r1, err := pki.Ensure(dir, []string{"localhost", "127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.CreatedCA {
		t.Fatal("first start must create the CA")
	}
	pemCA, err := os.ReadFile(filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if _, err := r1.Certificate.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	r2, err := pki.Ensure(dir, []string{"localhost", "127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if r2.CreatedCA || r2.Certificate.Leaf.SerialNumber.Cmp(r1.Certificate.Leaf.SerialNumber) != 0 {
		t.Fatal("second start must reuse the CA and the certificate")
	}
	r3, err := pki.Ensure(dir, []string{"localhost", "127.0.0.1", "hub.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if r3.CreatedCA {
		t.Fatal("a new host must not replace the CA")
	}
	if _, err := r3.Certificate.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "hub.example"}); err != nil {
		t.Fatalf("new host not covered: %v", err)
	}
}
