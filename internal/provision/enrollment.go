package provision

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// DPS-compatible enrollments (Azure Device Provisioning Service's shapes):
// a device presents a registration id and a SAS token signed with the key
// of its individual enrollment, or with the key its enrollment group
// derives for it (HMAC-SHA256 of the registration id with the group key).

// The provisioning statuses of an enrollment, spelled as in Azure DPS.
const (
	EnrollmentEnabled  = "enabled"
	EnrollmentDisabled = "disabled"
)

// The attestation types Ferry supports: symmetric keys (groups and
// individual enrollments) and X.509 CA references (groups).
const (
	AttestationSymmetricKey = "symmetricKey"
	AttestationX509         = "x509"
)

// Attestation is how enrolled devices prove who they are.
type Attestation struct {
	Type         string                 `json:"type"` // "symmetricKey" or "x509"
	SymmetricKey *registry.SymmetricKey `json:"symmetricKey,omitempty"`
	X509         *X509Attestation       `json:"x509,omitempty"`
}

// X509Attestation is an enrollment group's X.509 attestation: devices whose
// certificate chain verifies against one of the referenced certificate
// authorities (registered and verified with the hub, see `ferry ca`) and
// whose certificate's subject CN is their registration id.
type X509Attestation struct {
	CAReferences *CAReferences `json:"caReferences,omitempty"`
}

// CAReferences names registered certificate authorities, as Azure DPS's
// caReferences does.
type CAReferences struct {
	Primary   string `json:"primary"`
	Secondary string `json:"secondary,omitempty"`
}

// names returns the referenced CA names.
func (r *CAReferences) names() []string {
	if r == nil {
		return nil
	}
	out := []string{r.Primary}
	if r.Secondary != "" {
		out = append(out, r.Secondary)
	}
	return out
}

// InitialTwin is the twin a newly provisioned device starts with.
type InitialTwin struct {
	Tags       json.RawMessage `json:"tags,omitempty"`
	Properties struct {
		Desired json.RawMessage `json:"desired,omitempty"`
	} `json:"properties"`
}

// EnrollmentGroup lets every device that holds a key derived from the
// group's key provision itself, with its registration id as device id.
type EnrollmentGroup struct {
	EnrollmentGroupID  string       `json:"enrollmentGroupId"`
	Attestation        Attestation  `json:"attestation"`
	ProvisioningStatus string       `json:"provisioningStatus"` // enabled or disabled
	InitialTwin        *InitialTwin `json:"initialTwin,omitempty"`
	CreatedAt          time.Time    `json:"createdDateTimeUtc"`
	UpdatedAt          time.Time    `json:"lastUpdatedDateTimeUtc"`
}

// IndividualEnrollment lets one registration id provision itself with the
// enrollment's own key.
type IndividualEnrollment struct {
	RegistrationID     string       `json:"registrationId"`
	DeviceID           string       `json:"deviceId,omitempty"` // default: the registration id
	Attestation        Attestation  `json:"attestation"`
	ProvisioningStatus string       `json:"provisioningStatus"`
	InitialTwin        *InitialTwin `json:"initialTwin,omitempty"`
	CreatedAt          time.Time    `json:"createdDateTimeUtc"`
	UpdatedAt          time.Time    `json:"lastUpdatedDateTimeUtc"`
}

// EnrollmentStore persists enrollments. Missing ones are
// EnrollmentNotFoundError; a taken id on create is EnrollmentExistsError.
type EnrollmentStore interface {
	// PutEnrollmentGroup inserts g, or replaces it when replace is set.
	PutEnrollmentGroup(ctx context.Context, g *EnrollmentGroup, replace bool) error
	GetEnrollmentGroup(ctx context.Context, id string) (*EnrollmentGroup, error)
	// ListEnrollmentGroups returns every group, ordered by id.
	ListEnrollmentGroups(ctx context.Context) ([]EnrollmentGroup, error)
	DeleteEnrollmentGroup(ctx context.Context, id string) error
	// PutEnrollment inserts e, or replaces it when replace is set.
	PutEnrollment(ctx context.Context, e *IndividualEnrollment, replace bool) error
	GetEnrollment(ctx context.Context, registrationID string) (*IndividualEnrollment, error)
	// ListEnrollments returns every individual enrollment, ordered by registration id.
	ListEnrollments(ctx context.Context) ([]IndividualEnrollment, error)
	DeleteEnrollment(ctx context.Context, registrationID string) error
}

// EnrollmentNotFoundError is the error for an unknown enrollment (kind is
// "enrollment group" or "enrollment").
func EnrollmentNotFoundError(kind, id string) *fault.Error {
	return fault.New(fault.NotFound, "EnrollmentNotFound", 404201, "%s %q not found", kind, id)
}

// EnrollmentExistsError is the error for creating an enrollment whose id is taken.
func EnrollmentExistsError(kind, id string) *fault.Error {
	return fault.New(fault.Conflict, "EnrollmentAlreadyExists", 409201, "%s %q already exists", kind, id)
}

func (s *Service) enrollments() (EnrollmentStore, error) {
	es, ok := s.store.(EnrollmentStore)
	if !ok {
		return nil, fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub's store keeps no enrollments")
	}
	return es, nil
}

// prepareEnrollment validates the common parts and fills in generated keys.
// X.509 attestation is for groups only.
func (s *Service) prepareEnrollment(ctx context.Context, a *Attestation, status *string, it *InitialTwin, group bool) error {
	if a.Type == "" {
		a.Type = AttestationSymmetricKey
		if a.X509 != nil && a.SymmetricKey == nil {
			a.Type = AttestationX509
		}
	}
	switch {
	case a.Type == AttestationX509 && group:
		if err := s.prepareX509(ctx, a); err != nil {
			return err
		}
	case a.Type == AttestationX509:
		return fault.Invalidf("individual enrollments attest with symmetric keys; X.509 CA attestation is for enrollment groups")
	case a.Type == AttestationSymmetricKey:
		if err := s.prepareSymmetricKey(a); err != nil {
			return err
		}
	default:
		return fault.Invalidf("attestation type %q is not supported (use symmetricKey or x509)", a.Type)
	}
	return prepareStatusAndTwin(status, it)
}

// prepareSymmetricKey checks the keys, generating missing ones.
func (s *Service) prepareSymmetricKey(a *Attestation) error {
	a.X509 = nil
	sk := registry.SymmetricKey{}
	if a.SymmetricKey != nil {
		sk = *a.SymmetricKey
	}
	for _, k := range []*string{&sk.PrimaryKey, &sk.SecondaryKey} {
		if *k == "" {
			var b [64]byte // Azure DPS generates 64-byte keys
			if err := s.random(b[:]); err != nil {
				return err
			}
			*k = base64.StdEncoding.EncodeToString(b[:])
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(*k)
		if err != nil || len(raw) < registry.MinKeyLen || len(raw) > registry.MaxKeyLen {
			return fault.Invalidf("attestation keys must be base64 of %d to %d bytes", registry.MinKeyLen, registry.MaxKeyLen)
		}
	}
	a.SymmetricKey = &sk
	return nil
}

// prepareX509 checks that the group references registered, verified
// certificate authorities.
func (s *Service) prepareX509(ctx context.Context, a *Attestation) error {
	a.SymmetricKey = nil
	if a.X509 == nil || a.X509.CAReferences == nil || a.X509.CAReferences.Primary == "" {
		return fault.Invalidf("x509 attestation needs x509.caReferences.primary: the name of a registered CA")
	}
	if s.opt.CAs == nil {
		return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub keeps no certificate authorities")
	}
	for _, name := range a.X509.CAReferences.names() {
		if err := registry.ValidateCAName(name); err != nil {
			return err
		}
		ca, err := s.opt.CAs.GetCA(ctx, name)
		if fault.Is(err, fault.NotFound) {
			return fault.Invalidf("certificate authority %q is not registered (ferry ca add)", name)
		}
		if err != nil {
			return err
		}
		if !ca.Verified {
			return fault.Invalidf("certificate authority %q is not verified yet (ferry ca verify)", name)
		}
	}
	return nil
}

func prepareStatusAndTwin(status *string, it *InitialTwin) error {
	switch *status {
	case "":
		*status = EnrollmentEnabled
	case EnrollmentEnabled, EnrollmentDisabled:
	default:
		return fault.Invalidf("provisioningStatus %q is not enabled or disabled", *status)
	}
	if it != nil {
		var err error
		if it.Tags, err = objectOrNil("initialTwin.tags", it.Tags, 32<<10); err != nil {
			return err
		}
		if it.Properties.Desired, err = objectOrNil("initialTwin.properties.desired", it.Properties.Desired, 32<<10); err != nil {
			return err
		}
	}
	return nil
}

// PutEnrollmentGroup creates a group (replace false) or replaces one. Empty
// keys are generated.
func (s *Service) PutEnrollmentGroup(ctx context.Context, g EnrollmentGroup, replace bool) (*EnrollmentGroup, error) {
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	if err := validateTokenName(g.EnrollmentGroupID); err != nil {
		return nil, fault.Invalidf("enrollmentGroupId: %s", fault.Public(err))
	}
	if err := s.prepareEnrollment(ctx, &g.Attestation, &g.ProvisioningStatus, g.InitialTwin, true); err != nil {
		return nil, err
	}
	now := s.now()
	g.CreatedAt, g.UpdatedAt = now, now
	if replace {
		if old, err := es.GetEnrollmentGroup(ctx, g.EnrollmentGroupID); err == nil {
			g.CreatedAt = old.CreatedAt
		}
	}
	if err := es.PutEnrollmentGroup(ctx, &g, replace); err != nil {
		return nil, fmt.Errorf("provision: put enrollment group %s: %w", g.EnrollmentGroupID, err)
	}
	s.invalidateGroups()
	s.log.Info("enrollment group saved", "group", g.EnrollmentGroupID, "status", g.ProvisioningStatus)
	return &g, nil
}

// EnrollmentGroup returns one group, with its keys.
func (s *Service) EnrollmentGroup(ctx context.Context, id string) (*EnrollmentGroup, error) {
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	return es.GetEnrollmentGroup(ctx, id)
}

// EnrollmentGroups lists every group.
func (s *Service) EnrollmentGroups(ctx context.Context) ([]EnrollmentGroup, error) {
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	gs, err := es.ListEnrollmentGroups(ctx)
	if gs == nil && err == nil {
		gs = []EnrollmentGroup{}
	}
	return gs, err
}

// DeleteEnrollmentGroup removes a group. Devices it provisioned stay.
func (s *Service) DeleteEnrollmentGroup(ctx context.Context, id string) error {
	es, err := s.enrollments()
	if err != nil {
		return err
	}
	if err := es.DeleteEnrollmentGroup(ctx, id); err != nil {
		return err
	}
	s.invalidateGroups()
	return nil
}

// PutEnrollment creates an individual enrollment (replace false) or
// replaces one. Empty keys are generated.
func (s *Service) PutEnrollment(ctx context.Context, e IndividualEnrollment, replace bool) (*IndividualEnrollment, error) {
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	if err := registry.ValidateDeviceID(e.RegistrationID); err != nil {
		return nil, fault.Invalidf("registrationId: %s", fault.Public(err))
	}
	if e.DeviceID != "" {
		if err := registry.ValidateDeviceID(e.DeviceID); err != nil {
			return nil, err
		}
	}
	if err := s.prepareEnrollment(ctx, &e.Attestation, &e.ProvisioningStatus, e.InitialTwin, false); err != nil {
		return nil, err
	}
	now := s.now()
	e.CreatedAt, e.UpdatedAt = now, now
	if replace {
		if old, err := es.GetEnrollment(ctx, e.RegistrationID); err == nil {
			e.CreatedAt = old.CreatedAt
		}
	}
	if err := es.PutEnrollment(ctx, &e, replace); err != nil {
		return nil, fmt.Errorf("provision: put enrollment %s: %w", e.RegistrationID, err)
	}
	s.log.Info("enrollment saved", "registration", e.RegistrationID, "status", e.ProvisioningStatus)
	return &e, nil
}

// Enrollment returns one individual enrollment, with its keys.
func (s *Service) Enrollment(ctx context.Context, registrationID string) (*IndividualEnrollment, error) {
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	return es.GetEnrollment(ctx, registrationID)
}

// Enrollments lists every individual enrollment.
func (s *Service) Enrollments(ctx context.Context) ([]IndividualEnrollment, error) {
	es, err := s.enrollments()
	if err != nil {
		return nil, err
	}
	list, err := es.ListEnrollments(ctx)
	if list == nil && err == nil {
		list = []IndividualEnrollment{}
	}
	return list, err
}

// DeleteEnrollment removes an individual enrollment. The device stays.
func (s *Service) DeleteEnrollment(ctx context.Context, registrationID string) error {
	es, err := s.enrollments()
	if err != nil {
		return err
	}
	return es.DeleteEnrollment(ctx, registrationID)
}
