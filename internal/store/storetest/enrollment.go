package storetest

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
)

// RunEnrollments runs the provision.EnrollmentStore conformance tests.
// open must return a new, empty store for each call.
func RunEnrollments(t *testing.T, open func(t *testing.T) provision.EnrollmentStore) {
	t.Run("Groups", func(t *testing.T) { testEnrollmentGroups(t, open(t)) })
	t.Run("Individual", func(t *testing.T) { testIndividualEnrollments(t, open(t)) })
}

func symKey() provision.Attestation {
	return provision.Attestation{Type: provision.AttestationSymmetricKey, SymmetricKey: &registry.SymmetricKey{
		PrimaryKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", SecondaryKey: "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE="}}
}

func testEnrollmentGroups(t *testing.T, st provision.EnrollmentStore) {
	ctx := t.Context()
	g := &provision.EnrollmentGroup{EnrollmentGroupID: "line-3", Attestation: symKey(), ProvisioningStatus: "enabled", CreatedAt: base, UpdatedAt: base}
	must(t, st.PutEnrollmentGroup(ctx, g, false))
	must(t, st.PutEnrollmentGroup(ctx, &provision.EnrollmentGroup{EnrollmentGroupID: "a", Attestation: symKey(), ProvisioningStatus: "disabled"}, false))
	wantKind(t, st.PutEnrollmentGroup(ctx, g, false), fault.Conflict, "EnrollmentAlreadyExists")
	got, err := st.GetEnrollmentGroup(ctx, "line-3")
	must(t, err)
	if d := diffJSON(got, g); d != "" {
		t.Error(d)
	}
	g.ProvisioningStatus = "disabled"
	must(t, st.PutEnrollmentGroup(ctx, g, true))
	if got, _ = st.GetEnrollmentGroup(ctx, "line-3"); got.ProvisioningStatus != "disabled" {
		t.Errorf("replaced group status = %s", got.ProvisioningStatus)
	}
	list, err := st.ListEnrollmentGroups(ctx)
	must(t, err)
	if len(list) != 2 || list[0].EnrollmentGroupID != "a" {
		t.Errorf("groups = %+v, want a, line-3", list)
	}
	must(t, st.DeleteEnrollmentGroup(ctx, "a"))
	wantKind(t, st.DeleteEnrollmentGroup(ctx, "a"), fault.NotFound, "EnrollmentNotFound")
	_, err = st.GetEnrollmentGroup(ctx, "a")
	wantKind(t, err, fault.NotFound, "EnrollmentNotFound")
}

func testIndividualEnrollments(t *testing.T, st provision.EnrollmentStore) {
	ctx := t.Context()
	e := &provision.IndividualEnrollment{RegistrationID: "reg-1", DeviceID: "dev-1", Attestation: symKey(), ProvisioningStatus: "enabled", CreatedAt: base, UpdatedAt: base}
	must(t, st.PutEnrollment(ctx, e, false))
	wantKind(t, st.PutEnrollment(ctx, e, false), fault.Conflict, "EnrollmentAlreadyExists")
	got, err := st.GetEnrollment(ctx, "reg-1")
	must(t, err)
	if d := diffJSON(got, e); d != "" {
		t.Error(d)
	}
	list, err := st.ListEnrollments(ctx)
	must(t, err)
	if len(list) != 1 {
		t.Errorf("enrollments = %+v", list)
	}
	must(t, st.DeleteEnrollment(ctx, "reg-1"))
	_, err = st.GetEnrollment(ctx, "reg-1")
	wantKind(t, err, fault.NotFound, "EnrollmentNotFound")
}
