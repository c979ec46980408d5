package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Provisioning is the hub's provisioning service (package provision): the
// operator side manages tokens and decides operations, the device side
// opens and polls operations and collects credentials.
type Provisioning interface {
	CreateToken(ctx context.Context, req provision.CreateTokenRequest) (*provision.NewToken, error)
	Token(ctx context.Context, name string) (*provision.Token, error)
	Tokens(ctx context.Context) ([]provision.Token, error)
	RevokeToken(ctx context.Context, name string) (*provision.Token, error)
	Operation(ctx context.Context, id string) (*provision.Operation, error)
	Operations(ctx context.Context, state provision.State, limit int) ([]provision.Operation, error)
	Approve(ctx context.Context, id string, a provision.Approval) (*provision.Operation, error)
	Reject(ctx context.Context, id string, r provision.Rejection) (*provision.Operation, error)

	Init(ctx context.Context, req provision.InitRequest) (*provision.InitResult, error)
	Poll(ctx context.Context, req provision.PollRequest) (*provision.PollResult, error)
	Register(ctx context.Context, req provision.RegisterRequest) (*provision.Credentials, error)
	Refresh(ctx context.Context, req provision.RefreshRequest) (*provision.Registration, error)
}

// provisioningPrefix is where provisioning lives. Operator routes need an
// access policy with RegistryWrite; the device routes under /device/
// authenticate with the provisioning or registration token in the body.
const provisioningPrefix = "/api/v1/provisioning"

func (h *Handler) routeProvisioning() {
	p := provisioningPrefix
	w := registry.RegistryWrite
	h.route(p+"/tokens", "POST", w, h.provisioned(h.createProvisioningToken))
	h.route(p+"/tokens", "GET", w, h.provisioned(h.listProvisioningTokens))
	h.route(p+"/tokens/{name}", "GET", w, h.provisioned(h.getProvisioningToken))
	h.route(p+"/tokens/{name}/revoke", "POST", w, h.provisioned(h.revokeProvisioningToken))
	h.route(p+"/operations", "GET", w, h.provisioned(h.listProvisioningOperations))
	h.route(p+"/operations/{op}", "GET", w, h.provisioned(h.getProvisioningOperation))
	h.route(p+"/operations/{op}/approve", "POST", w, h.provisioned(h.approveProvisioningOperation))
	h.route(p+"/operations/{op}/reject", "POST", w, h.provisioned(h.rejectProvisioningOperation))

	h.routeEnrollments()

	h.public(p+"/device/init", "POST", h.provisioned(h.initProvisioning))
	h.public(p+"/device/poll", "POST", h.provisioned(h.pollProvisioning))
	h.public(p+"/device/register", "POST", h.provisioned(h.registerProvisioned))
	h.public(p+"/device/refresh", "POST", h.provisioned(h.refreshRegistration))
}

// public registers a handler that authenticates by itself (with secrets in
// the request body) rather than with an access policy.
func (h *Handler) public(path, method string, fn func(http.ResponseWriter, *http.Request) error) {
	h.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// provisioned answers 503 when the hub runs without provisioning.
func (h *Handler) provisioned(fn func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if h.cfg.Provisioning == nil {
			return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "provisioning is not enabled on this hub")
		}
		return fn(w, r)
	}
}

// decodeOptional decodes a JSON body into v, leaving v as it is when the
// body is empty (approve and reject need none).
func decodeOptional(r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return fault.TooLargef("request body exceeds %d bytes", maxBodyBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fault.Invalidf("request body is not valid JSON: %v", err)
	}
	return nil
}

func (h *Handler) createProvisioningToken(w http.ResponseWriter, r *http.Request) error {
	var req provision.CreateTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	t, err := h.cfg.Provisioning.CreateToken(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, t)
}

func (h *Handler) listProvisioningTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := h.cfg.Provisioning.Tokens(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ts)
}

func (h *Handler) getProvisioningToken(w http.ResponseWriter, r *http.Request) error {
	t, err := h.cfg.Provisioning.Token(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (h *Handler) revokeProvisioningToken(w http.ResponseWriter, r *http.Request) error {
	t, err := h.cfg.Provisioning.RevokeToken(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

// listProvisioningOperations answers ?state=pending|approved|rejected|expired|completed&limit=N.
func (h *Handler) listProvisioningOperations(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > provision.MaxListLimit {
			return fault.Invalidf("limit must be a number from 1 to %d", provision.MaxListLimit)
		}
		limit = n
	}
	ops, err := h.cfg.Provisioning.Operations(r.Context(), provision.State(q.Get("state")), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ops)
}

func (h *Handler) getProvisioningOperation(w http.ResponseWriter, r *http.Request) error {
	op, err := h.cfg.Provisioning.Operation(r.Context(), r.PathValue("op"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, op)
}

func (h *Handler) approveProvisioningOperation(w http.ResponseWriter, r *http.Request) error {
	var a provision.Approval
	if err := decodeOptional(r, &a); err != nil {
		return err
	}
	op, err := h.cfg.Provisioning.Approve(r.Context(), r.PathValue("op"), a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, op)
}

func (h *Handler) rejectProvisioningOperation(w http.ResponseWriter, r *http.Request) error {
	var rej provision.Rejection
	if err := decodeOptional(r, &rej); err != nil {
		return err
	}
	op, err := h.cfg.Provisioning.Reject(r.Context(), r.PathValue("op"), rej)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, op)
}

func (h *Handler) initProvisioning(w http.ResponseWriter, r *http.Request) error {
	var req provision.InitRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	res, err := h.cfg.Provisioning.Init(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, res)
}

// pollProvisioning answers 202 while the operation is pending (with a
// Retry-After header) and 200 with the registration token once approved.
func (h *Handler) pollProvisioning(w http.ResponseWriter, r *http.Request) error {
	var req provision.PollRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	res, err := h.cfg.Provisioning.Poll(r.Context(), req)
	if err != nil {
		return err
	}
	if res.State == provision.StatePending {
		w.Header().Set("Retry-After", strconv.Itoa(res.RetryAfterSeconds))
		return writeJSON(w, http.StatusAccepted, res)
	}
	return writeJSON(w, http.StatusOK, res)
}

func (h *Handler) registerProvisioned(w http.ResponseWriter, r *http.Request) error {
	var req provision.RegisterRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	creds, err := h.cfg.Provisioning.Register(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, creds)
}

func (h *Handler) refreshRegistration(w http.ResponseWriter, r *http.Request) error {
	var req provision.RefreshRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	reg, err := h.cfg.Provisioning.Refresh(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reg)
}
