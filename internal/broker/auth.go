package broker

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Reasons for refused connections, used in logs and as the metrics label.
const (
	reasonBadUsername  = "bad_username"
	reasonBadToken     = "bad_token"
	reasonExpired      = "expired"
	reasonNotYetValid  = "not_yet_valid"
	reasonSignature    = "bad_signature"
	reasonWrongDevice  = "wrong_device"
	reasonUnknown      = "unknown_device"
	reasonDisabled     = "disabled"
	reasonPolicy       = "policy_not_allowed"
	reasonNoCredential = "no_credentials"
	reasonInternal     = "internal_error"
)

// authenticateOffStack runs authenticate on a worker goroutine.
func (b *Broker) authenticateOffStack(clientID string, pk *packets.Packet) (c *conn, code packets.Code, reason string) {
	return b.authenticateCertOffStack(clientID, pk, nil)
}

// authenticateCertOffStack runs authenticate on a worker goroutine, with
// the client certificate chain of the connection (nil without TLS or
// without a certificate).
func (b *Broker) authenticateCertOffStack(clientID string, pk *packets.Packet, certs []*x509.Certificate) (c *conn, code packets.Code, reason string) {
	if !b.offStack(func() { c, code, reason = b.authenticate(clientID, pk, certs) }) {
		return nil, packets.ErrServerUnavailable, reasonInternal
	}
	return c, code, reason
}

// offStack runs fn on one of the broker's worker goroutines and waits for it.
// Work that goes deep (SQLite's call stacks, crypto) would otherwise grow
// the goroutine stack of the connection that asked for it, and keep it
// grown for the connection's life: Go shrinks stacks only at GC, and idle
// connections cause none. Memory per idle connection is a stated bar, so the
// deep work runs on a few long-lived goroutines instead. It returns false
// when the broker is closing.
func (b *Broker) offStack(fn func()) bool {
	done := make(chan struct{})
	select {
	case b.jobs <- job{fn: fn, done: done}:
	case <-b.stopped:
		return false
	}
	<-done
	return true
}

type job struct {
	fn   func()
	done chan struct{}
}

func (b *Broker) worker() {
	defer b.workers.Done()
	for {
		select {
		case j := <-b.jobs:
			j.fn()
			close(j.done)
		case <-b.stopped:
			return
		}
	}
}

// authenticate checks a CONNECT as Azure IoT Hub does: client id = device id
// (or deviceId/moduleId), username "{host}/{clientId}/?api-version=...",
// password a SAS token signed with the device key or with a policy key (skn).
// A CONNECT without a password authenticates with the client certificate
// chain certs instead (see authenticateX509).
// It returns the new connection, or nil with the CONNACK code and a reason.
func (b *Broker) authenticate(clientID string, pk *packets.Packet, certs []*x509.Certificate) (*conn, packets.Code, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := b.cfg.Now()

	if user, err := protocol.ParseUsername(string(pk.Connect.Username)); err == nil && user.DPS {
		return b.authenticateDPS(ctx, clientID, user, pk, certs, now)
	}
	if len(pk.Connect.Password) == 0 {
		if len(certs) > 0 {
			return b.authenticateX509(ctx, clientID, pk, certs, now)
		}
		return nil, packets.ErrBadUsernameOrPassword, reasonNoCredential
	}
	user, err := protocol.ParseUsername(string(pk.Connect.Username))
	if err != nil || user.DPS {
		return nil, packets.ErrBadUsernameOrPassword, reasonBadUsername
	}
	tok, err := protocol.ParseSAS(string(pk.Connect.Password))
	if err != nil {
		return nil, packets.ErrBadUsernameOrPassword, reasonBadToken
	}
	resource, err := tok.ResourceURI()
	if err != nil {
		return nil, packets.ErrBadUsernameOrPassword, reasonBadToken
	}

	c := &conn{b: b, clientID: clientID, since: now, v5: pk.ProtocolVersion == 5}

	// A token for the hub itself, signed with a policy: an ordinary MQTT
	// client that uses Ferry as a broker outside the device namespaces.
	if tok.KeyName != "" && !strings.Contains(resource, "/devices/") {
		if !strings.EqualFold(resource, user.Host) {
			return nil, packets.ErrBadUsernameOrPassword, reasonWrongDevice
		}
		pol, err := b.cfg.Credentials.Policy(ctx, tok.KeyName)
		if err != nil {
			return nil, packets.ErrBadUsernameOrPassword, reasonPolicy
		}
		if !pol.Has(registry.ServiceConnect) {
			return nil, packets.ErrNotAuthorized, reasonPolicy
		}
		if code, reason := b.verify(tok, now, policyKeys(pol)); reason != "" {
			return nil, code, reason
		}
		c.expireAt(time.Unix(tok.Expiry, 0))
		c.kind, c.auth = identClient, "policy:"+pol.KeyName
		return c, packets.CodeSuccess, ""
	}

	// A device or module: the client id, the username and the token's
	// resource must all name the same identity.
	devID, modID, _ := strings.Cut(clientID, "/")
	if devID == "" || user.DeviceID != devID || user.ModuleID != modID {
		return nil, packets.ErrBadUsernameOrPassword, reasonWrongDevice
	}
	if !strings.EqualFold(resource, protocol.DeviceResource(user.Host, devID, modID)) &&
		!(modID != "" && strings.EqualFold(resource, protocol.DeviceResource(user.Host, devID, ""))) {
		return nil, packets.ErrBadUsernameOrPassword, reasonWrongDevice
	}
	var (
		primary, secondary []byte
		status             registry.Status
		err2               error
	)
	if modID == "" {
		primary, secondary, status, err2 = b.cfg.Credentials.Keys(ctx, devID)
	} else {
		// A module signs with its own keys (a device-scoped policy token
		// is checked below against the policy's keys instead).
		primary, secondary, status, err2 = b.cfg.Credentials.ModuleKeys(ctx, devID, modID)
	}
	err = err2
	switch {
	case fault.Is(err, fault.NotFound):
		return nil, packets.ErrBadUsernameOrPassword, reasonUnknown
	case err != nil:
		b.log.Error("device key lookup failed", "device", devID, "error", err)
		return nil, packets.ErrServerUnavailable, reasonInternal
	}
	if tok.KeyName == "" && modID == "" && primary == nil && secondary == nil {
		// Only devices that do not use SAS have no keys: a certificate
		// device authenticates by its certificate, whatever the password.
		if len(certs) > 0 {
			return b.authenticateX509(ctx, clientID, pk, certs, now)
		}
		return nil, packets.ErrBadUsernameOrPassword, reasonCertMissing
	}
	keys := [][]byte{primary, secondary}
	c.auth = "sas"
	if tok.KeyName != "" {
		pol, err := b.cfg.Credentials.Policy(ctx, tok.KeyName)
		if err != nil {
			return nil, packets.ErrBadUsernameOrPassword, reasonPolicy
		}
		if !pol.Has(registry.DeviceConnect) {
			return nil, packets.ErrNotAuthorized, reasonPolicy
		}
		keys, c.auth = policyKeys(pol), "policy:"+pol.KeyName
	}
	if code, reason := b.verify(tok, now, keys); reason != "" {
		return nil, code, reason
	}
	// The status is checked after the signature, so that a stranger cannot
	// learn which devices exist and are disabled.
	if status == registry.StatusDisabled {
		return nil, packets.ErrNotAuthorized, reasonDisabled
	}
	c.expireAt(time.Unix(tok.Expiry, 0)) // Verify refuses the token from se on
	c.kind, c.deviceID, c.moduleID, c.modelID = identDevice, devID, modID, user.ModelID
	return c, packets.CodeSuccess, ""
}

// verify checks the token against each key; it refuses expired tokens and,
// when MaxTokenLifetime is set, tokens that are not yet valid because they
// claim a lifetime the hub does not grant.
func (b *Broker) verify(tok protocol.SAS, now time.Time, keys [][]byte) (packets.Code, string) {
	var last error
	for _, k := range keys {
		if last != nil && !errors.Is(last, protocol.ErrSASSignature) {
			break // the token was signed with an earlier key: its error is the one to report
		}
		if len(k) == 0 {
			continue
		}
		var err error
		if b.cfg.MaxTokenLifetime > 0 {
			err = tok.VerifyLifetime(k, now, b.cfg.MaxTokenLifetime)
		} else {
			err = tok.Verify(k, now)
		}
		if err == nil {
			return packets.CodeSuccess, ""
		}
		last = err
	}
	switch {
	case errors.Is(last, protocol.ErrSASExpired):
		return packets.ErrBadUsernameOrPassword, reasonExpired
	case errors.Is(last, protocol.ErrSASNotYetValid):
		return packets.ErrBadUsernameOrPassword, reasonNotYetValid
	default:
		return packets.ErrBadUsernameOrPassword, reasonSignature
	}
}

func policyKeys(p *registry.Policy) [][]byte {
	var out [][]byte
	for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
		if b, err := protocol.DecodeKey(k); err == nil {
			out = append(out, b)
		}
	}
	return out
}
