package provision

import (
	"encoding/json"
	"time"
)

// Token is a provisioning token: a shared secret that lets devices open
// provisioning operations. Its JSON form never carries the secret.
type Token struct {
	ID        string    `json:"id"`   // random, fixed for the token's life; registration tokens name it
	Name      string    `json:"name"` // unique, chosen by the operator, e.g. "line-3"
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"` // no new operations after this
	MaxUses   int       `json:"maxUses"`   // approvals allowed; 0 means unlimited
	Uses      int       `json:"uses"`      // approvals so far
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	// AutoApprove approves every operation the token opens at once, with
	// the requested device id: for labs and load tests, never for a fleet
	// in the field (anyone holding the token gets a device).
	AutoApprove bool `json:"autoApprove,omitempty"`

	// SecretHash is the SHA-256 of the secret; only the store reads it.
	SecretHash []byte `json:"-"`
}

// Exhausted reports whether the token has no approvals left.
func (t *Token) Exhausted() bool { return t.MaxUses > 0 && t.Uses >= t.MaxUses }

// NewToken is a token as created: the Token and, once only, its secret.
type NewToken struct {
	Token
	Secret string `json:"token"` // the provisioning token string devices start with
}

// CreateTokenRequest is what an operator gives to create a token.
type CreateTokenRequest struct {
	Name      string    `json:"name"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"` // default: 30 days from now
	MaxUses   int       `json:"maxUses,omitempty"`  // 0: unlimited
	// AutoApprove: see Token.AutoApprove.
	AutoApprove bool `json:"autoApprove,omitempty"`
}

// State is the state of a provisioning operation.
type State string

// The operation states. Expired is never stored: a pending operation past
// its expiry reads as expired.
const (
	StatePending   State = "pending"   // waiting for an operator
	StateApproved  State = "approved"  // approved; the device has not collected its registration token yet
	StateRejected  State = "rejected"  // refused by an operator
	StateExpired   State = "expired"   // nobody decided before the expiry
	StateCompleted State = "completed" // the device collected its registration token
)

// ValidState reports whether s is one of the states.
func ValidState(s State) bool {
	switch s {
	case StatePending, StateApproved, StateRejected, StateExpired, StateCompleted:
		return true
	}
	return false
}

// Operation is one device's request to join, opened with a provisioning token.
type Operation struct {
	ID                string          `json:"operationId"`
	TokenID           string          `json:"tokenId"`
	TokenName         string          `json:"tokenName,omitempty"` // filled in for operators
	RequestedDeviceID string          `json:"requestedDeviceId,omitempty"`
	VerificationCode  string          `json:"verificationCode"`
	State             State           `json:"state"`
	CreatedAt         time.Time       `json:"createdAt"`
	ExpiresAt         time.Time       `json:"expiresAt"`
	DecidedAt         time.Time       `json:"decidedAt,omitzero"` // approval or rejection
	DeviceID          string          `json:"deviceId,omitempty"` // the device approved, after approval
	ModelID           string          `json:"modelId,omitempty"`  // IoT Plug and Play model the device announced
	Data              json.RawMessage `json:"data,omitempty"`     // custom data the device sent (a JSON object)
	Reason            string          `json:"reason,omitempty"`   // the operator's reason for a rejection
}

// effectiveState is the state at time now: a pending operation past its
// expiry is expired.
func (op *Operation) effectiveState(now time.Time) State {
	if op.State == StatePending && !now.Before(op.ExpiresAt) {
		return StateExpired
	}
	return op.State
}

// InitRequest is what a device sends to open an operation.
type InitRequest struct {
	ProvisioningToken string          `json:"provisioningToken"`
	DeviceID          string          `json:"deviceId,omitempty"` // the id the device asks for; the operator may override it
	ModelID           string          `json:"modelId,omitempty"`
	Data              json.RawMessage `json:"data,omitempty"` // a JSON object of at most MaxDataBytes
}

// InitResult is what the device shows (or logs) while it waits.
type InitResult struct {
	OperationID      string    `json:"operationId"`
	VerificationCode string    `json:"verificationCode"`
	ExpiresAt        time.Time `json:"expiresAt"`
}

// Approval is an operator's decision to let an operation's device in.
type Approval struct {
	DeviceID string          `json:"deviceId,omitempty"` // overrides the requested id
	Tags     json.RawMessage `json:"tags,omitempty"`     // twin tags to set (a JSON object)
	Desired  json.RawMessage `json:"desired,omitempty"`  // initial desired properties (a JSON object)
}

// Rejection is an operator's decision to refuse an operation.
type Rejection struct {
	Reason string `json:"reason,omitempty"`
}

// PollResult is the answer to a device polling its operation. While the
// operation is pending only the first fields are set; once approved the
// registration token is there.
type PollResult struct {
	OperationID       string    `json:"operationId"`
	State             State     `json:"state"`
	VerificationCode  string    `json:"verificationCode"`
	ExpiresAt         time.Time `json:"expiresAt"`
	RetryAfterSeconds int       `json:"retryAfterSeconds,omitempty"` // while pending
	Registration
}

// Registration is a registration token and what it stands for.
type Registration struct {
	DeviceID                   string    `json:"deviceId,omitempty"`
	RegistrationToken          string    `json:"registrationToken,omitempty"`
	RegistrationTokenExpiresAt time.Time `json:"registrationTokenExpiresAt,omitzero"`
}

// RegisterRequest exchanges a registration token for credentials.
type RegisterRequest struct {
	RegistrationToken string `json:"registrationToken"`
}

// RefreshRequest exchanges a registration token (expired or not) and the
// provisioning token it came from for a new registration token.
type RefreshRequest struct {
	ProvisioningToken string `json:"provisioningToken"`
	RegistrationToken string `json:"registrationToken"`
}

// PollRequest asks for the state of an operation.
type PollRequest struct {
	ProvisioningToken string `json:"provisioningToken"`
	OperationID       string `json:"operationId"`
}

// Credentials are what a device connects with.
type Credentials struct {
	HostName                   string    `json:"hostName"` // the hub's MQTT host[:port] (and the SAS resource's host)
	DeviceID                   string    `json:"deviceId"`
	SharedAccessKey            string    `json:"sharedAccessKey"`  // the device's primary key, base64
	ConnectionString           string    `json:"connectionString"` // HostName=..;DeviceId=..;SharedAccessKey=..
	RegistrationTokenExpiresAt time.Time `json:"registrationTokenExpiresAt"`
}
