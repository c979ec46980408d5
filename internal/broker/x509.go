package broker

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// X.509 device authentication. The TLS listener requests a client
// certificate but does not verify it (tls.RequestClientCert): the handshake
// succeeds with any certificate or none, and the CONNECT is checked here,
// with the registry's knowledge, so that a refusal is an MQTT CONNACK with a
// reason the hub logs and counts instead of a TLS alert that tells nobody
// why. As on Azure IoT Hub a certificate device sends no password; its
// username is the usual "{host}/{deviceId}/?api-version=...".

// Reasons for refused certificate connections (logs and metrics label).
const (
	reasonCertMissing     = "cert_missing"       // a certificate device sent no certificate
	reasonCertExpired     = "cert_expired"       // the leaf (or a CA in its chain) is past NotAfter
	reasonCertNotYetValid = "cert_not_yet_valid" // the leaf is before NotBefore
	reasonCertUntrusted   = "cert_untrusted"     // the chain ends in no registered CA (or a deleted one)
	reasonCertUnverified  = "cert_ca_unverified" // the chain ends in a CA that is registered but not verified
	reasonCertThumbprint  = "cert_thumbprint"    // the thumbprint is not the device's registered one
	reasonCertCN          = "cert_cn_mismatch"   // a CA-signed leaf's CN is not the device id
	reasonCertUsage       = "cert_usage"         // the certificate may not be used for client authentication
	reasonCertSASDevice   = "cert_sas_device"    // a SAS device sent a certificate but no SAS token
	reasonCertModule      = "cert_module"        // module identities authenticate with SAS only
)

// X509Credentials is what the broker needs of the registry to authenticate
// devices by certificate. registry.Service satisfies it; when Credentials
// does not, certificate devices are refused.
type X509Credentials interface {
	DeviceAuth(ctx context.Context, id string) (registry.DeviceAuth, error)
	TrustedCAs(ctx context.Context) (registry.CAPools, error)
}

// certAuth is what a connection authenticated by certificate keeps of it,
// to end the connection when the certificate stops being valid: it passes
// NotAfter, a CA of its chain is deleted, or the device's registration no
// longer accepts it. The leaf is the one the TLS connection holds anyway.
type certAuth struct {
	leaf    *x509.Certificate
	cas     [][sha256.Size]byte // SHA-256 of every CA certificate of the verified chains
	caFirst bool                // a CA of the chain ends before the leaf does
}

// peerCertificates returns the client certificate chain of a TLS
// connection (leaf first), or nil.
func peerCertificates(nc net.Conn) []*x509.Certificate {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	return tc.ConnectionState().PeerCertificates
}

// certCode is a refusal of a certificate; MQTT 5 clients read its reason
// string, so it names only what the certificate itself shows (its validity
// period), never what the registry knows.
func certCode(reason string) packets.Code {
	code := packets.ErrBadUsernameOrPassword
	switch reason {
	case reasonCertExpired:
		code.Reason = "client certificate expired"
	case reasonCertNotYetValid:
		code.Reason = "client certificate not yet valid"
	}
	return code
}

// authenticateX509 authenticates a CONNECT without a password by the
// client certificate chain certs (leaf first).
func (b *Broker) authenticateX509(ctx context.Context, clientID string, pk *packets.Packet, certs []*x509.Certificate, now time.Time) (*conn, packets.Code, string) {
	user, err := protocol.ParseUsername(string(pk.Connect.Username))
	if err != nil || user.DPS {
		return nil, packets.ErrBadUsernameOrPassword, reasonBadUsername
	}
	devID, modID, _ := strings.Cut(clientID, "/")
	if devID == "" || user.DeviceID != devID || user.ModuleID != modID {
		return nil, packets.ErrBadUsernameOrPassword, reasonWrongDevice
	}
	if modID != "" {
		return nil, packets.ErrBadUsernameOrPassword, reasonCertModule
	}
	xc, ok := b.cfg.Credentials.(X509Credentials)
	if !ok {
		return nil, packets.ErrBadUsernameOrPassword, reasonNoCredential
	}
	da, err := xc.DeviceAuth(ctx, devID)
	switch {
	case fault.Is(err, fault.NotFound):
		return nil, packets.ErrBadUsernameOrPassword, reasonUnknown
	case err != nil:
		b.log.Error("device lookup failed", "device", devID, "error", err)
		return nil, packets.ErrServerUnavailable, reasonInternal
	}
	leaf := certs[0]
	var (
		reason, detail string
		chains         [][]*x509.Certificate
	)
	switch da.Type {
	case registry.AuthSelfSigned:
		reason, detail = checkValidity(leaf, now)
		if reason == "" && !thumbprintMatches(leaf, da.Thumbprints) {
			reason, detail = reasonCertThumbprint, "SHA-1 "+registry.SHA1Thumbprint(leaf.Raw)+
				" / SHA-256 "+registry.Thumbprint(leaf.Raw)+" is not registered for the device"
		}
	case registry.AuthCA:
		reason, detail = checkValidity(leaf, now)
		if reason == "" && leaf.Subject.CommonName != devID {
			reason, detail = reasonCertCN, "subject CN "+quote(leaf.Subject.CommonName)+" is not the device id"
		}
		if reason == "" {
			pools, err := xc.TrustedCAs(ctx)
			if err != nil {
				b.log.Error("CA lookup failed", "device", devID, "error", err)
				return nil, packets.ErrServerUnavailable, reasonInternal
			}
			chains, reason, detail = verifyChain(certs, pools, now)
		}
	default:
		// A SAS device needs its token even when it shows a certificate.
		reason, detail = reasonCertSASDevice, "the device authenticates with SAS tokens, and sent none"
	}
	if reason != "" {
		b.log.Info("client certificate refused", "client", clientID, "reason", reason, "detail", detail,
			"subject", leaf.Subject.String(), "issuer", leaf.Issuer.String())
		return nil, certCode(reason), reason
	}
	if da.Status == registry.StatusDisabled {
		return nil, packets.ErrNotAuthorized, reasonDisabled
	}
	c := &conn{b: b, clientID: clientID, since: now, v5: pk.ProtocolVersion == 5}
	c.kind, c.deviceID, c.auth, c.modelID = identDevice, devID, "x509", user.ModelID
	c.cert = newCertAuth(leaf, chains)
	c.expires = c.cert.end(chains).UnixNano()
	return c, packets.CodeSuccess, ""
}

// newCertAuth records what a connection keeps of its certificate: the leaf,
// and the CAs of every chain it was verified by (none when self-signed).
func newCertAuth(leaf *x509.Certificate, chains [][]*x509.Certificate) *certAuth {
	a := &certAuth{leaf: leaf}
	for _, ch := range chains {
		for _, ca := range ch[1:] {
			sum := sha256.Sum256(ca.Raw)
			if !slices.Contains(a.cas, sum) {
				a.cas = append(a.cas, sum)
			}
		}
	}
	return a
}

// end returns when the certificate stops being valid: just after the
// leaf's NotAfter, or earlier when a CA of its chain ends first. With
// several verified chains the connection is valid while any of them is.
// It sets caFirst when a CA decides.
func (a *certAuth) end(chains [][]*x509.Certificate) time.Time {
	end := a.leaf.NotAfter
	if len(chains) > 0 {
		var best time.Time
		for _, ch := range chains {
			chainEnd := ch[0].NotAfter
			for _, ca := range ch[1:] {
				if ca.NotAfter.Before(chainEnd) {
					chainEnd = ca.NotAfter
				}
			}
			if chainEnd.After(best) {
				best = chainEnd
			}
		}
		a.caFirst = best.Before(end)
		end = best
	}
	// The certificate is valid through NotAfter (checkValidity refuses
	// only after it).
	return end.Add(time.Nanosecond)
}

// checkValidity refuses a certificate outside its validity period.
func checkValidity(c *x509.Certificate, now time.Time) (reason, detail string) {
	switch {
	case now.After(c.NotAfter):
		return reasonCertExpired, "expired at " + c.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(c.NotBefore):
		return reasonCertNotYetValid, "not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	}
	return "", ""
}

// thumbprintMatches compares the certificate's SHA-1 or SHA-256 thumbprint,
// by the length of each registered one, with the registered thumbprints.
func thumbprintMatches(c *x509.Certificate, registered [][]byte) bool {
	s1 := sha1.Sum(c.Raw)
	s256 := sha256.Sum256(c.Raw)
	for _, tp := range registered {
		switch len(tp) {
		case sha1.Size:
			if subtle.ConstantTimeCompare(tp, s1[:]) == 1 {
				return true
			}
		case sha256.Size:
			if subtle.ConstantTimeCompare(tp, s256[:]) == 1 {
				return true
			}
		}
	}
	return false
}

// verifyChain verifies certs (leaf first; the rest may be intermediates)
// against the verified CAs, for client authentication.
func verifyChain(certs []*x509.Certificate, pools registry.CAPools, now time.Time) (chains [][]*x509.Certificate, reason, detail string) {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         pools.Verified,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	chains, err := certs[0].Verify(opts)
	if err == nil {
		return chains, "", ""
	}
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		opts.Roots = pools.Unverified
		if _, err2 := certs[0].Verify(opts); err2 == nil {
			return nil, reasonCertUnverified, "the issuing CA is registered but not verified (ferry ca verify)"
		}
		return nil, reasonCertUntrusted, "issuer " + quote(certs[0].Issuer.String()) + " is not a registered, verified CA"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return nil, reasonCertExpired, err.Error() // a CA of the chain: the leaf was checked before
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return nil, reasonCertUsage, err.Error()
	}
	return nil, reasonCertUntrusted, err.Error()
}

func quote(s string) string { return `"` + s + `"` }

// DisconnectCA closes, at once, every connection whose verified
// certificate chain went through the CA with SHA-256 thumbprint
// thumbprint (hex, as registry.CA.Thumbprint), e.g. after the CA was
// deleted. A device whose certificate also chains to another registered
// CA reconnects through that one. It returns the number of connections
// closed.
func (b *Broker) DisconnectCA(thumbprint string) int {
	var want [sha256.Size]byte
	if n, err := hex.Decode(want[:], []byte(thumbprint)); err != nil || n != sha256.Size {
		return 0
	}
	b.mu.RLock()
	var victims []*conn
	for c := range b.devices {
		if c.cert != nil && slices.Contains(c.cert.cas, want) {
			victims = append(victims, c)
		}
	}
	b.mu.RUnlock()
	n := 0
	for _, c := range victims {
		if b.endConn(c, endCADeleted, codeCADeleted, time.Time{}) {
			n++
		}
	}
	return n
}

// RecheckCertificates closes the certificate connections of a device
// whose registration no longer accepts their certificate, e.g. after its
// registered thumbprints or its authentication type changed. A device with
// no certificate connection costs no registry read. It returns the number
// of connections closed.
func (b *Broker) RecheckCertificates(deviceID string) int {
	b.mu.RLock()
	var conns []*conn
	for c := range b.devices {
		if c.cert != nil && c.deviceID == deviceID {
			conns = append(conns, c)
		}
	}
	b.mu.RUnlock()
	if len(conns) == 0 {
		return 0
	}
	xc, ok := b.cfg.Credentials.(X509Credentials)
	if !ok {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	da, err := xc.DeviceAuth(ctx, deviceID)
	if err != nil {
		if !fault.Is(err, fault.NotFound) { // a deleted device is disconnected by the hub anyway
			b.log.Error("device lookup failed; its certificate connections stay", "device", deviceID, "error", err)
		}
		return 0
	}
	n := 0
	for _, c := range conns {
		var accepted bool
		switch da.Type {
		case registry.AuthSelfSigned:
			accepted = thumbprintMatches(c.cert.leaf, da.Thumbprints)
		case registry.AuthCA:
			// Verified through a CA at connect; whether that CA stays
			// registered is DisconnectCA's concern.
			accepted = len(c.cert.cas) > 0
		}
		if !accepted && b.endConn(c, endCertRevoked, codeCertRevoked, time.Time{}) {
			n++
		}
	}
	return n
}
