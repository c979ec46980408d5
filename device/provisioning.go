package device

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/device/internal/provision"
	"github.com/ferry-iot/ferry/device/internal/transport"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// Provisioning gets the device's credentials from the hub with a
// provisioning token, approved by an operator, instead of a connection
// string. The first Start opens a provisioning operation, shows its
// verification code through OnOperation, and waits (within its ctx) until
// an operator approves it (`ferry provision approve`); the credentials are
// then kept in the store, so later Starts need no network. The device
// provisions again only when the hub refuses the stored credentials.
type Provisioning struct {
	// Token is the provisioning token (`ferry provision token create`);
	// many devices may share one.
	Token string
	// URL is the hub's HTTPS address, such as "https://hub.example:8080".
	// Config.CAFile is trusted for it too.
	URL string
	// DeviceID asks for a device id; the operator may choose another (see
	// Client.DeviceID). Empty lets the operator choose.
	DeviceID string
	// ModelID is the device's IoT Plug and Play model id, if any.
	ModelID string
	// Data is shown to the operator beside the request (a JSON object of at
	// most 4 KiB), such as a serial number.
	Data map[string]any
	// OnOperation shows the waiting operation: its id, verification code
	// and expiry. nil prints them to standard output.
	OnOperation func(ProvisioningOperation)
}

// ProvisioningOperation is a provisioning request waiting for an operator.
// Whoever approves it compares the verification code with the one the
// device shows.
type ProvisioningOperation struct {
	ID               string
	VerificationCode string
	ExpiresAt        time.Time
}

// DPS registers the device with a Device Provisioning Service (Ferry's
// own, or Azure's) over MQTT, with a symmetric key (individual enrollment
// or enrollment group) or an X.509 certificate (Config.Certificate). The
// assigned hub and device id are kept in the store, so later Starts need
// no network; the device registers again when the hub refuses them.
type DPS struct {
	// Host is the provisioning endpoint: a Ferry hub's MQTT address
	// ("hub.example:8883"), or "global.azure-devices-provisioning.net".
	Host string
	// IDScope is the service's id scope (`ferry provision dps`).
	IDScope string
	// RegistrationID names the device to the service (with X.509, the
	// certificate's CN).
	RegistrationID string
	// Key is an individual enrollment's key (base64).
	Key string
	// GroupKey is a symmetric-key enrollment group's key (base64): the
	// device key is derived from it and the registration id, so one image
	// can carry it for a whole fleet.
	GroupKey string
	// ModelID is sent in the registration payload as "modelId".
	ModelID string
	// Payload is custom data sent with the registration (a JSON object);
	// ModelID is added to it.
	Payload map[string]any
}

// Provisioning errors returned by Start (wrapped; test with errors.Is).
var (
	// ErrProvisioningRejected: an operator rejected the device's request.
	ErrProvisioningRejected = errors.New("device: provisioning rejected by an operator")
	// ErrProvisioningToken: the hub does not accept the provisioning token
	// (unknown, expired, revoked or used up).
	ErrProvisioningToken = errors.New("device: provisioning token not accepted")
)

// provisioningError maps the provisioning client's refusals onto the
// package's errors.
func provisioningError(err error) error {
	switch {
	case errors.Is(err, provision.ErrRejected):
		return fmt.Errorf("%w: %w", ErrProvisioningRejected, err)
	case errors.Is(err, provision.ErrInvalidProvisioningToken):
		return fmt.Errorf("%w: %w", ErrProvisioningToken, err)
	default:
		return fmt.Errorf("device: provisioning: %w", err)
	}
}

// storedCredentials is what the store keeps of provisioned credentials.
type storedCredentials struct {
	Source            string    `json:"source"` // "token" or "dps"
	Identity          string    `json:"identity"`
	ConnectionString  string    `json:"connectionString"`
	RegistrationToken string    `json:"registrationToken,omitempty"`
	RegistrationUntil time.Time `json:"registrationUntil,omitzero"`
}

const (
	credentialsBucket = "credentials"
	provisioningRetry = 5 * time.Second // between transient provisioning failures
)

var credentialsKey = []byte("current")

// provisioner gets and keeps the device's credentials when Config has
// Provisioning or DPS instead of a connection string.
type provisioner struct {
	cfg    *Config
	kv     kvStore
	source string // "token" or "dps"
	ident  string // what the stored credentials must have been made for
	client *provision.Client
}

// kvStore is the part of the local store the provisioner uses.
type kvStore interface {
	Get(bucket string, key []byte) ([]byte, error)
	Put(bucket string, key, value []byte) error
}

// newProvisioner checks cfg's provisioning settings; it returns nil when
// cfg has neither Provisioning nor DPS. Its kv is set once the store is
// open.
func newProvisioner(cfg *Config) (*provisioner, error) {
	p := &provisioner{cfg: cfg}
	switch {
	case cfg.Provisioning != nil && cfg.DPS != nil:
		return nil, errors.New("device: set Provisioning or DPS, not both")
	case cfg.Provisioning != nil:
		pv := cfg.Provisioning
		if pv.Token == "" || pv.URL == "" {
			return nil, errors.New("device: Provisioning needs a Token and the hub's URL")
		}
		c, err := provision.New(pv.URL, provision.Options{CAFile: cfg.CAFile})
		if err != nil {
			return nil, fmt.Errorf("device: %w", err)
		}
		sum := sha256.Sum256([]byte(pv.Token + "\x00" + pv.DeviceID))
		p.source, p.ident, p.client = "token", hex.EncodeToString(sum[:]), c
	case cfg.DPS != nil:
		d := cfg.DPS
		if d.Host == "" || d.IDScope == "" || d.RegistrationID == "" {
			return nil, errors.New("device: DPS needs Host, IDScope and RegistrationID")
		}
		if d.Key == "" && d.GroupKey == "" && cfg.Certificate == nil {
			return nil, errors.New("device: DPS needs a Key, a GroupKey or Config.Certificate")
		}
		p.source, p.ident = "dps", d.Host+"/"+d.IDScope+"/"+d.RegistrationID
	default:
		return nil, nil
	}
	return p, nil
}

// load returns the stored credentials when they were made for this
// configuration.
func (p *provisioner) load() (*storedCredentials, error) {
	b, err := p.kv.Get(credentialsBucket, credentialsKey)
	if err != nil || b == nil {
		return nil, err
	}
	var sc storedCredentials
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("device: stored credentials: %w", err)
	}
	if sc.Source != p.source || sc.Identity != p.ident {
		return nil, nil // made for another token, device or registration
	}
	return &sc, nil
}

func (p *provisioner) save(sc *storedCredentials) error {
	sc.Source, sc.Identity = p.source, p.ident
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	if err := p.kv.Put(credentialsBucket, credentialsKey, b); err != nil {
		return fmt.Errorf("device: store credentials: %w", err)
	}
	return nil
}

// credentials returns the connection string to use: the stored one, or
// new credentials from provisioning, which may wait for an operator.
func (p *provisioner) credentials(ctx context.Context) (string, error) {
	sc, err := p.load()
	if err != nil {
		return "", err
	}
	if sc != nil {
		return sc.ConnectionString, nil
	}
	return p.provision(ctx, nil)
}

// provision gets new credentials and stores them. old, when set, are the
// credentials the hub refused: a registration token among them is tried
// before a new operation.
func (p *provisioner) provision(ctx context.Context, old *storedCredentials) (string, error) {
	log := p.cfg.Logger
	for {
		var (
			sc  *storedCredentials
			err error
		)
		if p.source == "dps" {
			sc, err = p.register(ctx)
		} else {
			sc, err = p.approve(ctx, old)
		}
		if err == nil {
			if err := p.save(sc); err != nil {
				return "", err
			}
			return sc.ConnectionString, nil
		}
		if !transient(err) {
			return "", provisioningError(err)
		}
		log.Warn("device: provisioning failed; retrying", "err", err, "in", provisioningRetry)
		t := time.NewTimer(provisioningRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("device: provisioning: %w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// transient reports whether a provisioning error may pass by itself.
func transient(err error) bool {
	var dpsErr *transport.DPSError
	if errors.As(err, &dpsErr) {
		return !dpsErr.Permanent()
	}
	var refused *transport.RefusedError
	if errors.As(err, &refused) {
		return false
	}
	if errors.Is(err, provision.ErrInvalidProvisioningToken) || errors.Is(err, provision.ErrRejected) ||
		errors.Is(err, provision.ErrDeviceDisabled) {
		return false
	}
	var perr *provision.Error
	if errors.As(err, &perr) {
		return provision.IsTransient(err)
	}
	return true // the network, a hub restart
}

// approve runs the operator-approval flow: register with the old
// registration token if it still works, else open an operation and wait
// for its decision (an expired operation is opened again).
func (p *provisioner) approve(ctx context.Context, old *storedCredentials) (*storedCredentials, error) {
	pv := p.cfg.Provisioning
	if old != nil && old.RegistrationToken != "" {
		cr, err := p.client.Register(ctx, old.RegistrationToken)
		if err == nil {
			return &storedCredentials{ConnectionString: cr.ConnectionString, RegistrationToken: old.RegistrationToken,
				RegistrationUntil: cr.RegistrationTokenExpiresAt}, nil
		}
		if transient(err) && !errors.Is(err, provision.ErrInvalidRegistrationToken) {
			return nil, err
		}
		p.cfg.Logger.Info("device: the registration token no longer works; provisioning again", "err", err)
	}
	req := provision.InitRequest{ProvisioningToken: pv.Token, DeviceID: pv.DeviceID, ModelID: pv.ModelID}
	if len(pv.Data) > 0 {
		b, err := json.Marshal(pv.Data)
		if err != nil {
			return nil, fmt.Errorf("device: Provisioning.Data: %w", err)
		}
		req.Data = b
	}
	show := func(op *provision.Operation) {
		o := ProvisioningOperation{ID: op.ID, VerificationCode: op.VerificationCode, ExpiresAt: op.ExpiresAt}
		if pv.OnOperation != nil {
			pv.OnOperation(o)
			return
		}
		fmt.Printf("Waiting for an operator to approve provisioning operation %s: verification code %s (expires %s)\n",
			o.ID, o.VerificationCode, o.ExpiresAt.Local().Format(time.RFC3339))
	}
	for {
		reg, err := p.client.Provision(ctx, req, show)
		if errors.Is(err, provision.ErrExpired) {
			p.cfg.Logger.Info("device: the provisioning operation expired undecided; opening another")
			continue
		}
		if errors.Is(err, provision.ErrOperationNotFound) {
			// Replaced by a newer request for the same device id, or purged
			// after it ended: a new operation, with a new code to show.
			p.cfg.Logger.Info("device: the hub no longer knows the provisioning operation; opening another", "err", err)
			if !sleepCtx(ctx, replacedPause) {
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		cr, err := p.client.Register(ctx, reg.RegistrationToken)
		if err != nil {
			return nil, err
		}
		return &storedCredentials{ConnectionString: cr.ConnectionString, RegistrationToken: reg.RegistrationToken,
			RegistrationUntil: reg.ExpiresAt}, nil
	}
}

// register runs a DPS registration and makes a connection string of the
// assignment.
func (p *provisioner) register(ctx context.Context) (*storedCredentials, error) {
	d := p.cfg.DPS
	var key []byte
	switch {
	case d.Key != "":
		k, err := protocol.DecodeKey(d.Key)
		if err != nil {
			return nil, fmt.Errorf("device: DPS.Key: %w", err)
		}
		key = k
	case d.GroupKey != "":
		gk, err := protocol.DecodeKey(d.GroupKey)
		if err != nil {
			return nil, fmt.Errorf("device: DPS.GroupKey: %w", err)
		}
		key, _ = base64.StdEncoding.DecodeString(protocol.DeriveDeviceKey(gk, d.RegistrationID))
	}
	payload := map[string]any{}
	for k, v := range d.Payload {
		payload[k] = v
	}
	if d.ModelID != "" {
		payload["modelId"] = d.ModelID
	}
	var raw json.RawMessage
	if len(payload) > 0 {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("device: DPS.Payload: %w", err)
		}
		raw = b
	}
	tc, err := p.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a, err := transport.Register(rctx, transport.DPSConfig{Host: d.Host, IDScope: d.IDScope,
		RegistrationID: d.RegistrationID, Key: key, Payload: raw, TLS: tc,
		InsecureTCP: p.cfg.InsecureTCP, WebSocket: p.cfg.WebSocket, Dial: p.cfg.dial})
	if err != nil {
		return nil, err
	}
	cs := protocol.ConnectionString{HostName: a.AssignedHub, DeviceID: a.DeviceID}
	if key != nil {
		cs.SharedAccessKey = base64.StdEncoding.EncodeToString(key)
	} else {
		cs.X509 = true
	}
	return &storedCredentials{ConnectionString: cs.String()}, nil
}

// refused is the transport's Refused hook: the hub refused the stored
// credentials, so provision again (waiting for an operator if need be) and
// hand the new key to the transport. The device id must stay the same: a
// connection's topics name it.
func (p *provisioner) refused(deviceID string) func(ctx context.Context, err error) ([]byte, error) {
	return func(ctx context.Context, refusal error) ([]byte, error) {
		p.cfg.Logger.Warn("device: the hub refused the stored credentials; provisioning again", "err", refusal)
		old, err := p.load()
		if err != nil {
			return nil, err
		}
		s, err := p.provision(ctx, old)
		if err != nil {
			return nil, err
		}
		cs, err := protocol.ParseConnectionString(s)
		if err != nil {
			return nil, fmt.Errorf("device: provisioned connection string: %w", err)
		}
		if cs.DeviceID != deviceID {
			return nil, fmt.Errorf("device: provisioned as %q instead of %q: restart the device to use the new id", cs.DeviceID, deviceID)
		}
		if cs.SharedAccessKey == "" {
			return nil, nil // X.509: the certificate did not change
		}
		return protocol.DecodeKey(cs.SharedAccessKey)
	}
}

// refreshLoop renews the registration token of the approval flow before
// it expires, checking every minute (so a device that slept catches up),
// until ctx ends. A revoked provisioning token or a deleted device stops
// it with an error in the log: the stored credentials work until the hub
// refuses them.
func (p *provisioner) refreshLoop(ctx context.Context) {
	if p.source != "token" {
		return
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if stop := p.refreshOnce(ctx, time.Now()); stop {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refreshOnce renews the registration token when less than half of a
// week's lifetime (or of what is left) remains. It reports whether
// refreshing has to stop for good.
func (p *provisioner) refreshOnce(ctx context.Context, now time.Time) (stop bool) {
	sc, err := p.load()
	if err != nil || sc == nil || sc.RegistrationToken == "" {
		return err != nil
	}
	if sc.RegistrationUntil.Sub(now) > 84*time.Hour {
		return false
	}
	reg, err := p.client.Refresh(ctx, p.cfg.Provisioning.Token, sc.RegistrationToken)
	switch {
	case err == nil:
		sc.RegistrationToken, sc.RegistrationUntil = reg.RegistrationToken, reg.ExpiresAt
		if err := p.save(sc); err != nil {
			p.cfg.Logger.Error("device: keeping the refreshed registration token", "err", err)
		}
		return false
	case transient(err) && !errors.Is(err, provision.ErrInvalidRegistrationToken):
		p.cfg.Logger.Warn("device: refreshing the registration token failed; retrying in a minute", "err", err)
		return false
	default:
		p.cfg.Logger.Error("device: the hub no longer renews this device's registration (revoked token or deleted device); the device keeps its credentials until the hub refuses them", "err", err)
		return true
	}
}

// replacedPause is how long a device waits before opening a new
// provisioning operation when the hub no longer knows its own: two
// claimants of one device id replacing each other's operation do not spin.
const replacedPause = 5 * time.Second

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
