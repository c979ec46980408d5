package broker

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// Provisioner authenticates and assigns DPS registrations (PROTOCOL.md §4).
// provision.Service satisfies it.
type Provisioner interface {
	// AuthenticateDPS checks a SAS token for the registration.
	AuthenticateDPS(ctx context.Context, idScope, registrationID, password string) (*provision.DPSIdentity, error)
	// AuthenticateDPSX509 checks a client certificate chain (leaf first).
	AuthenticateDPSX509(ctx context.Context, idScope, registrationID string, certs []*x509.Certificate) (*provision.DPSIdentity, error)
	// AssignDPS creates (or updates) the device of an authenticated registration.
	AssignDPS(ctx context.Context, id *provision.DPSIdentity, payload json.RawMessage) (*provision.RegistrationState, error)
}

// Reasons for refused DPS connections (logs and metrics label).
const (
	reasonDPSOff   = "dps_disabled"     // the hub serves no DPS
	reasonDPSBusy  = "dps_busy"         // too many registration connections at once
	reasonDPSScope = "dps_unauthorized" // wrong ID scope, bad token or certificate
)

// isDPSUsername reports whether a CONNECT username is a DPS registration's
// ({idScope}/registrations/{registrationId}/api-version=...).
func isDPSUsername(u []byte) bool {
	n, err := protocol.ParseUsername(string(u))
	return err == nil && n.DPS
}

// authenticateDPS checks the CONNECT of a registration: the client id must
// be the registration id; the password a SAS token for the registration
// (Node: sr raw with skn=registration; Python: sr encoded, no skn), or,
// without a password, the client certificate chain. A disabled enrollment
// is accepted here and refused on each register request with 401, as
// Azure DPS answers, so the device learns why.
func (b *Broker) authenticateDPS(ctx context.Context, clientID string, user protocol.Username, pk *packets.Packet, certs []*x509.Certificate, now time.Time) (*conn, packets.Code, string) {
	if b.cfg.DPS == nil {
		return nil, packets.ErrBadUsernameOrPassword, reasonDPSOff
	}
	if clientID != user.RegistrationID {
		return nil, packets.ErrBadUsernameOrPassword, reasonWrongDevice
	}
	var (
		id  *provision.DPSIdentity
		err error
	)
	switch {
	case len(pk.Connect.Password) > 0:
		id, err = b.cfg.DPS.AuthenticateDPS(ctx, user.IDScope, user.RegistrationID, string(pk.Connect.Password))
	case len(certs) > 0:
		id, err = b.cfg.DPS.AuthenticateDPSX509(ctx, user.IDScope, user.RegistrationID, certs)
	default:
		return nil, packets.ErrBadUsernameOrPassword, reasonNoCredential
	}
	d := &dpsConn{regID: user.RegistrationID, id: id}
	switch {
	case err == nil:
	case fault.Is(err, fault.Forbidden):
		d.refusal = err
	case fault.Is(err, fault.Unauthorized):
		b.log.Info("dps registration refused", "registration", clientID, "reason", fault.Public(err))
		return nil, packets.ErrBadUsernameOrPassword, reasonDPSScope
	default:
		b.log.Error("dps authentication failed", "registration", clientID, "error", err)
		return nil, packets.ErrServerUnavailable, reasonInternal
	}
	c := &conn{b: b, clientID: clientID, since: now, v5: pk.ProtocolVersion == 5, kind: identDPS, dps: d}
	c.auth = "dps"
	return c, packets.CodeSuccess, ""
}
