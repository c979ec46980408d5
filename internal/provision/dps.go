package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// DPS registration: the transport-independent half of the $dps/... MQTT
// protocol (PROTOCOL.md §4). The MQTT edge calls AuthenticateDPS at CONNECT
// (username "{idScope}/registrations/{registrationId}/...", password a SAS
// token for "{idScope}/registrations/{registrationId}") and AssignDPS for
// each iotdps-register request.

// groupsTTL bounds how long the in-memory copy of the enrollment groups is
// trusted; changes through this Service invalidate it at once.
const groupsTTL = time.Minute

// DPSIdentity is an authenticated registration.
type DPSIdentity struct {
	RegistrationID string
	DeviceID       string
	GroupID        string // the enrollment group, "" for an individual enrollment
	// Auth is how the assigned device authenticates with the hub:
	// registry.AuthSAS (symmetric-key enrollments) or registry.AuthCA (an
	// X.509 CA group: the device connects with the certificate it
	// registered with).
	Auth registry.AuthType
	// PrimaryKey and SecondaryKey (base64) are the keys the device connects
	// to the hub with: the enrollment's, or those the group derives. Empty
	// for X.509.
	PrimaryKey, SecondaryKey string
	InitialTwin              *InitialTwin
}

// RegistrationState is Azure DPS's registrationState: where a device was
// assigned.
type RegistrationState struct {
	RegistrationID string    `json:"registrationId"`
	AssignedHub    string    `json:"assignedHub"`
	DeviceID       string    `json:"deviceId"`
	Status         string    `json:"status"`    // "assigned"
	Substatus      string    `json:"substatus"` // initialAssignment or reprovisionedToInitialAssignment
	CreatedAt      time.Time `json:"createdDateTimeUtc"`
	UpdatedAt      time.Time `json:"lastUpdatedDateTimeUtc"`
	ETag           string    `json:"etag,omitempty"` // the device's etag after the assignment
}

// groupCache is the enabled and disabled groups with their decoded keys.
type groupCache struct {
	mu      sync.Mutex
	groups  []cachedGroup // guarded by mu
	expires time.Time     // guarded by mu
}

type cachedGroup struct {
	g            EnrollmentGroup
	primary, sec []byte
}

func (s *Service) invalidateGroups() {
	s.groups.mu.Lock()
	s.groups.expires = time.Time{}
	s.groups.mu.Unlock()
}

func (s *Service) loadGroups(ctx context.Context) ([]cachedGroup, error) {
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	if now := s.now(); now.Before(s.groups.expires) {
		return s.groups.groups, nil
	}
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	gs, err := es.ListEnrollmentGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("provision: load enrollment groups: %w", err)
	}
	out := make([]cachedGroup, 0, len(gs))
	for _, g := range gs {
		cg := cachedGroup{g: g}
		if sk := g.Attestation.SymmetricKey; sk != nil {
			cg.primary, _ = protocol.DecodeKey(sk.PrimaryKey)
			cg.sec, _ = protocol.DecodeKey(sk.SecondaryKey)
		}
		out = append(out, cg)
	}
	s.groups.groups, s.groups.expires = out, s.now().Add(groupsTTL)
	return out, nil
}

// IDScope is the hub's DPS ID scope, which devices put in their username
// and token: Options.IDScope, else one derived from the hub's signing key
// ("0ne" and 8 hex digits), stable across restarts.
func (s *Service) IDScope() string {
	if s.opt.IDScope != "" {
		return s.opt.IDScope
	}
	h := sha256.Sum256(append([]byte("ferry id scope\n"), s.key...))
	return "0ne" + strings.ToUpper(hex.EncodeToString(h[:4]))
}

func dpsUnauthorized(format string, args ...any) *fault.Error {
	return fault.New(fault.Unauthorized, "DPSUnauthorized", 401002, format, args...)
}

// AuthenticateDPS checks a registration's credentials: the ID scope, and a
// SAS token for "{idScope}/registrations/{registrationId}" (skn
// "registration" or none; the resource raw or percent-encoded) signed with
// the individual enrollment's key or the key an enrollment group derives
// for the registration id. A disabled enrollment is fault.Forbidden.
func (s *Service) AuthenticateDPS(ctx context.Context, idScope, registrationID, password string) (*DPSIdentity, error) {
	if !strings.EqualFold(idScope, s.IDScope()) {
		return nil, dpsUnauthorized("unknown ID scope %q", idScope)
	}
	if err := registry.ValidateDeviceID(registrationID); err != nil {
		return nil, dpsUnauthorized("registration id: %s", fault.Public(err))
	}
	tok, err := protocol.ParseSAS(password)
	if err != nil {
		return nil, dpsUnauthorized("malformed SAS token: %v", err)
	}
	res, err := tok.ResourceURI()
	if err != nil || !strings.EqualFold(res, protocol.RegistrationResource(idScope, registrationID)) {
		return nil, dpsUnauthorized("the token is not for %s", protocol.RegistrationResource(idScope, registrationID))
	}
	if tok.KeyName != "" && tok.KeyName != "registration" {
		return nil, dpsUnauthorized("the token's skn must be registration, not %q", tok.KeyName)
	}
	now := s.now()
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	e, err := es.GetEnrollment(ctx, registrationID)
	switch {
	case err == nil:
		return s.individualIdentity(tok, now, e)
	case !fault.Is(err, fault.NotFound):
		return nil, fmt.Errorf("provision: enrollment %s: %w", registrationID, err)
	}
	groups, err := s.loadGroups(ctx)
	if err != nil {
		return nil, err
	}
	var expired error
	for _, g := range groups {
		for _, key := range [][]byte{g.primary, g.sec} {
			if len(key) == 0 {
				continue
			}
			derived, _ := protocol.DecodeKey(protocol.DeriveDeviceKey(key, registrationID))
			err := tok.Verify(derived, now)
			if errors.Is(err, protocol.ErrSASExpired) {
				expired = err
			}
			if err != nil {
				continue
			}
			if g.g.ProvisioningStatus == EnrollmentDisabled {
				return nil, enrollmentDisabled("enrollment group", g.g.EnrollmentGroupID)
			}
			return &DPSIdentity{RegistrationID: registrationID, DeviceID: registrationID, GroupID: g.g.EnrollmentGroupID,
				Auth:         registry.AuthSAS,
				PrimaryKey:   protocol.DeriveDeviceKey(g.primary, registrationID),
				SecondaryKey: protocol.DeriveDeviceKey(g.sec, registrationID),
				InitialTwin:  g.g.InitialTwin}, nil
		}
	}
	if expired != nil {
		return nil, dpsUnauthorized("the token expired")
	}
	return nil, dpsUnauthorized("no enrollment accepts this token for registration %q", registrationID)
}

func enrollmentDisabled(kind, id string) *fault.Error {
	return fault.New(fault.Forbidden, "EnrollmentDisabled", 403201, "%s %q is disabled", kind, id)
}

func (s *Service) individualIdentity(tok protocol.SAS, now time.Time, e *IndividualEnrollment) (*DPSIdentity, error) {
	sk := e.Attestation.SymmetricKey
	if sk == nil {
		return nil, dpsUnauthorized("enrollment %q has no symmetric key", e.RegistrationID)
	}
	var last error = protocol.ErrSASSignature
	for _, k := range []string{sk.PrimaryKey, sk.SecondaryKey} {
		key, err := protocol.DecodeKey(k)
		if err != nil {
			continue
		}
		if last = tok.Verify(key, now); last == nil {
			break
		}
	}
	if last != nil {
		return nil, dpsUnauthorized("token rejected: %v", last)
	}
	if e.ProvisioningStatus == EnrollmentDisabled {
		return nil, enrollmentDisabled("enrollment", e.RegistrationID)
	}
	id := e.DeviceID
	if id == "" {
		id = e.RegistrationID
	}
	return &DPSIdentity{RegistrationID: e.RegistrationID, DeviceID: id, Auth: registry.AuthSAS,
		PrimaryKey: sk.PrimaryKey, SecondaryKey: sk.SecondaryKey, InitialTwin: e.InitialTwin}, nil
}

// DPSPayload is the part of a register request Ferry reads: {"modelId":...}.
type DPSPayload struct {
	ModelID string `json:"modelId"`
}

// AssignDPS registers an authenticated device: it creates the device with
// the identity's credentials and the enrollment's initial twin, or, for a
// device that exists, sets its credentials (and model id, when given).
// payload is the register request's "payload" member (may be nil).
// Registrations of one device id are serialized in this process; a device
// that exists (or that another hub node created meanwhile) is reprovisioned.
func (s *Service) AssignDPS(ctx context.Context, id *DPSIdentity, payload json.RawMessage) (*RegistrationState, error) {
	p, err := ParseDPSPayload(payload)
	if err != nil {
		return nil, err
	}
	unlock := s.lockDevice(id.DeviceID)
	defer unlock()
	now := s.now()
	auth := registry.Authentication{Type: registry.AuthSAS,
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: id.PrimaryKey, SecondaryKey: id.SecondaryKey}}
	if id.Auth == registry.AuthCA {
		auth = registry.Authentication{Type: registry.AuthCA}
	}
	st := &RegistrationState{RegistrationID: id.RegistrationID, AssignedHub: s.opt.DeviceHost(), DeviceID: id.DeviceID,
		Status: "assigned", Substatus: "initialAssignment", CreatedAt: now, UpdatedAt: now}
	// Most registrations are of new devices: create first, and reprovision
	// the device that exists when the id is taken.
	created, err := s.opt.Registry.Create(ctx, registry.Device{DeviceID: id.DeviceID, ModelID: p.ModelID, Authentication: auth})
	switch {
	case err == nil:
		st.ETag = created.ETag
		if it := id.InitialTwin; it != nil && (it.Tags != nil || it.Properties.Desired != nil) {
			if err := s.opt.Twins.SetInitial(ctx, id.DeviceID, it.Tags, it.Properties.Desired); err != nil {
				return nil, fmt.Errorf("provision: initial twin of %s: %w", id.DeviceID, err)
			}
		}
	case fault.Is(err, fault.Conflict):
		d, err := s.opt.Registry.Get(ctx, id.DeviceID)
		if err != nil {
			return nil, fmt.Errorf("provision: get device %s: %w", id.DeviceID, err)
		}
		st.Substatus, st.CreatedAt, st.ETag = "reprovisionedToInitialAssignment", d.StatusUpdatedTime, d.ETag
		if !sameAuth(d.Authentication, auth) || (p.ModelID != "" && p.ModelID != d.ModelID) {
			d.Authentication = auth
			if p.ModelID != "" {
				d.ModelID = p.ModelID
			}
			up, err := s.opt.Registry.Update(ctx, *d, "")
			if err != nil {
				return nil, fmt.Errorf("provision: update device %s: %w", id.DeviceID, err)
			}
			st.ETag = up.ETag
		}
	default:
		return nil, fmt.Errorf("provision: create device %s: %w", id.DeviceID, err)
	}
	s.log.Info("device provisioned through DPS", "registration", id.RegistrationID, "device", id.DeviceID,
		"group", id.GroupID, "substatus", st.Substatus)
	return st, nil
}

// ParseDPSPayload checks a register request's custom payload: null or a
// JSON object of at most MaxDataBytes whose modelId, when set, is a DTMI.
func ParseDPSPayload(payload json.RawMessage) (DPSPayload, error) {
	var p DPSPayload
	if len(payload) == 0 || string(payload) == "null" {
		return p, nil
	}
	if len(payload) > MaxDataBytes {
		return p, fault.TooLargef("payload is %d bytes; the limit is %d", len(payload), MaxDataBytes)
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return p, fault.Invalidf("payload must be a JSON object with an optional modelId string")
	}
	if p.ModelID != "" && (!strings.HasPrefix(p.ModelID, "dtmi:") || len(p.ModelID) > MaxModelIDLen) {
		return p, fault.Invalidf("modelId %q is not a DTMI", p.ModelID)
	}
	return p, nil
}

// sameAuth reports whether a device already authenticates as a new
// assignment would have it.
func sameAuth(have, want registry.Authentication) bool {
	if have.Type != want.Type {
		return false
	}
	if want.Type != registry.AuthSAS {
		return true
	}
	h, w := have.SymmetricKey, want.SymmetricKey
	return h != nil && w != nil && h.PrimaryKey == w.PrimaryKey && h.SecondaryKey == w.SecondaryKey
}

// deviceLocks serializes assignments of one device id (striped).
type deviceLocks [64]sync.Mutex

func (s *Service) lockDevice(id string) (unlock func()) {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	m := &s.devLocks[h%uint32(len(s.devLocks))]
	m.Lock()
	return m.Unlock
}
