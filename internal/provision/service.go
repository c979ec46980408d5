package provision

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// Defaults of Options.
const (
	DefaultTokenTTL        = 30 * 24 * time.Hour
	DefaultOperationTTL    = 15 * time.Minute
	DefaultRegistrationTTL = 7 * 24 * time.Hour
	DefaultPollInterval    = 5 * time.Second
	// DefaultMaxPending bounds the operations waiting for an operator: more
	// than a person reviews in one sitting, few enough that a leaked
	// provisioning token cannot fill the store (see Options.MaxPending).
	DefaultMaxPending = 1000
	// DefaultMaxPendingPerDevice bounds the operations waiting for one
	// device id. One token holds at most one (a repeat replaces it), so
	// this counts tokens asking for the same id at once.
	DefaultMaxPendingPerDevice = 3
)

// Input limits.
const (
	MaxDataBytes    = 4 << 10 // custom data a device sends with Init
	MaxModelIDLen   = 512
	MaxTokenNameLen = 64
	MaxListLimit    = 1000
)

// Registry is what the service needs of the device registry.
type Registry interface {
	Get(ctx context.Context, id string) (*registry.Device, error)
	Create(ctx context.Context, d registry.Device) (*registry.Device, error)
	Update(ctx context.Context, d registry.Device, ifMatch string) (*registry.Device, error)
}

// Twins sets the twin of a device an operator approved.
type Twins interface {
	// SetInitial merges tags and desired (JSON objects; nil means no
	// change) into the device's twin.
	SetInitial(ctx context.Context, deviceID string, tags, desired json.RawMessage) error
}

// CAs looks up the certificate authorities registered with the hub, which
// X.509 enrollment groups reference. registry.Service satisfies it.
type CAs interface {
	GetCA(ctx context.Context, name string) (*registry.CA, error)
}

// Options configures a Service. Registry, Twins and DeviceHost are required.
type Options struct {
	Registry Registry
	Twins    Twins
	// CAs resolves X.509 enrollment groups' CA references; nil refuses
	// X.509 attestation.
	CAs CAs
	// DeviceHost returns the host[:port] devices connect to over MQTT, which
	// goes into their credentials.
	DeviceHost func() string

	OperationTTL    time.Duration // how long an operation waits for a decision (default 15 minutes)
	RegistrationTTL time.Duration // life of a registration token (default 7 days)
	PollInterval    time.Duration // the retry-after devices are told while pending (default 5 s)
	// MaxPending bounds the operations waiting for an operator, so that
	// whoever holds a provisioning token cannot add rows without end; Init
	// beyond it is PendingLimitError (HTTP 429). Default DefaultMaxPending.
	MaxPending int
	// MaxPendingPerDevice bounds those asking for one device id (default
	// DefaultMaxPendingPerDevice).
	MaxPendingPerDevice int
	// IDScope is the DPS ID scope devices present (default: derived from
	// the stored signing key, see Service.IDScope).
	IDScope string

	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand.Reader
	Logger *slog.Logger     // default: discard
}

func (o *Options) setDefaults() {
	if o.OperationTTL <= 0 {
		o.OperationTTL = DefaultOperationTTL
	}
	if o.RegistrationTTL <= 0 {
		o.RegistrationTTL = DefaultRegistrationTTL
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxPendingPerDevice <= 0 {
		o.MaxPendingPerDevice = DefaultMaxPendingPerDevice
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Service runs provisioning on top of a Store. It is safe for concurrent use.
type Service struct {
	store Store
	opt   Options
	log   *slog.Logger
	key   []byte // registration-token signing key

	randMu sync.Mutex // guards opt.Rand, which need not be safe for concurrent use

	// approveMu serializes approvals in this process, so two operators
	// approving one operation at once cannot both create a device; the
	// store's check covers other hub nodes.
	approveMu sync.Mutex

	groups   groupCache  // enrollment groups for DPS authentication
	devLocks deviceLocks // serialize DPS assignments per device id
}

// New returns a Service over st. It reads (or creates) the registration
// token signing key.
func New(ctx context.Context, st Store, opt Options) (*Service, error) {
	opt.setDefaults()
	if opt.Registry == nil || opt.Twins == nil || opt.DeviceHost == nil {
		return nil, fmt.Errorf("provision: Registry, Twins and DeviceHost are required")
	}
	s := &Service{store: st, opt: opt, log: opt.Logger}
	candidate := make([]byte, 32)
	if err := s.random(candidate); err != nil {
		return nil, err
	}
	key, err := st.SigningKey(ctx, candidate)
	if err != nil {
		return nil, fmt.Errorf("provision: signing key: %w", err)
	}
	s.key = key
	return s, nil
}

// random fills b from the random source.
func (s *Service) random(b []byte) error {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	if _, err := io.ReadFull(s.opt.Rand, b); err != nil {
		return fmt.Errorf("provision: read random bytes: %w", err)
	}
	return nil
}

func (s *Service) now() time.Time { return s.opt.Now().UTC() }
