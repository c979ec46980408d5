package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// TestProvisioningAccess checks who may call the provisioning routes: the
// operator side needs RegistryWrite, the device side no policy at all.
func TestProvisioningAccess(t *testing.T) {
	h := hubtest.Start(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}}
	base := "https://" + h.HTTPAddr().String()
	host := h.ServiceHost()
	reader := protocol.SignSAS(policyKey(t, h, "registryRead"), host, time.Now().Add(time.Hour), "registryRead")
	writer := protocol.SignSAS(policyKey(t, h, "registryReadWrite"), host, time.Now().Add(time.Hour), "registryReadWrite")
	for _, tc := range []struct {
		method, path, auth, body string
		want                     int
	}{
		{"GET", "/api/v1/provisioning/tokens", "", "", 401},
		{"GET", "/api/v1/provisioning/tokens", reader, "", 403},
		{"POST", "/api/v1/provisioning/tokens", reader, `{"name":"x"}`, 403},
		{"GET", "/api/v1/provisioning/operations?state=pending", reader, "", 403},
		{"POST", "/api/v1/provisioning/operations/x/approve", reader, "", 403},
		{"POST", "/api/v1/provisioning/tokens", writer, `{"name":"w"}`, 201},
		{"GET", "/api/v1/provisioning/operations?state=pending", writer, "", 200},
		{"GET", "/api/v1/provisioning/enrollmentGroups", reader, "", 403},
		{"PUT", "/api/v1/provisioning/enrollmentGroups/g1", writer, `{}`, 200},
		{"PUT", "/api/v1/provisioning/enrollmentGroups/g1", writer, `{}`, 409},
		{"PUT", "/api/v1/provisioning/enrollments/r1", writer, `{"registrationId":"other"}`, 400},
		{"GET", "/api/v1/provisioning/dps", writer, "", 200},
		{"GET", "/api/v1/provisioning/operations?state=sleeping", writer, "", 400},
		{"POST", "/api/v1/provisioning/tokens", writer, `{"name":`, 400},
		// The device side ignores access policies: the token in the body decides.
		{"POST", "/api/v1/provisioning/device/init", "", `{"provisioningToken":"fpt_x"}`, 401},
		{"POST", "/api/v1/provisioning/device/init", "", `not json`, 400},
		{"POST", "/api/v1/provisioning/device/register", "", `{"registrationToken":"x"}`, 401},
	} {
		code, b := call(t, hc, tc.method, base+tc.path, tc.auth, tc.body)
		if code != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, b, tc.want)
		}
	}

	// The OpenAPI document describes every provisioning route.
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/tokens", "/tokens/{name}", "/tokens/{name}/revoke", "/operations", "/operations/{op}",
		"/operations/{op}/approve", "/operations/{op}/reject", "/device/init", "/device/poll", "/device/register", "/device/refresh",
		"/dps", "/enrollmentGroups", "/enrollmentGroups/{id}", "/enrollments", "/enrollments/{id}"} {
		if doc.Paths["/api/v1/provisioning"+p] == nil {
			t.Errorf("openapi.json lacks /api/v1/provisioning%s", p)
		}
	}
}

// TestProvisioningSurvivesRestart checks that tokens, operations and the
// registration-token signing key are stored: a registration token issued
// before a restart registers after it.
func TestProvisioningSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := hubtest.StartDir(t, dir)
	tok, err := h.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "line-3"})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}}
	post := func(h *hubtest.Hub, path string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		code, out := call(t, hc, "POST", "https://"+h.HTTPAddr().String()+"/api/v1/provisioning/device/"+path, "", string(b))
		var m map[string]any
		if code >= 300 || json.Unmarshal(out, &m) != nil {
			t.Fatalf("%s: %d %s", path, code, out)
		}
		return m
	}
	op := post(h, "init", map[string]string{"provisioningToken": tok.Secret, "deviceId": "restarted"})["operationId"].(string)
	if _, err := h.Client.ApproveProvisioning(ctx, op, provision.Approval{}); err != nil {
		t.Fatal(err)
	}
	reg := post(h, "poll", map[string]string{"provisioningToken": tok.Secret, "operationId": op})["registrationToken"].(string)
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	h2 := hubtest.StartDir(t, dir)
	creds := post(h2, "register", map[string]string{"registrationToken": reg})
	if creds["deviceId"] != "restarted" || !strings.Contains(creds["connectionString"].(string), "SharedAccessKey=") {
		t.Errorf("register after restart: %v", creds)
	}
	got, err := h2.Client.ProvisioningOperation(ctx, op)
	if err != nil || got.State != provision.StateCompleted {
		t.Errorf("operation after restart: %+v, %v", got, err)
	}
}
