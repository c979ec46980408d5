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
	// OpenOperation atomically stores op, a new pending operation, within
	// lim, counting pending operations unexpired at op.CreatedAt whose token
	// is not revoked (they can no longer be approved). When one of
	// them has op's TokenID and non-empty RequestedDeviceID, op takes its
	// place (the old id stops existing) and replaced is that old id: a
	// device asking again adds no row and is never refused for the limits.
	// Otherwise, when lim.Total such operations exist, or lim.PerDevice with
	// op's RequestedDeviceID, it returns PendingLimitError; a limit <= 0 is
	// none.
	OpenOperation(ctx context.Context, op *Operation, lim PendingLimits) (replaced string, err error)
	// PurgeOperations deletes up to limit operations whose ExpiresAt is
	// before cutoff, whatever their state, and returns how many it deleted.
	PurgeOperations(ctx context.Context, cutoff time.Time, limit int) (int64, error)
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

// PendingLimits bound the operations that wait for an operator.
type PendingLimits struct {
	Total     int // pending operations in all
	PerDevice int // pending operations asking for one device id (under different tokens)
}
