package provision

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// secretPrefix starts every provisioning token string, so a token pasted in
// the wrong place (or found in a log) is recognisable.
const secretPrefix = "fpt_"

// hashSecret is what the store keeps of a secret. The secret has 256 random
// bits, so a plain SHA-256 cannot be reversed by guessing.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateToken makes a provisioning token. The returned secret is not stored
// and cannot be shown again.
func (s *Service) CreateToken(ctx context.Context, req CreateTokenRequest) (*NewToken, error) {
	if err := validateTokenName(req.Name); err != nil {
		return nil, err
	}
	now := s.now()
	if req.ExpiresAt.IsZero() {
		req.ExpiresAt = now.Add(DefaultTokenTTL)
	}
	if !req.ExpiresAt.After(now) {
		return nil, fault.Invalidf("expiresAt %s is not in the future", req.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if req.MaxUses < 0 {
		return nil, fault.Invalidf("maxUses must be 0 (unlimited) or more, not %d", req.MaxUses)
	}
	var raw [32]byte
	if err := s.random(raw[:]); err != nil {
		return nil, err
	}
	var id [8]byte
	if err := s.random(id[:]); err != nil {
		return nil, err
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	t := Token{
		ID:          hex.EncodeToString(id[:]),
		Name:        req.Name,
		CreatedAt:   now,
		ExpiresAt:   req.ExpiresAt.UTC(),
		MaxUses:     req.MaxUses,
		AutoApprove: req.AutoApprove,
		SecretHash:  hashSecret(secret),
	}
	if err := s.store.CreateToken(ctx, &t); err != nil {
		return nil, fmt.Errorf("provision: create token %s: %w", req.Name, err)
	}
	s.log.Info("provisioning token created", "token", t.Name, "expires", t.ExpiresAt, "maxUses", t.MaxUses,
		"autoApprove", t.AutoApprove)
	return &NewToken{Token: t, Secret: secret}, nil
}

// validateTokenName allows 1 to 64 ASCII letters, digits, '-', '_' and '.',
// so a name is safe in a URL path and a shell.
func validateTokenName(name string) error {
	if name == "" {
		return fault.Invalidf("a provisioning token needs a name")
	}
	if len(name) > MaxTokenNameLen {
		return fault.Invalidf("token name is %d bytes long; the limit is %d", len(name), MaxTokenNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fault.Invalidf("token name %q: character %q is not allowed (use letters, digits, - _ .)", name, c)
		}
	}
	return nil
}

// Token returns the token named name.
func (s *Service) Token(ctx context.Context, name string) (*Token, error) {
	t, err := s.store.GetToken(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("provision: get token %s: %w", name, err)
	}
	return t, nil
}

// Tokens returns every token, ordered by name.
func (s *Service) Tokens(ctx context.Context) ([]Token, error) {
	ts, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("provision: list tokens: %w", err)
	}
	if ts == nil {
		ts = []Token{}
	}
	return ts, nil
}

// RevokeToken revokes the token named name: no new operations, no approvals
// of its pending ones, and no registration or refresh for the devices that
// joined with it. Revoking twice is not an error.
func (s *Service) RevokeToken(ctx context.Context, name string) (*Token, error) {
	t, err := s.store.RevokeToken(ctx, name, s.now())
	if err != nil {
		return nil, fmt.Errorf("provision: revoke token %s: %w", name, err)
	}
	s.log.Info("provisioning token revoked", "token", t.Name)
	return t, nil
}

// tokenOf returns the token whose secret a device presented, if it is
// known and not revoked. forNew also requires it unexpired and not used up:
// what opening a new operation takes.
func (s *Service) tokenOf(ctx context.Context, secret string, forNew bool) (*Token, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, invalidProvisioningToken("the provisioning token is missing")
	}
	t, err := s.store.GetTokenByHash(ctx, hashSecret(secret))
	if fault.Is(err, fault.NotFound) {
		return nil, invalidProvisioningToken("unknown provisioning token")
	}
	if err != nil {
		return nil, fmt.Errorf("provision: look up token: %w", err)
	}
	if t.Revoked {
		return nil, invalidProvisioningToken("provisioning token %q was revoked", t.Name)
	}
	if !forNew {
		return t, nil
	}
	if !s.now().Before(t.ExpiresAt) {
		return nil, invalidProvisioningToken("provisioning token %q expired at %s", t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	if t.Exhausted() {
		return nil, invalidProvisioningToken("provisioning token %q has been used %d of %d times", t.Name, t.Uses, t.MaxUses)
	}
	return t, nil
}
