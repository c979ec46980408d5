package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// TestE2EEnrollmentCommands runs the DPS enrollment verbs against a real hub.
func TestE2EEnrollmentCommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)

	r := ferry(t, h, "provision", "enrollment-group", "create", "line-3", "--tags", `{"line":3}`, "--json").expect(t, 0)
	g := jsonObject(t, r.stdout)
	groupKey, _ := path(g, "attestation", "symmetricKey", "primaryKey").(string)
	if g["enrollmentGroupId"] != "line-3" || g["provisioningStatus"] != "enabled" || groupKey == "" {
		t.Fatalf("enrollment-group create --json:\n%s", r.stdout)
	}
	ferry(t, h, "provision", "enrollment-group", "create", "line-3").expect(t, 5)
	ferry(t, h, "provision", "enrollment-group", "create", "lab", "--status", "disabled").expect(t, 0)
	r = ferry(t, h, "provision", "enrollment-group", "list").expect(t, 0)
	if !strings.Contains(r.stdout, "line-3") || !strings.Contains(r.stdout, "disabled") {
		t.Errorf("enrollment-group list:\n%s", r)
	}
	r = ferry(t, h, "provision", "enrollment-group", "show", "line-3").expect(t, 0)
	if !strings.Contains(r.stdout, groupKey) || !strings.Contains(r.stdout, "ID scope:") {
		t.Errorf("enrollment-group show:\n%s", r)
	}

	key, _ := protocol.DecodeKey(groupKey)
	r = ferry(t, h, "provision", "derive-key", "line-3", "sensor-17").expect(t, 0)
	if got, want := strings.TrimSpace(r.stdout), protocol.DeriveDeviceKey(key, "sensor-17"); got != want {
		t.Errorf("derive-key = %q, want %q", got, want)
	}
	r = ferry(t, h, "provision", "derive-key", "line-3", "sensor-17", "--json").expect(t, 0)
	var dk map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &dk); err != nil || !strings.HasPrefix(dk["idScope"], "0ne") || dk["primaryKey"] == "" {
		t.Errorf("derive-key --json: %v\n%s", err, r.stdout)
	}
	ferry(t, h, "provision", "derive-key", "nope", "sensor-17").expect(t, 3)
	ferry(t, h, "provision", "derive-key", "line-3", "bad id").expect(t, 2)

	r = ferry(t, h, "provision", "enrollment", "create", "reg-9", "--device-id", "boiler-9", "--json").expect(t, 0)
	if e := jsonObject(t, r.stdout); e["registrationId"] != "reg-9" || e["deviceId"] != "boiler-9" {
		t.Errorf("enrollment create --json:\n%s", r.stdout)
	}
	ferry(t, h, "provision", "enrollment", "create", "reg-9").expect(t, 5)
	r = ferry(t, h, "provision", "enrollment", "list").expect(t, 0)
	if !strings.Contains(r.stdout, "boiler-9") {
		t.Errorf("enrollment list:\n%s", r)
	}
	ferry(t, h, "provision", "enrollment", "show", "reg-9").expect(t, 0)
	ferry(t, h, "provision", "enrollment", "delete", "reg-9").expect(t, 0)
	ferry(t, h, "provision", "enrollment", "show", "reg-9").expect(t, 3)
	// X.509 CA groups: the CA must be registered and verified.
	ca := hubtest.NewCA(t, "CLI Fleet Root")
	ferry(t, h, "provision", "enrollment-group", "create", "cams", "--x509-ca", "fleet").expect(t, 1) // not registered
	added, err := h.Client.AddCA(t.Context(), "fleet", ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	ferry(t, h, "provision", "enrollment-group", "create", "cams", "--x509-ca", "fleet").expect(t, 1) // not verified yet
	if _, err := h.Client.VerifyCA(t.Context(), "fleet", ca.Issue(t, added.VerificationCode).PEM); err != nil {
		t.Fatal(err)
	}
	ferry(t, h, "provision", "enrollment-group", "create", "cams", "--x509-ca", "fleet", "--primary-key", groupKey).expect(t, 2)
	r = ferry(t, h, "provision", "enrollment-group", "create", "cams", "--x509-ca", "fleet", "--json").expect(t, 0)
	if cg := jsonObject(t, r.stdout); path(cg, "attestation", "type") != "x509" ||
		path(cg, "attestation", "x509", "caReferences", "primary") != "fleet" || path(cg, "attestation", "symmetricKey") != nil {
		t.Errorf("enrollment-group create --x509-ca --json:\n%s", r.stdout)
	}
	r = ferry(t, h, "provision", "enrollment-group", "list").expect(t, 0)
	if !strings.Contains(r.stdout, "x509 CA fleet") {
		t.Errorf("enrollment-group list with an X.509 group:\n%s", r)
	}
	r = ferry(t, h, "provision", "enrollment-group", "show", "cams").expect(t, 0)
	if !strings.Contains(r.stdout, "X.509, certificates of CA fleet") {
		t.Errorf("enrollment-group show of an X.509 group:\n%s", r)
	}
	ferry(t, h, "provision", "derive-key", "cams", "cam-1").expect(t, 1)
	ferry(t, h, "provision", "enrollment-group", "delete", "lab").expect(t, 0)
	ferry(t, h, "provision", "enrollment-group", "delete", "lab").expect(t, 3)
	for _, args := range [][]string{
		{"provision", "enrollment-group", "create", "x", "--status", "maybe"},
		{"provision", "enrollment-group", "create", "x", "--primary-key", "not base64!"},
		{"provision", "enrollment", "create", "x", "--desired", "[]"},
		{"provision", "derive-key", "line-3"},
	} {
		if r := ferry(t, h, args...); r.code != 2 {
			t.Errorf("ferry %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r)
		}
	}
}
