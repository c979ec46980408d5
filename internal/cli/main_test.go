package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// result is what one run of the ferry command produced.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the ferry command in-process.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runCtx(t, context.Background(), args...)
}

func runCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// hubRun runs a verb against h, adding the hub flags.
func (h *fakeHub) run(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, append(args, h.flags()...)...)
}

func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string // a substring of stdout ("" = stdout must be empty)
		stderr string // a substring of stderr
	}{
		{nil, 2, "", "Usage: ferry <command>"},
		{[]string{"--help"}, 0, "Exit codes:", ""},
		{[]string{"help", "device"}, 0, "connection-string", ""},
		{[]string{"help", "device", "create"}, 0, "--primary-key KEY", ""},
		{[]string{"device", "create", "--help"}, 0, "Usage: ferry device create ID [flags]", ""},
		{[]string{"device", "--help"}, 0, "sas-token", ""},
		{[]string{"help", "monitor"}, 0, "--consumer-group NAME", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"device", "frobnicate"}, 2, "", `unknown command "device frobnicate"`},
		{[]string{"device"}, 2, "", "Usage: ferry device"},
		{[]string{"device", "create"}, 2, "", "missing ID"},
		{[]string{"device", "show", "a", "b"}, 2, "", `unexpected argument "b"`},
		{[]string{"device", "list", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"device", "list", "--top", "0"}, 2, "", "--top must be from 1 to 1000"},
		{[]string{"device", "create", "d1", "--status", "sleeping"}, 2, "", "--status must be enabled or disabled"},
		{[]string{"device", "create", "d1", "--primary-key", "not base64!"}, 2, "", "--primary-key is not a base64 key"},
		{[]string{"device", "update", "d1", "--hub", "x"}, 2, "", "nothing to update"},
		{[]string{"device", "sas-token", "d1", "--key", "tertiary"}, 2, "", "--key must be primary or secondary"},
		{[]string{"monitor", "--from", "yesterday"}, 2, "", "--from must be"},
		{[]string{"version"}, 0, "ferry ", ""},
		{[]string{"version", "--json"}, 0, `"version":`, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := run(t, tt.args...).want(t, tt.code)
			if tt.stdout == "" && r.stdout != "" || !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout %q, want it to contain %q", r.stdout, tt.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tt.stderr)
			}
			if tt.code == 2 && len(tt.args) > 1 && !strings.Contains(r.stderr, "ferry") {
				t.Errorf("usage error without a hint: %q", r.stderr)
			}
		})
	}
}

func TestNoHubConnection(t *testing.T) {
	t.Setenv("FERRY_HUB", "")
	t.Setenv("FERRY_DATA", "")
	t.Chdir(t.TempDir())
	r := run(t, "device", "list").want(t, 1)
	if !strings.Contains(r.stderr, "ferry: no hub connection: pass --hub, set FERRY_HUB") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestDeviceLifecycle(t *testing.T) {
	h := newFakeHub(t)

	r := h.run(t, "device", "create", "d1", "--json").want(t, 0)
	var d registry.Device
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.DeviceID != "d1" || d.Status != registry.StatusEnabled {
		t.Fatalf("create --json: %v, %s", err, r.stdout)
	}
	r = h.run(t, "device", "create", "d2", "--status", "disabled").want(t, 0)
	if !strings.Contains(r.stdout, "Device ID:") || !strings.Contains(r.stdout, "disabled") || !strings.Contains(r.stderr, "Created device d2") {
		t.Errorf("create: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = h.run(t, "device", "create", "d1").want(t, 5)
	if !strings.Contains(r.stderr, `ferry: device "d1" already exists`) {
		t.Errorf("create twice: %q", r.stderr)
	}

	r = h.run(t, "device", "show", "d1", "--json").want(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("show --json: %v, %s", err, r.stdout)
	}
	h.run(t, "device", "show", "nope").want(t, 3)

	// Flags may follow or precede the id.
	r = h.run(t, "device", "update", "--status", "disabled", "d1", "--status-reason", "maintenance", "--json").want(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.Status != registry.StatusDisabled ||
		d.StatusReason == nil || *d.StatusReason != "maintenance" {
		t.Fatalf("update: %v, %s", err, r.stdout)
	}
	h.run(t, "device", "update", "d1", "--status", "enabled", "--etag", "stale").want(t, 5)
	h.run(t, "device", "update", "d1", "--status", "enabled", "--etag", d.ETag).want(t, 0)
	h.run(t, "device", "update", "nope", "--status", "enabled").want(t, 3)

	h.run(t, "device", "delete", "d2", "--etag", "stale").want(t, 5)
	r = h.run(t, "device", "delete", "d2").want(t, 0)
	if r.stdout != "" || !strings.Contains(r.stderr, "Deleted device d2") {
		t.Errorf("delete: stdout %q stderr %q", r.stdout, r.stderr)
	}
	h.run(t, "device", "show", "d2").want(t, 3)
}

func TestDeviceList(t *testing.T) {
	h := newFakeHub(t)
	for _, id := range []string{"c", "a", "e", "b", "d"} {
		h.run(t, "device", "create", id).want(t, 0)
	}
	r := h.run(t, "device", "list", "--top", "2").want(t, 0)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "DEVICE ID") || !strings.HasPrefix(lines[1], "a ") || !strings.HasPrefix(lines[2], "b ") {
		t.Errorf("list --top 2:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "--all") {
		t.Errorf("list --top 2 does not say more exist: %q", r.stderr)
	}
	r = h.run(t, "device", "list", "--top", "2", "--all", "--json").want(t, 0)
	var list []registry.Device
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range list {
		ids = append(ids, d.DeviceID)
	}
	if strings.Join(ids, ",") != "a,b,c,d,e" || r.stderr != "" {
		t.Errorf("list --all --json = %v, stderr %q", ids, r.stderr)
	}
}

func TestDeviceCredentials(t *testing.T) {
	h := newFakeHub(t)
	h.run(t, "device", "create", "d1").want(t, 0)

	r := h.run(t, "device", "connection-string", "d1").want(t, 0)
	want := "HostName=hub.test:8884;DeviceId=d1;SharedAccessKey=" + ownerKey + "\n"
	if r.stdout != want {
		t.Errorf("connection-string = %q, want %q", r.stdout, want)
	}
	r = h.run(t, "device", "connection-string", "d1", "--key", "secondary", "--json").want(t, 0)
	var cs struct{ ConnectionString string }
	if err := json.Unmarshal([]byte(r.stdout), &cs); err != nil || strings.Contains(cs.ConnectionString, ownerKey) {
		t.Errorf("connection-string --key secondary --json = %s (%v)", r.stdout, err)
	}

	r = h.run(t, "device", "sas-token", "d1", "--ttl", "2h").want(t, 0)
	tok, err := protocol.ParseSAS(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := protocol.DecodeKey(ownerKey) // the fake hub gives devices this primary key
	if err := tok.Verify(key, time.Now().Add(119*time.Minute)); err != nil {
		t.Errorf("token %s: %v", r.stdout, err)
	}
	if res, _ := tok.ResourceURI(); res != "hub.test:8884/devices/d1" || tok.KeyName != "" {
		t.Errorf("token resource %q, skn %q", res, tok.KeyName)
	}
	r = h.run(t, "device", "sas-token", "d1", "--json").want(t, 0)
	var out struct {
		SAS    string
		Expiry time.Time
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !strings.HasPrefix(out.SAS, "SharedAccessSignature sr=") ||
		time.Until(out.Expiry) < 59*time.Minute {
		t.Errorf("sas-token --json = %s (%v)", r.stdout, err)
	}
	h.run(t, "device", "sas-token", "nope").want(t, 3)
}

func TestWrongKeyIsUnauthorized(t *testing.T) {
	h := newFakeHub(t)
	wrong := strings.Replace(h.connString(), ownerKey, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgISE=", 1)
	r := run(t, "device", "list", "--hub", wrong, "--ca", h.caFile).want(t, 4)
	if !strings.Contains(r.stderr, "ferry: token rejected") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestUntrustedHub(t *testing.T) {
	h := newFakeHub(t)
	t.Setenv("FERRY_CA", "")
	r := run(t, "device", "list", "--hub", h.connString(), "--data", t.TempDir()).want(t, 1)
	if !strings.Contains(r.stderr, "not trusted") {
		t.Errorf("stderr = %q", r.stderr)
	}
}
