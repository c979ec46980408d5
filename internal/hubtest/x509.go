package hubtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// Test certificates for X.509 device authentication, made with crypto/x509.

var serial atomic.Int64

// CA is a certificate authority made for a test.
type CA struct {
	Cert  *x509.Certificate
	Key   *ecdsa.PrivateKey
	PEM   string
	chain [][]byte // DER of the CA and the intermediates above it, up to (not including) the root
}

// Cert is a leaf certificate with its key.
type Cert struct {
	Cert   *x509.Certificate
	Key    *ecdsa.PrivateKey
	PEM    string // the leaf, then any intermediates
	KeyPEM string
	TLS    tls.Certificate // leaf and intermediates, for tls.Config.Certificates
}

// CertOption changes a certificate template before it is signed.
type CertOption func(*x509.Certificate)

// Validity sets the certificate's validity period.
func Validity(notBefore, notAfter time.Time) CertOption {
	return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = notBefore, notAfter }
}

// ExtKeyUsage sets the certificate's extended key usages.
func ExtKeyUsage(u ...x509.ExtKeyUsage) CertOption {
	return func(c *x509.Certificate) { c.ExtKeyUsage = u }
}

func template(cn string, opts []CertOption) *x509.Certificate {
	c := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1) + time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Ferry tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(der ...[]byte) string {
	var out []byte
	for _, d := range der {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return string(out)
}

func caTemplate(cn string, opts []CertOption) *x509.Certificate {
	tmpl := template(cn, opts)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return tmpl
}

// NewCA makes a self-signed root CA.
func NewCA(t testing.TB, cn string, opts ...CertOption) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(cn, opts)
	cert := sign(t, tmpl, tmpl, &key.PublicKey, key)
	return &CA{Cert: cert, Key: key, PEM: pemOf(cert.Raw)}
}

// Intermediate makes a CA signed by ca.
func (ca *CA) Intermediate(t testing.TB, cn string, opts ...CertOption) *CA {
	t.Helper()
	key := newKey(t)
	cert := sign(t, caTemplate(cn, opts), ca.Cert, &key.PublicKey, ca.Key)
	chain := append([][]byte{cert.Raw}, ca.chain...)
	return &CA{Cert: cert, Key: key, PEM: pemOf(cert.Raw), chain: chain}
}

// Issue makes a client certificate with subject CN cn signed by ca. Its
// chain (PEM and TLS) carries ca's intermediates, not the root.
func (ca *CA) Issue(t testing.TB, cn string, opts ...CertOption) *Cert {
	t.Helper()
	key := newKey(t)
	tmpl := template(cn, append([]CertOption{ExtKeyUsage(x509.ExtKeyUsageClientAuth)}, opts...))
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	return leaf(t, sign(t, tmpl, ca.Cert, &key.PublicKey, ca.Key), key, ca.chain)
}

// SelfSigned makes a self-signed client certificate.
func SelfSigned(t testing.TB, cn string, opts ...CertOption) *Cert {
	t.Helper()
	key := newKey(t)
	tmpl := template(cn, append([]CertOption{ExtKeyUsage(x509.ExtKeyUsageClientAuth)}, opts...))
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	return leaf(t, sign(t, tmpl, tmpl, &key.PublicKey, key), key, nil)
}

func leaf(t testing.TB, cert *x509.Certificate, key *ecdsa.PrivateKey, chain [][]byte) *Cert {
	t.Helper()
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	all := append([][]byte{cert.Raw}, chain...)
	return &Cert{
		Cert:   cert,
		Key:    key,
		PEM:    pemOf(all...),
		KeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})),
		TLS:    tls.Certificate{Certificate: all, PrivateKey: key, Leaf: cert},
	}
}

// WriteFiles writes the certificate chain and the key as PEM files in dir
// (named after name) and returns their paths.
func (c *Cert) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, []byte(c.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(c.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TLSConfigWith trusts the hub's CA and presents cert as the client certificate.
func (h *Hub) TLSConfigWith(cert *Cert) *tls.Config {
	c := h.TLSConfig()
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS}
	}
	return c
}
