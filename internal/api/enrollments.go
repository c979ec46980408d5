package api

import (
	"context"
	"net/http"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Enrollments is the DPS-compatible side of provisioning.
type Enrollments interface {
	IDScope() string
	PutEnrollmentGroup(ctx context.Context, g provision.EnrollmentGroup, replace bool) (*provision.EnrollmentGroup, error)
	EnrollmentGroup(ctx context.Context, id string) (*provision.EnrollmentGroup, error)
	EnrollmentGroups(ctx context.Context) ([]provision.EnrollmentGroup, error)
	DeleteEnrollmentGroup(ctx context.Context, id string) error
	PutEnrollment(ctx context.Context, e provision.IndividualEnrollment, replace bool) (*provision.IndividualEnrollment, error)
	Enrollment(ctx context.Context, registrationID string) (*provision.IndividualEnrollment, error)
	Enrollments(ctx context.Context) ([]provision.IndividualEnrollment, error)
	DeleteEnrollment(ctx context.Context, registrationID string) error
}

// DPSInfo is the body of GET /api/v1/provisioning/dps: what devices that
// provision through DPS need.
type DPSInfo struct {
	IDScope string `json:"idScope"`
}

func (h *Handler) routeEnrollments() {
	p, w := provisioningPrefix, registry.RegistryWrite
	h.route(p+"/dps", "GET", w, h.enrolled(h.dpsInfo))
	h.route(p+"/enrollmentGroups", "GET", w, h.enrolled(h.listEnrollmentGroups))
	h.route(p+"/enrollmentGroups/{id}", "GET", w, h.enrolled(h.getEnrollmentGroup))
	h.route(p+"/enrollmentGroups/{id}", "PUT", w, h.enrolled(h.putEnrollmentGroup))
	h.route(p+"/enrollmentGroups/{id}", "DELETE", w, h.enrolled(h.deleteEnrollmentGroup))
	h.route(p+"/enrollments", "GET", w, h.enrolled(h.listEnrollments))
	h.route(p+"/enrollments/{id}", "GET", w, h.enrolled(h.getEnrollment))
	h.route(p+"/enrollments/{id}", "PUT", w, h.enrolled(h.putEnrollment))
	h.route(p+"/enrollments/{id}", "DELETE", w, h.enrolled(h.deleteEnrollment))
}

// enrolled answers 503 when the hub runs without enrollments.
func (h *Handler) enrolled(fn func(http.ResponseWriter, *http.Request, Enrollments) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		e, ok := h.cfg.Provisioning.(Enrollments)
		if h.cfg.Provisioning == nil || !ok {
			return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "DPS enrollments are not enabled on this hub")
		}
		return fn(w, r, e)
	}
}

func (h *Handler) dpsInfo(w http.ResponseWriter, _ *http.Request, e Enrollments) error {
	return writeJSON(w, http.StatusOK, DPSInfo{IDScope: e.IDScope()})
}

func (h *Handler) listEnrollmentGroups(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	gs, err := e.EnrollmentGroups(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, gs)
}

func (h *Handler) getEnrollmentGroup(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	g, err := e.EnrollmentGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

// putEnrollmentGroup creates a group (no If-Match) or replaces it (If-Match
// present), as PUT /devices/{id} does.
func (h *Handler) putEnrollmentGroup(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	var g provision.EnrollmentGroup
	if err := decodeBody(r, &g); err != nil {
		return err
	}
	if g.EnrollmentGroupID != "" && g.EnrollmentGroupID != r.PathValue("id") {
		return fault.Invalidf("enrollmentGroupId %q in the body does not match %q in the path", g.EnrollmentGroupID, r.PathValue("id"))
	}
	g.EnrollmentGroupID = r.PathValue("id")
	out, err := e.PutEnrollmentGroup(r.Context(), g, r.Header.Get("If-Match") != "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) deleteEnrollmentGroup(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	if err := e.DeleteEnrollmentGroup(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listEnrollments(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	list, err := e.Enrollments(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (h *Handler) getEnrollment(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	en, err := e.Enrollment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, en)
}

func (h *Handler) putEnrollment(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	var en provision.IndividualEnrollment
	if err := decodeBody(r, &en); err != nil {
		return err
	}
	if en.RegistrationID != "" && en.RegistrationID != r.PathValue("id") {
		return fault.Invalidf("registrationId %q in the body does not match %q in the path", en.RegistrationID, r.PathValue("id"))
	}
	en.RegistrationID = r.PathValue("id")
	out, err := e.PutEnrollment(r.Context(), en, r.Header.Get("If-Match") != "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (h *Handler) deleteEnrollment(w http.ResponseWriter, r *http.Request, e Enrollments) error {
	if err := e.DeleteEnrollment(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
