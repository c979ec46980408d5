package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ferry-iot/ferry/internal/provision"
)

// DPSInfo returns the hub's DPS facts (its ID scope).
func (c *Client) DPSInfo(ctx context.Context) (*DPSInfo, error) {
	var out DPSInfo
	if err := c.do(ctx, request{method: http.MethodGet, path: provisioningPrefix + "/dps", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

func enrollmentGroupPath(id string) string {
	return provisioningPrefix + "/enrollmentGroups/" + url.PathEscape(id)
}

func enrollmentPath(id string) string {
	return provisioningPrefix + "/enrollments/" + url.PathEscape(id)
}

// replaceHeader asks for a replace rather than a create.
func replaceHeader(replace bool) http.Header {
	if replace {
		return ifMatchHeader("*")
	}
	return nil
}

// PutEnrollmentGroup creates an enrollment group (an existing id is
// fault.Conflict) or, with replace, replaces it. Empty keys are generated.
func (c *Client) PutEnrollmentGroup(ctx context.Context, g provision.EnrollmentGroup, replace bool) (*provision.EnrollmentGroup, error) {
	var out provision.EnrollmentGroup
	err := c.do(ctx, request{method: http.MethodPut, path: enrollmentGroupPath(g.EnrollmentGroupID), header: replaceHeader(replace), body: g, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// EnrollmentGroup returns one enrollment group, with its keys.
func (c *Client) EnrollmentGroup(ctx context.Context, id string) (*provision.EnrollmentGroup, error) {
	var out provision.EnrollmentGroup
	if err := c.do(ctx, request{method: http.MethodGet, path: enrollmentGroupPath(id), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnrollmentGroups lists the enrollment groups.
func (c *Client) EnrollmentGroups(ctx context.Context) ([]provision.EnrollmentGroup, error) {
	var out []provision.EnrollmentGroup
	err := c.do(ctx, request{method: http.MethodGet, path: provisioningPrefix + "/enrollmentGroups", out: &out})
	return out, err
}

// DeleteEnrollmentGroup removes an enrollment group; its devices stay.
func (c *Client) DeleteEnrollmentGroup(ctx context.Context, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: enrollmentGroupPath(id)})
}

// PutEnrollment creates an individual enrollment (an existing registration
// id is fault.Conflict) or, with replace, replaces it.
func (c *Client) PutEnrollment(ctx context.Context, e provision.IndividualEnrollment, replace bool) (*provision.IndividualEnrollment, error) {
	var out provision.IndividualEnrollment
	err := c.do(ctx, request{method: http.MethodPut, path: enrollmentPath(e.RegistrationID), header: replaceHeader(replace), body: e, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Enrollment returns one individual enrollment, with its keys.
func (c *Client) Enrollment(ctx context.Context, registrationID string) (*provision.IndividualEnrollment, error) {
	var out provision.IndividualEnrollment
	if err := c.do(ctx, request{method: http.MethodGet, path: enrollmentPath(registrationID), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Enrollments lists the individual enrollments.
func (c *Client) Enrollments(ctx context.Context) ([]provision.IndividualEnrollment, error) {
	var out []provision.IndividualEnrollment
	err := c.do(ctx, request{method: http.MethodGet, path: provisioningPrefix + "/enrollments", out: &out})
	return out, err
}

// DeleteEnrollment removes an individual enrollment; its device stays.
func (c *Client) DeleteEnrollment(ctx context.Context, registrationID string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: enrollmentPath(registrationID)})
}
