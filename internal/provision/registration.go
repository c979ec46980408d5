package provision

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// regPrefix starts every registration token and names its format version.
const regPrefix = "frt1."

// maxRegTokenLen bounds what is parsed: a real token is about 250 bytes.
const maxRegTokenLen = 2048

// regClaims is what a registration token says.
type regClaims struct {
	DeviceID     string `json:"d"`
	GenerationID string `json:"g"` // the device identity it was issued for
	TokenID      string `json:"t"` // the provisioning token it came from
	Expires      int64  `json:"e"` // Unix seconds
}

// sign returns the registration token for c:
// "frt1." + base64url(JSON claims) + "." + base64url(HMAC-SHA256).
func (s *Service) sign(c regClaims) string {
	b, _ := json.Marshal(c)
	body := regPrefix + base64.RawURLEncoding.EncodeToString(b)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// verify checks a registration token's signature and returns its claims;
// it does not check the expiry.
func (s *Service) verify(tok string) (*regClaims, error) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return nil, invalidRegistrationToken("the registration token is missing")
	}
	if len(tok) > maxRegTokenLen || !strings.HasPrefix(tok, regPrefix) {
		return nil, invalidRegistrationToken("malformed registration token")
	}
	i := strings.LastIndexByte(tok, '.') // the signature follows the last dot
	if i < len(regPrefix) {
		return nil, invalidRegistrationToken("malformed registration token")
	}
	body, sig := tok[:i], tok[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, invalidRegistrationToken("malformed registration token")
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(body))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return nil, invalidRegistrationToken("registration token signature does not verify (not issued by this hub, or altered)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body, regPrefix))
	var c regClaims
	if err != nil || json.Unmarshal(raw, &c) != nil || c.DeviceID == "" || c.TokenID == "" {
		return nil, invalidRegistrationToken("malformed registration token")
	}
	return &c, nil
}

// issue returns a new registration token for a device after checking that
// the device can still use one.
func (s *Service) issue(ctx context.Context, deviceID, generation string, tok *Token) (*Registration, *registry.Device, error) {
	d, err := s.usableDevice(ctx, deviceID, generation)
	if err != nil {
		return nil, nil, err
	}
	exp := s.now().Add(s.opt.RegistrationTTL).Truncate(time.Second)
	reg := s.sign(regClaims{DeviceID: d.DeviceID, GenerationID: d.GenerationID, TokenID: tok.ID, Expires: exp.Unix()})
	return &Registration{DeviceID: d.DeviceID, RegistrationToken: reg, RegistrationTokenExpiresAt: exp}, d, nil
}

// usableDevice returns the device if it exists (as the identity generation
// when one is given), is enabled and has symmetric keys.
func (s *Service) usableDevice(ctx context.Context, id, generation string) (*registry.Device, error) {
	d, err := s.opt.Registry.Get(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return nil, invalidRegistrationToken("device %q was deleted; provision it again", id)
	}
	if err != nil {
		return nil, fmt.Errorf("provision: get device %s: %w", id, err)
	}
	if generation != "" && d.GenerationID != generation {
		return nil, invalidRegistrationToken("device %q was deleted and registered again; provision it again", id)
	}
	if d.Status == registry.StatusDisabled {
		return nil, fault.New(fault.Forbidden, "DeviceDisabled", 403102, "device %q is disabled", id)
	}
	if d.Authentication.Type != registry.AuthSAS || d.Authentication.SymmetricKey == nil {
		return nil, invalidRegistrationToken("device %q no longer authenticates with symmetric keys", id)
	}
	return d, nil
}

// Poll tells a device how its operation stands. Pending is an answer, not an
// error; once approved the result carries a registration token (issued
// anew on every poll, so a lost answer costs nothing) and the operation is
// completed. A rejected or expired operation is an error.
func (s *Service) Poll(ctx context.Context, req PollRequest) (*PollResult, error) {
	tok, err := s.tokenOf(ctx, req.ProvisioningToken, false)
	if err != nil {
		return nil, err
	}
	op, err := s.store.GetOperation(ctx, req.OperationID)
	if err == nil && op.TokenID != tok.ID {
		err = OperationNotFoundError(req.OperationID) // another token's operation is none of this device's business
	}
	if err != nil {
		return nil, fmt.Errorf("provision: poll operation %s: %w", req.OperationID, err)
	}
	res := &PollResult{OperationID: op.ID, State: op.effectiveState(s.now()), VerificationCode: op.VerificationCode, ExpiresAt: op.ExpiresAt}
	switch res.State {
	case StatePending:
		res.RetryAfterSeconds = int(s.opt.PollInterval.Seconds() + 0.5)
		return res, nil
	case StateRejected:
		return nil, operationRejected(op.ID, op.Reason)
	case StateExpired:
		return nil, operationExpired(op.ID)
	}
	reg, _, err := s.issue(ctx, op.DeviceID, "", tok)
	if err != nil {
		return nil, err
	}
	if op.State == StateApproved {
		_, err := s.store.DecideOperation(ctx, op.ID, []State{StateApproved}, StateCompleted, "", s.now())
		if err != nil && !fault.Is(err, fault.Conflict) { // a concurrent poll completed it
			return nil, fmt.Errorf("provision: complete operation %s: %w", op.ID, err)
		}
		s.log.Info("provisioning operation completed", "operation", op.ID, "device", op.DeviceID)
	}
	res.State = StateApproved
	res.Registration = *reg
	return res, nil
}

// Register exchanges an unexpired registration token for the device's
// credentials.
func (s *Service) Register(ctx context.Context, req RegisterRequest) (*Credentials, error) {
	c, err := s.verify(req.RegistrationToken)
	if err != nil {
		return nil, err
	}
	exp := time.Unix(c.Expires, 0).UTC()
	if !s.now().Before(exp) {
		return nil, invalidRegistrationToken("registration token expired at %s; refresh it with the provisioning token", exp.Format(time.RFC3339))
	}
	if err := s.tokenStillValid(ctx, c.TokenID); err != nil {
		return nil, err
	}
	d, err := s.usableDevice(ctx, c.DeviceID, c.GenerationID)
	if err != nil {
		return nil, err
	}
	host := s.opt.DeviceHost()
	key := d.Authentication.SymmetricKey.PrimaryKey
	return &Credentials{
		HostName:                   host,
		DeviceID:                   d.DeviceID,
		SharedAccessKey:            key,
		ConnectionString:           protocol.ConnectionString{HostName: host, DeviceID: d.DeviceID, SharedAccessKey: key}.String(),
		RegistrationTokenExpiresAt: exp,
	}, nil
}

// tokenStillValid checks that the provisioning token a registration token
// came from exists and is not revoked.
func (s *Service) tokenStillValid(ctx context.Context, tokenID string) error {
	t, err := s.store.GetTokenByID(ctx, tokenID)
	if fault.Is(err, fault.NotFound) {
		return invalidProvisioningToken("the provisioning token of this registration no longer exists")
	}
	if err != nil {
		return fmt.Errorf("provision: look up token: %w", err)
	}
	if t.Revoked {
		return invalidProvisioningToken("provisioning token %q was revoked", t.Name)
	}
	return nil
}

// Refresh exchanges a registration token, expired or not, and the
// provisioning token it came from for a new registration token.
func (s *Service) Refresh(ctx context.Context, req RefreshRequest) (*Registration, error) {
	tok, err := s.tokenOf(ctx, req.ProvisioningToken, false)
	if err != nil {
		return nil, err
	}
	c, err := s.verify(req.RegistrationToken)
	if err != nil {
		return nil, err
	}
	if c.TokenID != tok.ID {
		return nil, invalidRegistrationToken("the registration token was not issued for this provisioning token")
	}
	reg, _, err := s.issue(ctx, c.DeviceID, c.GenerationID, tok)
	if err != nil {
		return nil, err
	}
	return reg, nil
}
