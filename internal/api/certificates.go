package api

import (
	"context"
	"net/http"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// CertificateAuthorities is the registry's CA list for X.509 devices.
// registry.Service satisfies it; the API uses it when Config.Registry does.
type CertificateAuthorities interface {
	AddCA(ctx context.Context, name, certPEM string) (*registry.CA, error)
	VerifyCA(ctx context.Context, name, proofPEM string) (*registry.CA, error)
	GetCA(ctx context.Context, name string) (*registry.CA, error)
	ListCAs(ctx context.Context) ([]registry.CA, error)
	DeleteCA(ctx context.Context, name string) error
}

// certificatesPrefix is where the CAs live. Azure's hub has a similar
// certificates resource; Ferry's shape is its own (registry.CA).
const certificatesPrefix = "/api/v1/certificates"

// AddCARequest is the body of POST /api/v1/certificates.
type AddCARequest struct {
	Name        string `json:"name"`
	Certificate string `json:"certificate"` // PEM
}

// VerifyCARequest is the body of POST /api/v1/certificates/{name}/verify:
// a certificate whose subject CN is the CA's verification code, signed by
// the CA's key.
type VerifyCARequest struct {
	Certificate string `json:"certificate"` // PEM
}

func (h *Handler) routeCertificates() {
	p := certificatesPrefix
	h.route(p, "GET", registry.RegistryRead, h.withCAs(h.listCAs))
	h.route(p, "POST", registry.RegistryWrite, h.withCAs(h.addCA))
	h.route(p+"/{name}", "GET", registry.RegistryRead, h.withCAs(h.getCA))
	h.route(p+"/{name}", "DELETE", registry.RegistryWrite, h.withCAs(h.deleteCA))
	h.route(p+"/{name}/verify", "POST", registry.RegistryWrite, h.withCAs(h.verifyCA))
}

// withCAs passes the registry's CA operations to fn, or answers 503 when
// the registry has none.
func (h *Handler) withCAs(fn func(CertificateAuthorities, http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		cas, ok := h.cfg.Registry.(CertificateAuthorities)
		if !ok {
			return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "this hub does not keep certificate authorities")
		}
		return fn(cas, w, r)
	}
}

func (h *Handler) listCAs(cas CertificateAuthorities, w http.ResponseWriter, r *http.Request) error {
	list, err := cas.ListCAs(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (h *Handler) addCA(cas CertificateAuthorities, w http.ResponseWriter, r *http.Request) error {
	var req AddCARequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Certificate == "" {
		return fault.Invalidf("certificate (PEM) is required")
	}
	ca, err := cas.AddCA(r.Context(), req.Name, req.Certificate)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ca)
}

func (h *Handler) getCA(cas CertificateAuthorities, w http.ResponseWriter, r *http.Request) error {
	ca, err := cas.GetCA(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ca)
}

func (h *Handler) deleteCA(cas CertificateAuthorities, w http.ResponseWriter, r *http.Request) error {
	if err := cas.DeleteCA(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) verifyCA(cas CertificateAuthorities, w http.ResponseWriter, r *http.Request) error {
	var req VerifyCARequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Certificate == "" {
		return fault.Invalidf("certificate (PEM) is required")
	}
	ca, err := cas.VerifyCA(r.Context(), r.PathValue("name"), req.Certificate)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ca)
}
