package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

// devicePost is a device's call to the hub's provisioning REST API.
func devicePost(t *testing.T, h *hubtest.Hub, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}}
	resp, err := hc.Post("https://"+h.HTTPAddr().String()+"/api/v1/provisioning/device/"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestE2EProvisionCommands runs the provision verbs against a real hub, with
// a device opening operations over REST.
func TestE2EProvisionCommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)

	r := ferry(t, h, "provision", "token", "create", "--name", "line-3", "--expires", "30d", "--max-uses", "5").expect(t, 0)
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "fpt_") || strings.Contains(secret, "\n") || !strings.Contains(r.stderr, "cannot show it again") {
		t.Fatalf("token create:\n%s", r)
	}
	ferry(t, h, "provision", "token", "create", "--name", "line-3").expect(t, 5)
	r = ferry(t, h, "provision", "token", "create", "--name", "lab", "--expires", "12h", "--json").expect(t, 0)
	if m := jsonObject(t, r.stdout); m["name"] != "lab" || !strings.HasPrefix(m["token"].(string), "fpt_") || m["maxUses"] != 0.0 {
		t.Errorf("token create --json:\n%s", r.stdout)
	}
	r = ferry(t, h, "provision", "token", "list").expect(t, 0)
	if !strings.Contains(r.stdout, "line-3") || !strings.Contains(r.stdout, "0/5") || strings.Contains(r.stdout, secret) {
		t.Errorf("token list:\n%s", r)
	}
	r = ferry(t, h, "provision", "token", "list", "--json").expect(t, 0)
	var toks []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &toks); err != nil || len(toks) != 2 || toks[0]["name"] != "lab" {
		t.Errorf("token list --json: %v\n%s", err, r.stdout)
	}

	// A device opens an operation; the operator sees it pending and approves it.
	code, init := devicePost(t, h, "init", map[string]any{"provisioningToken": secret, "deviceId": "asked", "data": map[string]any{"serial": "SN-9"}})
	if code != http.StatusCreated {
		t.Fatalf("init: %d %v", code, init)
	}
	opID, vcode := init["operationId"].(string), init["verificationCode"].(string)
	r = ferry(t, h, "provision", "list", "--pending").expect(t, 0)
	if !strings.Contains(r.stdout, opID) || !strings.Contains(r.stdout, vcode) || !strings.Contains(r.stdout, "asked") {
		t.Errorf("list --pending:\n%s", r)
	}
	r = ferry(t, h, "provision", "show", opID).expect(t, 0)
	if !strings.Contains(r.stdout, vcode) || !strings.Contains(r.stdout, `{"serial":"SN-9"}`) {
		t.Errorf("show:\n%s", r)
	}
	r = ferry(t, h, "provision", "approve", opID, "--device-id", "pump-7", "--tags", `{"site":"A"}`, "--desired", `{"interval":30}`, "--json").expect(t, 0)
	if m := jsonObject(t, r.stdout); m["deviceId"] != "pump-7" || m["state"] != "approved" {
		t.Errorf("approve --json:\n%s", r.stdout)
	}
	r = ferry(t, h, "provision", "approve", opID).expect(t, 5)
	if !strings.Contains(r.stderr, "not pending") {
		t.Errorf("second approval:\n%s", r)
	}
	r = ferry(t, h, "twin", "show", "pump-7").expect(t, 0)
	if tw := jsonObject(t, r.stdout); path(tw, "tags", "site") != "A" || path(tw, "properties", "desired", "interval") != 30.0 {
		t.Errorf("twin after approval:\n%s", r.stdout)
	}
	if r = ferry(t, h, "provision", "list", "--pending", "--json").expect(t, 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("pending after approval:\n%s", r.stdout)
	}
	code, poll := devicePost(t, h, "poll", map[string]any{"provisioningToken": secret, "operationId": opID})
	if code != http.StatusOK || poll["deviceId"] != "pump-7" || poll["registrationToken"] == "" {
		t.Errorf("poll after approval: %d %v", code, poll)
	}
	r = ferry(t, h, "provision", "list", "--state", "completed", "--json").expect(t, 0)
	if !strings.Contains(r.stdout, opID) {
		t.Errorf("list --state completed:\n%s", r.stdout)
	}

	// Reject; the device hears it.
	_, init = devicePost(t, h, "init", map[string]any{"provisioningToken": secret, "deviceId": "stranger"})
	other := init["operationId"].(string)
	r = ferry(t, h, "provision", "reject", other, "--reason", "unknown serial").expect(t, 0)
	if !strings.Contains(r.stderr, "Rejected operation "+other) {
		t.Errorf("reject:\n%s", r)
	}
	code, poll = devicePost(t, h, "poll", map[string]any{"provisioningToken": secret, "operationId": other})
	if code != http.StatusForbidden || !strings.Contains(poll["Message"].(string), "ProvisioningOperationRejected") {
		t.Errorf("poll after rejection: %d %v", code, poll)
	}

	// Not found, usage errors, revocation.
	ferry(t, h, "provision", "approve", "no-such-operation", "--device-id", "x").expect(t, 3)
	ferry(t, h, "provision", "token", "show", "nope").expect(t, 3)
	for _, args := range [][]string{
		{"provision", "token", "create"},
		{"provision", "token", "create", "--name", "x", "--expires", "soon"},
		{"provision", "token", "create", "--name", "x", "--max-uses", "-1"},
		{"provision", "approve", opID, "--tags", "[1]"},
		{"provision", "approve"},
		{"provision", "list", "--pending", "--state", "approved"},
		{"provision", "list", "--state", "asleep"},
		{"provision", "token", "frobnicate"},
	} {
		if r := ferry(t, h, args...); r.code != 2 {
			t.Errorf("ferry %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r)
		}
	}
	ferry(t, h, "provision", "token", "revoke", "line-3").expect(t, 0)
	r = ferry(t, h, "provision", "token", "show", "line-3", "--json").expect(t, 0)
	if m := jsonObject(t, r.stdout); m["revoked"] != true || m["uses"] != 1.0 {
		t.Errorf("token after revocation:\n%s", r.stdout)
	}
	if code, _ := devicePost(t, h, "init", map[string]any{"provisioningToken": secret}); code != http.StatusUnauthorized {
		t.Errorf("init with a revoked token: %d, want 401", code)
	}
}
