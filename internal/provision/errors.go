package provision

import "github.com/ferry-iot/ferry/internal/fault"

// The error codes devices act on. Every provisioning-token failure has the
// code InvalidProvisioningToken (the device must stop and be given another
// token); the message says why.
const (
	CodeInvalidProvisioningToken = "InvalidProvisioningToken"
	CodeInvalidRegistrationToken = "InvalidRegistrationToken"
	CodeOperationRejected        = "ProvisioningOperationRejected"
	CodeOperationExpired         = "ProvisioningOperationExpired"
	CodeOperationNotFound        = "ProvisioningOperationNotFound"
	CodeOperationNotPending      = "ProvisioningOperationNotPending"
	CodeTokenNotFound            = "ProvisioningTokenNotFound"
	CodeTokenExists              = "ProvisioningTokenAlreadyExists"
	CodeTokenUnusable            = "ProvisioningTokenUnusable"
	// CodePendingLimit: too many operations wait for an operator already;
	// the device should try again later (HTTP 429).
	CodePendingLimit = "ProvisioningPendingLimit"
)

func invalidProvisioningToken(format string, args ...any) *fault.Error {
	return fault.New(fault.Unauthorized, CodeInvalidProvisioningToken, 401101, format, args...)
}

func invalidRegistrationToken(format string, args ...any) *fault.Error {
	return fault.New(fault.Unauthorized, CodeInvalidRegistrationToken, 401102, format, args...)
}

func operationRejected(id, reason string) *fault.Error {
	if reason != "" {
		return fault.New(fault.Forbidden, CodeOperationRejected, 403101, "provisioning operation %s was rejected: %s", id, reason)
	}
	return fault.New(fault.Forbidden, CodeOperationRejected, 403101, "provisioning operation %s was rejected by an operator", id)
}

func operationExpired(id string) *fault.Error {
	return fault.New(fault.Conflict, CodeOperationExpired, 409101,
		"provisioning operation %s expired before an operator decided; start a new one", id)
}

// OperationNotFoundError is the error for an unknown operation id. Ids stop
// existing on purpose too, so the message names the ways.
func OperationNotFoundError(id string) *fault.Error {
	return fault.New(fault.NotFound, CodeOperationNotFound, 404101,
		"provisioning operation %q not found (a newer request for the same device replaces a waiting one, "+
			"and ended operations are deleted after a while); start a new one", id)
}

// OperationNotPendingError is the error for deciding an operation that was
// decided already (the store returns it when its state check fails).
func OperationNotPendingError(id string, s State) *fault.Error {
	return fault.New(fault.Conflict, CodeOperationNotPending, 409102,
		"provisioning operation %s is %s, not pending", id, s)
}

// TokenNotFoundError is the error for an unknown token name.
func TokenNotFoundError(name string) *fault.Error {
	return fault.New(fault.NotFound, CodeTokenNotFound, 404102, "provisioning token %q not found", name)
}

// TokenExistsError is the error for creating a token whose name is taken.
func TokenExistsError(name string) *fault.Error {
	return fault.New(fault.Conflict, CodeTokenExists, 409103, "provisioning token %q already exists", name)
}

// TokenUnusableError is the error for approving an operation whose token
// was revoked or used up meanwhile (the store returns it).
func TokenUnusableError(name, why string) *fault.Error {
	return fault.New(fault.Conflict, CodeTokenUnusable, 409104,
		"provisioning token %q %s; the operation cannot be approved", name, why)
}

// PendingLimitError is the error for opening an operation while limit
// operations (of the requested device id, when deviceID is not empty) wait
// for an operator already. It is Throttled (HTTP 429), which device clients
// retry later: the queue shrinks as operators decide and operations expire.
func PendingLimitError(deviceID string, limit int) *fault.Error {
	if deviceID != "" {
		return fault.New(fault.Throttled, CodePendingLimit, 429101,
			"%d provisioning operations for device id %q are waiting for an operator already (the limit); "+
				"an operator must approve or reject them, or they expire", limit, deviceID)
	}
	return fault.New(fault.Throttled, CodePendingLimit, 429101,
		"%d provisioning operations are waiting for an operator already (the limit); "+
			"try again after an operator approved or rejected some, or they expired", limit)
}
