package provision

import (
	"context"
	"time"
)

// Store persists tokens, operations and the registration-token signing key.
// Implementations must be safe for concurrent use and report the errors
// named below (wrapping is fine). internal/store/storetest checks an
// implementation against this contract.
type Store interface {
	// CreateToken inserts t. A taken name is TokenExistsError.
	CreateToken(ctx context.Context, t *Token) error
	// GetToken returns the token named name, or TokenNotFoundError.
	GetToken(ctx context.Context, name string) (*Token, error)
	// GetTokenByID returns the token with id, or TokenNotFoundError.
	GetTokenByID(ctx context.Context, id string) (*Token, error)
	// GetTokenByHash returns the token whose SecretHash is hash, or
	// TokenNotFoundError.
	GetTokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// ListTokens returns every token, ordered by name.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken marks the named token revoked at time at (a second
	// revocation keeps the first time) and returns it.
	RevokeToken(ctx context.Context, name string, at time.Time) (*Token, error)

	// CreateOperation inserts op.
	CreateOperation(ctx context.Context, op *Operation) error
	// GetOperation returns one operation, or OperationNotFoundError.
	GetOperation(ctx context.Context, id string) (*Operation, error)
	// ListOperations returns up to limit operations whose stored state is
	// one of states (all when states is empty), newest first.
	ListOperations(ctx context.Context, states []State, limit int) ([]Operation, error)
	// ApproveOperation atomically checks that the operation is pending and
	// unexpired at now (else OperationNotPendingError, with StateExpired for
	// an expired one) and that its token is neither revoked nor used up
	// (else TokenUnusableError); then it sets the state approved, DeviceID,
	// DecidedAt = now and ExpiresAt = expires, counts one use of the token,
	// and returns the operation.
	ApproveOperation(ctx context.Context, id, deviceID string, now, expires time.Time) (*Operation, error)
	// DecideOperation atomically moves an operation whose state is one of
	// from to state to (else OperationNotPendingError naming the current
	// state), setting DecidedAt = now when it was pending, and the reason
	// when reason is not empty.
	DecideOperation(ctx context.Context, id string, from []State, to State, reason string, now time.Time) (*Operation, error)

	// SigningKey returns the registration-token signing key, storing
	// candidate first when there is none, so every hub node sharing the
	// store signs with the same key.
	SigningKey(ctx context.Context, candidate []byte) ([]byte, error)
}
