package registry

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// CA is a certificate authority registered with the hub. Devices whose
// authentication type is certificateAuthority connect with a certificate
// chain that ends in a verified CA. A CA is added unverified, with a
// verification code; it becomes verified when its owner proves possession
// of its private key by presenting a certificate whose subject CN is the
// code, signed by the CA (Azure IoT Hub's proof of possession).
type CA struct {
	Name             string    `json:"name"`
	Subject          string    `json:"subject"`
	Thumbprint       string    `json:"thumbprint"`     // hex SHA-256 of the DER certificate
	SHA1Thumbprint   string    `json:"sha1Thumbprint"` // hex SHA-1, as Azure's portal shows it
	NotBefore        time.Time `json:"notBefore"`
	NotAfter         time.Time `json:"notAfter"`
	Verified         bool      `json:"isVerified"`
	VerificationCode string    `json:"verificationCode,omitempty"` // set while unverified
	Certificate      string    `json:"certificate"`                // PEM
	Created          time.Time `json:"created"`
	Updated          time.Time `json:"updated"`
	ETag             string    `json:"etag"`
}

// StoredCA is what a CAStore keeps of a CA; the rest of CA is derived from
// the certificate.
type StoredCA struct {
	Name             string
	Certificate      string // PEM
	Thumbprint       string // hex SHA-256, unique among CAs
	Verified         bool
	VerificationCode string
	Created, Updated time.Time
	ETag             string
}

// CAStore persists certificate authorities. The Store given to NewService
// may implement it; without it the CA operations answer 503.
type CAStore interface {
	// CreateCA inserts c; a taken name is CAExistsError, a certificate
	// registered under another name is CAExistsError too.
	CreateCA(ctx context.Context, c *StoredCA) error
	// GetCA returns one CA, or CANotFoundError.
	GetCA(ctx context.Context, name string) (*StoredCA, error)
	// ListCAs returns every CA ordered by name.
	ListCAs(ctx context.Context) ([]StoredCA, error)
	// UpdateCA replaces the verification state of c.Name (Verified,
	// VerificationCode, Updated, ETag) if its etag is still ifMatch, else
	// fails with fault.PreconditionFailed. A missing CA is CANotFoundError.
	UpdateCA(ctx context.Context, c *StoredCA, ifMatch string) error
	// DeleteCA removes a CA, or fails with CANotFoundError.
	DeleteCA(ctx context.Context, name string) error
}

// CANotFoundError is the error for a CA name that is not registered.
func CANotFoundError(name string) *fault.Error {
	return fault.New(fault.NotFound, "CertificateNotFound", 404002, "certificate authority %q not found", name)
}

// CAExistsError is the error for adding a CA whose name or certificate is taken.
func CAExistsError(name string) *fault.Error {
	return fault.New(fault.Conflict, "CertificateAlreadyExists", 409002,
		"certificate authority %q already exists, or its certificate is registered under another name", name)
}

// maxCANameLen bounds a CA name.
const maxCANameLen = 64

// ValidateCAName checks a CA name: 1 to 64 ASCII letters, digits, '-', '_' or '.'.
func ValidateCAName(name string) error {
	if name == "" || len(name) > maxCANameLen {
		return fault.Invalidf("certificate authority name must be 1 to %d characters", maxCANameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fault.Invalidf("certificate authority name %q: character %q is not allowed (use letters, digits, - _ .)", name, c)
		}
	}
	return nil
}

// caStore returns the store's CA methods.
func (s *Service) caStore() (CAStore, error) {
	cs, ok := s.store.(CAStore)
	if !ok {
		return nil, &fault.Error{Kind: fault.Unavailable, Code: "ServiceUnavailable", Num: 503000,
			Msg: "this hub's store does not support certificate authorities"}
	}
	return cs, nil
}

// parseOnePEM decodes exactly one PEM certificate.
func parseOnePEM(what string, pemText string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fault.Invalidf("%s is not a PEM certificate (-----BEGIN CERTIFICATE-----)", what)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fault.Invalidf("%s holds more than one PEM block; give exactly one certificate", what)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fault.Invalidf("%s cannot be parsed: %v", what, err)
	}
	return cert, nil
}

// Thumbprint is the hex SHA-256 of a DER certificate, upper case.
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// SHA1Thumbprint is the hex SHA-1 of a DER certificate, upper case (the
// 40-digit form Azure shows).
func SHA1Thumbprint(der []byte) string {
	sum := sha1.Sum(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// caOf derives the public CA from what the store keeps.
func caOf(sc *StoredCA) (*CA, *x509.Certificate, error) {
	cert, err := parseOnePEM("stored certificate of "+sc.Name, sc.Certificate)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: %w", err)
	}
	c := &CA{
		Name:           sc.Name,
		Subject:        cert.Subject.String(),
		Thumbprint:     Thumbprint(cert.Raw),
		SHA1Thumbprint: SHA1Thumbprint(cert.Raw),
		NotBefore:      cert.NotBefore.UTC(),
		NotAfter:       cert.NotAfter.UTC(),
		Verified:       sc.Verified,
		Certificate:    sc.Certificate,
		Created:        sc.Created,
		Updated:        sc.Updated,
		ETag:           sc.ETag,
	}
	if !sc.Verified {
		c.VerificationCode = sc.VerificationCode
	}
	return c, cert, nil
}

// AddCA registers a CA certificate, unverified, and returns it with the
// verification code its owner must sign (see VerifyCA). The certificate
// must be a CA certificate (basic constraints CA:TRUE) that is valid now.
func (s *Service) AddCA(ctx context.Context, name, certPEM string) (*CA, error) {
	if err := ValidateCAName(name); err != nil {
		return nil, err
	}
	cs, err := s.caStore()
	if err != nil {
		return nil, err
	}
	cert, err := parseOnePEM("the certificate", certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fault.Invalidf("certificate %q is not a CA certificate (basic constraints CA:TRUE is missing)", cert.Subject.String())
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fault.Invalidf("certificate %q may not sign certificates (key usage lacks keyCertSign)", cert.Subject.String())
	}
	now := s.now()
	if now.After(cert.NotAfter) {
		return nil, fault.Invalidf("certificate %q expired at %s", cert.Subject.String(), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	code, err := s.newVerificationCode()
	if err != nil {
		return nil, err
	}
	etag, err := s.newETag()
	if err != nil {
		return nil, err
	}
	sc := &StoredCA{
		Name:             name,
		Certificate:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		Thumbprint:       Thumbprint(cert.Raw),
		VerificationCode: code,
		Created:          now.UTC(),
		Updated:          now.UTC(),
		ETag:             etag,
	}
	if err := cs.CreateCA(ctx, sc); err != nil {
		return nil, fmt.Errorf("registry: add CA %s: %w", name, err)
	}
	s.cas.invalidate()
	s.log.Info("certificate authority added", "ca", name, "subject", cert.Subject.String(), "thumbprint", sc.Thumbprint)
	s.cas.subs.notify(CAChange{Kind: CAAdded, Name: name, Thumbprint: sc.Thumbprint})
	c, _, err := caOf(sc)
	return c, err
}

// VerifyCA completes the proof of possession of a CA's key: proofPEM must
// be a certificate whose subject CN is the CA's verification code, signed
// by the CA, and valid now. The CA is then trusted for device certificates.
func (s *Service) VerifyCA(ctx context.Context, name, proofPEM string) (*CA, error) {
	cs, err := s.caStore()
	if err != nil {
		return nil, err
	}
	if err := ValidateCAName(name); err != nil {
		return nil, CANotFoundError(name)
	}
	sc, err := cs.GetCA(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("registry: verify CA %s: %w", name, err)
	}
	c, caCert, err := caOf(sc)
	if err != nil {
		return nil, err
	}
	if sc.Verified {
		return c, nil // verifying again changes nothing
	}
	proof, err := parseOnePEM("the verification certificate", proofPEM)
	if err != nil {
		return nil, err
	}
	cn := proof.Subject.CommonName
	if subtle.ConstantTimeCompare([]byte(strings.ToUpper(cn)), []byte(strings.ToUpper(sc.VerificationCode))) != 1 {
		return nil, fault.Invalidf("the verification certificate's subject CN is %q, not the verification code of %q", cn, name)
	}
	if err := proof.CheckSignatureFrom(caCert); err != nil {
		return nil, fault.Invalidf("the verification certificate is not signed by the key of %q: %v", name, err)
	}
	if !bytes.Equal(proof.RawIssuer, caCert.RawSubject) {
		return nil, fault.Invalidf("the verification certificate's issuer is %q, not %q", proof.Issuer.String(), caCert.Subject.String())
	}
	now := s.now()
	if now.Before(proof.NotBefore) || now.After(proof.NotAfter) {
		return nil, fault.Invalidf("the verification certificate is valid from %s to %s, not now",
			proof.NotBefore.UTC().Format(time.RFC3339), proof.NotAfter.UTC().Format(time.RFC3339))
	}
	next := *sc
	next.Verified = true
	next.VerificationCode = ""
	next.Updated = now.UTC()
	if next.ETag, err = s.newETag(); err != nil {
		return nil, err
	}
	if err := cs.UpdateCA(ctx, &next, sc.ETag); err != nil {
		return nil, fmt.Errorf("registry: verify CA %s: %w", name, err)
	}
	s.cas.invalidate()
	s.log.Info("certificate authority verified", "ca", name, "subject", c.Subject)
	s.cas.subs.notify(CAChange{Kind: CAVerified, Name: name, Thumbprint: next.Thumbprint})
	c, _, err = caOf(&next)
	return c, err
}

// GetCA returns one CA.
func (s *Service) GetCA(ctx context.Context, name string) (*CA, error) {
	cs, err := s.caStore()
	if err != nil {
		return nil, err
	}
	if ValidateCAName(name) != nil {
		return nil, CANotFoundError(name)
	}
	sc, err := cs.GetCA(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("registry: get CA %s: %w", name, err)
	}
	c, _, err := caOf(sc)
	return c, err
}

// ListCAs returns every CA, ordered by name.
func (s *Service) ListCAs(ctx context.Context) ([]CA, error) {
	cs, err := s.caStore()
	if err != nil {
		return nil, err
	}
	scs, err := cs.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: list CAs: %w", err)
	}
	out := make([]CA, 0, len(scs))
	for i := range scs {
		c, _, err := caOf(&scs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, nil
}

// DeleteCA removes a CA: devices whose certificates chain to it can no
// longer connect, and SubscribeCAs subscribers learn its thumbprint so that
// the connections that it verified can be closed.
func (s *Service) DeleteCA(ctx context.Context, name string) error {
	cs, err := s.caStore()
	if err != nil {
		return err
	}
	if ValidateCAName(name) != nil {
		return CANotFoundError(name)
	}
	// The thumbprint is what connections know of their CAs. Names are
	// unique and a CA's certificate never changes, so the one read here is
	// the one deleted (unless it is deleted and added again in between,
	// and then its connections are cut once more than needed).
	sc, err := cs.GetCA(ctx, name)
	if err != nil {
		return fmt.Errorf("registry: delete CA %s: %w", name, err)
	}
	if err := cs.DeleteCA(ctx, name); err != nil {
		return fmt.Errorf("registry: delete CA %s: %w", name, err)
	}
	s.cas.invalidate()
	s.log.Info("certificate authority deleted", "ca", name, "thumbprint", sc.Thumbprint)
	s.cas.subs.notify(CAChange{Kind: CADeleted, Name: name, Thumbprint: sc.Thumbprint})
	return nil
}

// CAChangeKind says what happened to a certificate authority.
type CAChangeKind int

// The CA change kinds.
const (
	CAAdded    CAChangeKind = iota + 1 // registered, unverified
	CAVerified                         // proof of possession accepted: devices may chain to it
	CADeleted                          // removed: devices may no longer chain to it
)

// String returns the kind's name, for logs.
func (k CAChangeKind) String() string {
	switch k {
	case CAAdded:
		return "added"
	case CAVerified:
		return "verified"
	case CADeleted:
		return "deleted"
	}
	return "unknown"
}

// CAChange describes a successful AddCA, VerifyCA or DeleteCA.
type CAChange struct {
	Kind       CAChangeKind
	Name       string
	Thumbprint string // hex SHA-256 of the CA certificate, upper case (CA.Thumbprint)
}

// SubscribeCAs registers fn to be called after every successful AddCA,
// VerifyCA or DeleteCA made through this Service, as Subscribe does for
// devices: synchronously, on the writer's goroutine, after the store write
// and after the CA cache was dropped, with no Service lock held. fn may
// call the Service but should return quickly. Changes made by other hub
// nodes are not reported. cancel stops further calls and may be called
// more than once.
func (s *Service) SubscribeCAs(fn func(CAChange)) (cancel func()) {
	return s.cas.subs.add(fn)
}

// caSubscribers holds the SubscribeCAs callbacks in subscription order.
type caSubscribers struct {
	mu   sync.Mutex
	next int            // guarded by mu
	subs []caSubscriber // guarded by mu
}

type caSubscriber struct {
	id int
	fn func(CAChange)
}

func (l *caSubscribers) add(fn func(CAChange)) (cancel func()) {
	l.mu.Lock()
	id := l.next
	l.next++
	l.subs = append(l.subs, caSubscriber{id: id, fn: fn})
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.subs = slices.DeleteFunc(l.subs, func(x caSubscriber) bool { return x.id == id })
		})
	}
}

func (l *caSubscribers) notify(c CAChange) {
	l.mu.Lock()
	subs := slices.Clone(l.subs)
	l.mu.Unlock()
	for _, sub := range subs {
		sub.fn(c)
	}
}

// newVerificationCode returns 16 random bytes as 32 upper-case hex digits.
func (s *Service) newVerificationCode() (string, error) {
	b := make([]byte, 16)
	if err := s.random(b); err != nil {
		return "", err
	}
	return strings.ToUpper(hex.EncodeToString(b)), nil
}

// CAPools are the registered CAs as certificate pools, for verifying device
// certificate chains: Verified holds the CAs devices may chain to;
// Unverified the others, so that a refusal can say the chain's CA exists
// but was never verified.
type CAPools struct {
	Verified, Unverified *x509.CertPool
}

// TrustedCAs returns the CA pools for the MQTT connect path. They are
// cached: AddCA, VerifyCA and DeleteCA through this Service drop the cache
// at once; changes by another hub node are seen within CacheTTL. The pools
// are shared: do not modify them.
func (s *Service) TrustedCAs(ctx context.Context) (CAPools, error) {
	now := s.now()
	if p, ok := s.cas.get(now); ok {
		return p, nil
	}
	cs, err := s.caStore()
	if err != nil {
		return CAPools{}, err
	}
	gen := s.cas.generation()
	scs, err := cs.ListCAs(ctx)
	if err != nil {
		return CAPools{}, fmt.Errorf("registry: list CAs: %w", err)
	}
	p := CAPools{Verified: x509.NewCertPool(), Unverified: x509.NewCertPool()}
	for i := range scs {
		_, cert, err := caOf(&scs[i])
		if err != nil {
			s.log.Error("stored CA certificate is unreadable; skipped", "ca", scs[i].Name, "error", err)
			continue
		}
		if scs[i].Verified {
			p.Verified.AddCert(cert)
		} else {
			p.Unverified.AddCert(cert)
		}
	}
	s.cas.put(p, now.Add(s.ttl), gen)
	return p, nil
}

// caCache holds the CA pools built from the store, and the subscribers to
// CA changes (which drop it too).
type caCache struct {
	subs caSubscribers

	mu      sync.RWMutex
	gen     uint64    // guarded by mu; incremented by every invalidate
	pools   CAPools   // guarded by mu
	expires time.Time // guarded by mu; zero when empty
}

func (c *caCache) get(now time.Time) (CAPools, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.expires.IsZero() || !now.Before(c.expires) {
		return CAPools{}, false
	}
	return c.pools, true
}

func (c *caCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores p unless an invalidation happened since gen was read.
func (c *caCache) put(p CAPools, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.pools, c.expires = p, expires
}

func (c *caCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.pools, c.expires = CAPools{}, time.Time{}
}
