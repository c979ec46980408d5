package registry

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Cache defaults.
const (
	DefaultKeyCacheSize = 100_000
	DefaultCacheTTL     = time.Minute
)

// updateRetries bounds how often an unconditional Update re-reads and retries
// when another writer changed the device between its read and its write.
const updateRetries = 5

// Options configures a Service. The zero value is usable.
type Options struct {
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Rand is the source of keys, etags and generation ids. Default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives change logs. Default: discard.
	Logger *slog.Logger
	// KeyCacheSize caps the number of devices whose keys Keys keeps in
	// memory. Default 100,000; negative disables the cache.
	KeyCacheSize int
	// CacheTTL is how long cached keys and policies are trusted before they
	// are read again. Changes made through this Service invalidate at once;
	// the TTL bounds how long a change made by another hub node (sharing
	// the database) goes unseen. Default one minute.
	CacheTTL time.Duration
}

func (o *Options) setDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KeyCacheSize == 0 {
		o.KeyCacheSize = DefaultKeyCacheSize
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultCacheTTL
	}
}

// Service applies the registry's rules on top of a Store. It is safe for
// concurrent use.
type Service struct {
	store Store
	now   func() time.Time
	log   *slog.Logger
	ttl   time.Duration

	randMu sync.Mutex
	rand   io.Reader // guarded by randMu

	keys       *keyCache
	moduleKeys *moduleKeyCache
	subs       subscribers
	policies   policyCache
	cas        caCache
}

// NewService returns a Service over st.
func NewService(st Store, opt Options) *Service {
	opt.setDefaults()
	return &Service{
		store: st,
		now:   opt.Now,
		log:   opt.Logger,
		ttl:   opt.CacheTTL,
		rand:  opt.Rand,
		keys:  newKeyCache(opt.KeyCacheSize, opt.CacheTTL),

		moduleKeys: newModuleKeyCache(opt.KeyCacheSize),
	}
}

// Create registers a new device. It validates the id, defaults status to
// enabled and authentication to sas, generates missing symmetric keys and
// sets the server-owned fields (generationId, etag, connection state,
// timestamps); caller values for those are ignored.
func (s *Service) Create(ctx context.Context, d Device) (*Device, error) {
	if err := ValidateDeviceID(d.DeviceID); err != nil {
		return nil, err
	}
	if err := s.prepare(&d); err != nil {
		return nil, err
	}
	gen, err := s.newGenerationID()
	if err != nil {
		return nil, err
	}
	if d.ETag, err = s.newETag(); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	d.GenerationID = gen
	d.ConnectionState = Disconnected
	d.ConnectionStateUpdatedTime = now
	d.StatusUpdatedTime = now
	d.LastActivityTime = time.Time{}
	d.CloudToDeviceMessageCount = 0
	if err := s.store.CreateDevice(ctx, &d); err != nil {
		return nil, fmt.Errorf("registry: create device %s: %w", d.DeviceID, err)
	}
	// A Keys lookup that raced a delete of an earlier device with this id
	// must not cache the old keys.
	s.keys.invalidate(d.DeviceID)
	s.moduleKeys.invalidate(d.DeviceID, "")
	s.log.Info("device created", "device", d.DeviceID, "status", d.Status, "auth", d.Authentication.Type)
	return &d, nil
}

// prepare validates and normalizes the caller-writable fields of d.
func (s *Service) prepare(d *Device) error {
	var err error
	if d.Status, err = normalizeStatus(d.Status); err != nil {
		return err
	}
	if err := validateAttributes(d); err != nil {
		return err
	}
	if d.ParentScopes == nil {
		d.ParentScopes = []string{}
	}
	return s.prepareAuth(&d.Authentication)
}

// prepareAuth validates a, fills in generated keys, and clears the
// credentials that the auth type does not use.
func (s *Service) prepareAuth(a *Authentication) error {
	t, err := normalizeAuthType(a.Type)
	if err != nil {
		return err
	}
	a.Type = t
	switch t {
	case AuthSAS:
		a.X509Thumbprint = X509Thumbprint{}
		sk := SymmetricKey{}
		if a.SymmetricKey != nil {
			sk = *a.SymmetricKey // copy: never write through the caller's pointer
		}
		if err := s.fillKey("primaryKey", &sk.PrimaryKey); err != nil {
			return err
		}
		if err := s.fillKey("secondaryKey", &sk.SecondaryKey); err != nil {
			return err
		}
		a.SymmetricKey = &sk
	case AuthSelfSigned:
		a.SymmetricKey = nil
		tp := &a.X509Thumbprint
		tp.PrimaryThumbprint, tp.SecondaryThumbprint = emptyToNil(tp.PrimaryThumbprint), emptyToNil(tp.SecondaryThumbprint)
		if tp.PrimaryThumbprint == nil {
			return fault.Invalidf("authentication.x509Thumbprint.primaryThumbprint is required for selfSigned authentication")
		}
		if err := checkThumbprint("primaryThumbprint", tp.PrimaryThumbprint); err != nil {
			return err
		}
		return checkThumbprint("secondaryThumbprint", tp.SecondaryThumbprint)
	case AuthCA:
		a.SymmetricKey = nil
		a.X509Thumbprint = X509Thumbprint{}
	}
	return nil
}

// fillKey generates *key when it is empty and validates it otherwise.
func (s *Service) fillKey(name string, key *string) error {
	if *key != "" {
		return checkKey(name, *key)
	}
	k, err := s.newKey()
	*key = k
	return err
}

func emptyToNil(p *string) *string {
	if p != nil && *p == "" {
		return nil
	}
	return p
}

// Get returns one device.
func (s *Service) Get(ctx context.Context, id string) (*Device, error) {
	if id == "" || len(id) > MaxDeviceIDLen {
		return nil, DeviceNotFoundError(id) // cannot exist; spare the store
	}
	d, err := s.store.GetDevice(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("registry: get device %s: %w", id, err)
	}
	return d, nil
}

// unconditional reports whether an If-Match value matches any etag.
func unconditional(ifMatch string) bool { return ifMatch == "" || ifMatch == "*" }

// unquoteETag strips the quotes HTTP clients put around an etag
// (azure-iothub sends If-Match: "<etag>").
func unquoteETag(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

// List returns up to limit devices with ids greater than after, ordered by
// id. limit defaults to DefaultListLimit and is capped at MaxListLimit; pass
// the last id of a page as after to get the next page.
func (s *Service) List(ctx context.Context, after string, limit int) ([]Device, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	ds, err := s.store.ListDevices(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("registry: list devices: %w", err)
	}
	if ds == nil {
		ds = []Device{} // an empty page is [] in JSON, not null
	}
	return ds, nil
}

// Count returns the number of registered devices.
func (s *Service) Count(ctx context.Context) (int, error) {
	n, err := s.store.CountDevices(ctx)
	if err != nil {
		return 0, fmt.Errorf("registry: count devices: %w", err)
	}
	return n, nil
}
