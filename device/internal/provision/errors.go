package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// The hub's refusals that call for a decision by the device (see the
// package documentation). An *Error matches one of them with errors.Is.
var (
	ErrInvalidProvisioningToken = errors.New("provision: invalid provisioning token")
	ErrRejected                 = errors.New("provision: operation rejected")
	ErrExpired                  = errors.New("provision: operation expired")
	ErrInvalidRegistrationToken = errors.New("provision: invalid registration token")
	ErrDeviceDisabled           = errors.New("provision: device disabled")
	ErrOperationNotFound        = errors.New("provision: operation not found")
)

// codes maps the hub's error codes to the sentinels.
var codes = map[string]error{
	"InvalidProvisioningToken":      ErrInvalidProvisioningToken,
	"ProvisioningOperationRejected": ErrRejected,
	"ProvisioningOperationExpired":  ErrExpired,
	"InvalidRegistrationToken":      ErrInvalidRegistrationToken,
	"DeviceDisabled":                ErrDeviceDisabled,
	"ProvisioningOperationNotFound": ErrOperationNotFound,
}

// Error is a refusal by the hub.
type Error struct {
	Status  int    // HTTP status
	Code    string // the hub's error code, e.g. "InvalidProvisioningToken"
	Message string // the hub's explanation
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("provision: %s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	}
	return fmt.Sprintf("provision: %s (HTTP %d)", e.Message, e.Status)
}

// Is matches the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := codes[e.Code]
	return ok && s == target
}

// errorFromAnswer reads the hub's error body: Azure's shape,
// {"Message":"ErrorCode:<Code>;<text>","message":"<text>",...}.
func errorFromAnswer(status int, raw []byte) error {
	e := &Error{Status: status}
	var body struct {
		Message string `json:"Message"`
		Text    string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil {
		if rest, ok := strings.CutPrefix(body.Message, "ErrorCode:"); ok {
			e.Code, e.Message, _ = strings.Cut(rest, ";")
		}
		if body.Text != "" {
			e.Message = body.Text
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(raw))
		if len(e.Message) > 200 || e.Message == "" {
			e.Message = fmt.Sprintf("the hub answered HTTP %d", status)
		}
	}
	return e
}
