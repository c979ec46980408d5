// Package provision is the device side of Ferry's provisioning with operator
// approval: a small REST client a device uses to join a hub with a
// provisioning token and no key of its own. It is pure Go, has no
// dependencies outside the standard library, and runs on a Raspberry Pi.
//
// # Flow
//
//	c, _ := provision.New("https://hub.example:8080", provision.Options{CAFile: "ca.pem"})
//	op, _ := c.Init(ctx, provision.InitRequest{ProvisioningToken: tok, DeviceID: "pump-7"})
//	// show op.VerificationCode to the person who approves the device
//	reg, _ := c.Wait(ctx, tok, op, nil) // polls until an operator decides
//	creds, _ := c.Register(ctx, reg.RegistrationToken)
//	// connect with creds.ConnectionString; keep reg and creds in the device's store
//
// [Client.Provision] is Init and Wait in one call, with a callback that
// shows the operation. Later, when the stored registration token is about
// to expire (or Register says it has), [Client.Refresh] trades it and the
// provisioning token for a new one; a registration token that is merely
// expired can still be refreshed.
//
// # Errors
//
// The hub's refusals are *[Error] values carrying its error code. They match
// these sentinels with errors.Is, which say what the device should do:
//
//   - [ErrInvalidProvisioningToken]: the provisioning token is unknown,
//     expired, used up or revoked. Stop: nothing but a new token helps.
//   - [ErrRejected]: an operator rejected the operation. Stop.
//   - [ErrExpired]: nobody decided before the operation expired. Start over
//     with Init (Provision does not do so on its own).
//   - [ErrOperationNotFound]: the hub no longer knows the operation: a newer
//     request for the same device id replaced it, or it ended long ago and
//     was purged. Start over with Init, which shows a new code.
//   - [ErrInvalidRegistrationToken]: the registration token is malformed,
//     expired (for Register), or its device was deleted or replaced.
//     Refresh it; if Refresh also fails with this error, provision again.
//   - [ErrDeviceDisabled]: an operator disabled the device. Wait, or stop.
//
// Any other error, including every network error and 5xx answer, is
// transient: [IsTransient] reports it, and the device should retry later
// (Wait retries polls by itself). A device that has stored credentials
// should keep using them while errors are transient.
package provision
