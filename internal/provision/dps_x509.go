package provision

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// AuthenticateDPSX509 checks a registration that presents a client
// certificate chain (leaf first) instead of a SAS token: the ID scope, the
// leaf's subject CN, which must be the registration id, and the chain,
// which must verify (for client authentication, at the hub's time) against
// a registered, verified CA that an X.509 enrollment group references. The
// device it assigns authenticates with the hub by the same certificate
// (registry.AuthCA). A disabled group is fault.Forbidden, as in
// AuthenticateDPS.
func (s *Service) AuthenticateDPSX509(ctx context.Context, idScope, registrationID string, certs []*x509.Certificate) (*DPSIdentity, error) {
	if !strings.EqualFold(idScope, s.IDScope()) {
		return nil, dpsUnauthorized("unknown ID scope %q", idScope)
	}
	if err := registry.ValidateDeviceID(registrationID); err != nil {
		return nil, dpsUnauthorized("registration id: %s", fault.Public(err))
	}
	if len(certs) == 0 {
		return nil, dpsUnauthorized("no client certificate and no SAS token")
	}
	leaf := certs[0]
	if leaf.Subject.CommonName != registrationID {
		return nil, dpsUnauthorized("the certificate's subject CN %q is not the registration id %q", leaf.Subject.CommonName, registrationID)
	}
	if s.opt.CAs == nil {
		return nil, dpsUnauthorized("this hub has no X.509 enrollments")
	}
	groups, err := s.loadGroups(ctx)
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	now := s.now()
	var lastErr error
	for _, g := range groups {
		a := g.g.Attestation
		if a.Type != AttestationX509 || a.X509 == nil {
			continue
		}
		for _, name := range a.X509.CAReferences.names() {
			root, err := s.verifiedCA(ctx, name)
			if err != nil {
				if !fault.Is(err, fault.NotFound) && !fault.Is(err, fault.Invalid) {
					return nil, err
				}
				continue // a deleted or unverified CA accepts nobody
			}
			roots := x509.NewCertPool()
			roots.AddCert(root)
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				lastErr = err
				continue
			}
			if g.g.ProvisioningStatus == EnrollmentDisabled {
				return nil, enrollmentDisabled("enrollment group", g.g.EnrollmentGroupID)
			}
			return &DPSIdentity{RegistrationID: registrationID, DeviceID: registrationID, GroupID: g.g.EnrollmentGroupID,
				Auth: registry.AuthCA, InitialTwin: g.g.InitialTwin}, nil
		}
	}
	var invalid x509.CertificateInvalidError
	if errors.As(lastErr, &invalid) && invalid.Reason == x509.Expired {
		return nil, dpsUnauthorized("the client certificate (or a CA of its chain) is expired or not yet valid")
	}
	return nil, dpsUnauthorized("the client certificate does not chain to the CA of any X.509 enrollment group")
}

// verifiedCA returns the certificate of a registered, verified CA.
func (s *Service) verifiedCA(ctx context.Context, name string) (*x509.Certificate, error) {
	ca, err := s.opt.CAs.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ca.Verified {
		return nil, fault.Invalidf("certificate authority %q is not verified", name)
	}
	blk, _ := pem.Decode([]byte(ca.Certificate))
	if blk == nil {
		return nil, fault.Invalidf("certificate authority %q: unreadable certificate", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fault.Invalidf("certificate authority %q: %v", name, err)
	}
	return c, nil
}
