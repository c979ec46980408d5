// Package provision lets new devices join the hub without anyone copying
// keys by hand, the way Spotflow's provisioning works: an operator creates a
// provisioning token and shares it with many devices; a device that starts
// with it opens a provisioning operation and shows its verification code;
// the operator compares the code and approves (or rejects) the operation;
// the device then collects a registration token and, with it, its
// credentials.
//
// # Flow
//
//  1. [Service.CreateToken] makes a [Token]. Its secret is returned once and
//     only its SHA-256 hash is stored.
//  2. [Service.Init] (the device, with the secret): a pending [Operation]
//     with a short verification code and an expiry (15 minutes by default).
//  3. [Service.Approve] (the operator) creates the device identity with
//     fresh symmetric keys through the registry, or binds an existing SAS
//     device, sets the twin's tags and desired properties, and counts one
//     use of the token. [Service.Reject] ends the operation.
//  4. [Service.Poll] (the device): pending until decided; once approved it
//     returns a registration token, and the operation is completed.
//  5. [Service.Register] exchanges the registration token for
//     [Credentials]: the hub's device host, the device id and its key.
//     [Service.Refresh] exchanges the provisioning token and a registration
//     token (expired or not) for a new registration token.
//
// # Registration tokens
//
// A registration token is signed by the hub (HMAC-SHA256 with a key kept in
// the store) and names the device, its generation id and the provisioning
// token it came from, so it needs no storage of its own. Register and
// Refresh refuse it when the provisioning token was revoked, or the device
// was deleted (also when a new device reuses the id), disabled, or switched
// to X.509 authentication.
//
// Expiry and MaxUses of a provisioning token limit who may join; revoking it
// also stops the devices that joined with it from refreshing or
// registering again. Credentials already handed out keep working until the
// device is disabled or deleted, as with Azure DPS.
//
// # Limits and retention
//
// Anyone holding a provisioning token may open operations, so they are
// bounded: at most Options.MaxPending wait for an operator at once, and
// Options.MaxPendingPerDevice for one requested device id; beyond either,
// Init is PendingLimitError (HTTP 429, which devices retry later). A
// device that asks again with the same token and device id replaces its
// waiting operation (new id and code) instead of adding one; it is not
// given the old operation, whose id would let another holder of the token
// collect the credentials an operator approves for it.
// [Service.PurgeOperations] deletes operations a retention after they
// ended; the hub calls it periodically.
//
// # Errors
//
// Errors are *fault.Error values with Azure-style codes (see errors.go), so
// the REST API reports them as it reports every other error and device-side
// clients can tell "stop, the token is bad" from "try again".
package provision
