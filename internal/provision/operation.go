package provision

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// codeAlphabet is the verification code's alphabet: digits and capitals
// without the look-alikes 0/O, 1/I/L.
const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// CodeLen is the length of a verification code: 31^6, about 887 million
// codes, enough that an operator who compares it is not fooled by chance.
const CodeLen = 6

// newCode returns a uniformly random verification code.
func (s *Service) newCode() (string, error) {
	const limit = 256 - 256%len(codeAlphabet) // reject bytes that would bias the modulo
	out := make([]byte, 0, CodeLen)
	var buf [16]byte
	for len(out) < CodeLen {
		if err := s.random(buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < CodeLen {
				out = append(out, codeAlphabet[int(b)%len(codeAlphabet)])
			}
		}
	}
	return string(out), nil
}

// Init opens a provisioning operation for a device that presents a valid,
// unexpired provisioning token with uses left.
func (s *Service) Init(ctx context.Context, req InitRequest) (*InitResult, error) {
	tok, err := s.tokenOf(ctx, req.ProvisioningToken, true)
	if err != nil {
		return nil, err
	}
	if req.DeviceID != "" {
		if err := registry.ValidateDeviceID(req.DeviceID); err != nil {
			return nil, err
		}
	}
	if len(req.ModelID) > MaxModelIDLen {
		return nil, fault.Invalidf("modelId is %d bytes long; the limit is %d", len(req.ModelID), MaxModelIDLen)
	}
	if req.ModelID != "" && !strings.HasPrefix(req.ModelID, "dtmi:") {
		return nil, fault.Invalidf("modelId %q is not a DTMI (it must start with dtmi:)", req.ModelID)
	}
	data, err := objectOrNil("data", req.Data, MaxDataBytes)
	if err != nil {
		return nil, err
	}
	var id [12]byte
	if err := s.random(id[:]); err != nil {
		return nil, err
	}
	code, err := s.newCode()
	if err != nil {
		return nil, err
	}
	now := s.now()
	op := Operation{
		ID:                hex.EncodeToString(id[:]),
		TokenID:           tok.ID,
		RequestedDeviceID: req.DeviceID,
		VerificationCode:  code,
		State:             StatePending,
		CreatedAt:         now,
		ExpiresAt:         now.Add(s.opt.OperationTTL),
		ModelID:           req.ModelID,
		Data:              data,
	}
	// A device that asks again for the same id (it restarted, or lost the
	// answer) replaces its pending operation, with a new id and code, rather
	// than adding one. It is not handed the old operation: whoever holds the
	// shared provisioning token could then ask for a device id it saw and
	// collect the credentials the operator approves for the real device.
	lim := PendingLimits{Total: s.opt.MaxPending, PerDevice: s.opt.MaxPendingPerDevice}
	replaced, err := s.store.OpenOperation(ctx, &op, lim)
	if err != nil {
		return nil, fmt.Errorf("provision: open operation: %w", err)
	}
	s.log.Info("provisioning operation opened", "operation", op.ID, "token", tok.Name,
		"requestedDevice", op.RequestedDeviceID, "code", op.VerificationCode, "replaces", replaced)
	if tok.AutoApprove {
		// The device's first poll finds it approved. A failed approval
		// (say, the token ran out of uses) leaves the operation pending
		// for an operator.
		if _, err := s.Approve(ctx, op.ID, Approval{}); err != nil {
			s.log.Warn("automatic approval failed; the operation waits for an operator", "operation", op.ID, "error", err)
		}
	}
	return &InitResult{OperationID: op.ID, VerificationCode: op.VerificationCode, ExpiresAt: op.ExpiresAt}, nil
}

// objectOrNil checks that raw is absent, null or a JSON object of at most
// limit bytes, and returns it compacted (nil when absent or null).
func objectOrNil(field string, raw json.RawMessage, limit int) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > limit {
		return nil, fault.TooLargef("%s is %d bytes; the limit is %d", field, len(raw), limit)
	}
	if raw[0] != '{' || !json.Valid(raw) {
		return nil, fault.Invalidf("%s must be a JSON object", field)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, fault.Invalidf("%s must be a JSON object: %v", field, err)
	}
	return b.Bytes(), nil
}

// Operation returns one operation as operators see it (with its token's
// name and its current state).
func (s *Service) Operation(ctx context.Context, id string) (*Operation, error) {
	op, err := s.store.GetOperation(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("provision: get operation %s: %w", id, err)
	}
	s.present(ctx, op, map[string]string{})
	return op, nil
}

// present sets an operation's current state and its token's name, caching
// names in names.
func (s *Service) present(ctx context.Context, op *Operation, names map[string]string) {
	op.State = op.effectiveState(s.now())
	name, ok := names[op.TokenID]
	if !ok {
		if t, err := s.store.GetTokenByID(ctx, op.TokenID); err == nil {
			name = t.Name
		}
		names[op.TokenID] = name
	}
	op.TokenName = name
}

// Operations lists up to limit operations in state (all when state is
// empty), newest first.
func (s *Service) Operations(ctx context.Context, state State, limit int) ([]Operation, error) {
	if state != "" && !ValidState(state) {
		return nil, fault.Invalidf("state %q is not one of pending, approved, rejected, expired, completed", state)
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	var stored []State
	switch state {
	case "":
	case StatePending, StateExpired:
		stored = []State{StatePending} // expired is pending past its expiry
	default:
		stored = []State{state}
	}
	ops, err := s.store.ListOperations(ctx, stored, limit)
	if err != nil {
		return nil, fmt.Errorf("provision: list operations: %w", err)
	}
	out := []Operation{}
	names := map[string]string{}
	for i := range ops {
		s.present(ctx, &ops[i], names)
		if state == "" || ops[i].State == state {
			out = append(out, ops[i])
		}
	}
	return out, nil
}

// Approve lets an operation's device in: it creates the device (SAS, with
// fresh keys) or binds an existing SAS device, merges the approval's tags
// and desired properties into its twin, and counts one use of the token.
func (s *Service) Approve(ctx context.Context, id string, a Approval) (*Operation, error) {
	s.approveMu.Lock()
	defer s.approveMu.Unlock()
	op, err := s.decidable(ctx, id)
	if err != nil {
		return nil, err
	}
	tok, err := s.store.GetTokenByID(ctx, op.TokenID)
	if err != nil {
		return nil, fmt.Errorf("provision: token of operation %s: %w", id, err)
	}
	if tok.Revoked {
		return nil, TokenUnusableError(tok.Name, "was revoked")
	}
	if tok.Exhausted() {
		return nil, TokenUnusableError(tok.Name, fmt.Sprintf("has been used %d of %d times", tok.Uses, tok.MaxUses))
	}
	deviceID := a.DeviceID
	if deviceID == "" {
		deviceID = op.RequestedDeviceID
	}
	if deviceID == "" {
		return nil, fault.Invalidf("the device asked for no device id: give one (deviceId) to approve operation %s", id)
	}
	if err := registry.ValidateDeviceID(deviceID); err != nil {
		return nil, err
	}
	tags, err := objectOrNil("tags", a.Tags, 32<<10)
	if err != nil {
		return nil, err
	}
	desired, err := objectOrNil("desired", a.Desired, 32<<10)
	if err != nil {
		return nil, err
	}
	created, err := s.ensureDevice(ctx, deviceID, op.ModelID)
	if err != nil {
		return nil, err
	}
	if tags != nil || desired != nil {
		if err := s.opt.Twins.SetInitial(ctx, deviceID, tags, desired); err != nil {
			return nil, fmt.Errorf("provision: twin of %s: %w", deviceID, err)
		}
	}
	now := s.now()
	expires := now.Add(s.opt.OperationTTL) // time for the device to collect its token
	if op.ExpiresAt.After(expires) {
		expires = op.ExpiresAt
	}
	out, err := s.store.ApproveOperation(ctx, id, deviceID, now, expires)
	if err != nil {
		return nil, fmt.Errorf("provision: approve operation %s: %w", id, err)
	}
	s.log.Info("provisioning operation approved", "operation", id, "token", tok.Name, "device", deviceID, "created", created)
	s.present(ctx, out, map[string]string{tok.ID: tok.Name})
	return out, nil
}

// decidable returns the operation if an operator may still decide it.
func (s *Service) decidable(ctx context.Context, id string) (*Operation, error) {
	op, err := s.store.GetOperation(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("provision: get operation %s: %w", id, err)
	}
	switch st := op.effectiveState(s.now()); st {
	case StatePending:
		return op, nil
	case StateExpired:
		return nil, operationExpired(id)
	default:
		return nil, OperationNotPendingError(id, st)
	}
}

// ensureDevice creates the device, or checks that an existing one can be
// bound: enabled and authenticated with symmetric keys.
func (s *Service) ensureDevice(ctx context.Context, id, modelID string) (created bool, err error) {
	d, err := s.opt.Registry.Get(ctx, id)
	if fault.Is(err, fault.NotFound) {
		_, err = s.opt.Registry.Create(ctx, registry.Device{DeviceID: id, ModelID: modelID,
			Authentication: registry.Authentication{Type: registry.AuthSAS}})
		if err != nil {
			return false, fmt.Errorf("provision: create device %s: %w", id, err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("provision: get device %s: %w", id, err)
	}
	if d.Authentication.Type != registry.AuthSAS || d.Authentication.SymmetricKey == nil {
		return false, fault.Invalidf("device %q authenticates with %s; only a device with symmetric keys can be bound", id, d.Authentication.Type)
	}
	if d.Status == registry.StatusDisabled {
		return false, fault.New(fault.Conflict, "DeviceDisabled", 409105, "device %q is disabled; enable it before binding it", id)
	}
	return false, nil
}

// Reject refuses an operation; the device's next poll says so.
func (s *Service) Reject(ctx context.Context, id string, r Rejection) (*Operation, error) {
	if len(r.Reason) > 512 {
		return nil, fault.Invalidf("reason is %d bytes long; the limit is 512", len(r.Reason))
	}
	if _, err := s.decidable(ctx, id); err != nil {
		return nil, err
	}
	op, err := s.store.DecideOperation(ctx, id, []State{StatePending}, StateRejected, r.Reason, s.now())
	if err != nil {
		return nil, fmt.Errorf("provision: reject operation %s: %w", id, err)
	}
	s.log.Info("provisioning operation rejected", "operation", id, "reason", r.Reason)
	s.present(ctx, op, map[string]string{})
	return op, nil
}
