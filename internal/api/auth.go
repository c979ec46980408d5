package api

import (
	"net/http"
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// authorize checks the request's service SAS token: signed with the key of the
// access policy named by skn, not expired, and that policy has the right.
func (h *Handler) authorize(r *http.Request, right registry.Right) error {
	hdr := r.Header.Get("Authorization")
	hdr = strings.TrimSpace(strings.TrimPrefix(hdr, "Bearer "))
	if hdr == "" {
		return fault.New(fault.Unauthorized, "IotHubUnauthorizedAccess", 401002,
			"missing Authorization header: send a SharedAccessSignature signed with an access policy key")
	}
	tok, err := protocol.ParseSAS(hdr)
	if err != nil {
		return fault.New(fault.Unauthorized, "IotHubUnauthorizedAccess", 401002, "malformed SharedAccessSignature: %v", err)
	}
	if tok.KeyName == "" {
		return fault.New(fault.Unauthorized, "IotHubUnauthorizedAccess", 401002, "the token names no access policy (skn)")
	}
	pol, err := h.cfg.Registry.Policy(r.Context(), tok.KeyName)
	if err != nil {
		return fault.New(fault.Unauthorized, "IotHubUnauthorizedAccess", 401002, "unknown access policy %q", tok.KeyName)
	}
	now := h.cfg.Now()
	var verr error
	for _, k := range []string{pol.PrimaryKey, pol.SecondaryKey} {
		key, err := protocol.DecodeKey(k)
		if err != nil {
			continue
		}
		if verr = tok.Verify(key, now); verr == nil {
			break
		}
	}
	if verr != nil {
		return fault.New(fault.Unauthorized, "IotHubUnauthorizedAccess", 401002, "token rejected: %v", verr)
	}
	if right != "" && !pol.Has(right) {
		return fault.New(fault.Forbidden, "IotHubUnauthorizedAccess", 403000,
			"access policy %q lacks the %s permission", pol.KeyName, right)
	}
	return nil
}
