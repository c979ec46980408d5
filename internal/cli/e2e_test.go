package cli_test

// The ferry command against a real hub (internal/hubtest), run in-process
// through cli.Main, and mosquitto_pub connecting with the credentials the
// command prints.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// e2eTimeout bounds every command and external process of these tests.
const e2eTimeout = 30 * time.Second

// e2eResult is what one run of the ferry command or an external client produced.
type e2eResult struct {
	code           int
	stdout, stderr string
}

func (r e2eResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// ferry runs the ferry command in-process against h.
func ferry(t *testing.T, h *hubtest.Hub, args ...string) e2eResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append(args, "--hub", h.OwnerConnectionString(), "--ca", h.CAFile())
	code := cli.Main(ctx, args, &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("ferry %s did not finish within %s", strings.Join(args[:len(args)-4], " "), e2eTimeout)
	}
	return e2eResult{code, stdout.String(), stderr.String()}
}

// expect fails the test unless the run ended with code.
func (r e2eResult) expect(t *testing.T, code int) e2eResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\n%s", r.code, code, r)
	}
	return r
}

// jsonObject decodes one JSON object.
func jsonObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	return m
}

// path walks nested JSON objects.
func path(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

// TestE2EDeviceCommands runs every device verb against a real hub, with and
// without --json, and checks the exit codes scripts rely on.
func TestE2EDeviceCommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)

	// create
	r := ferry(t, h, "device", "create", "e2e-a").expect(t, 0)
	if !strings.Contains(r.stdout, "Device ID:") || !strings.Contains(r.stdout, "e2e-a") ||
		!strings.Contains(r.stdout, "enabled") || !strings.Contains(r.stderr, "Created device e2e-a") {
		t.Errorf("create:\n%s", r)
	}
	r = ferry(t, h, "device", "create", "e2e-b", "--json").expect(t, 0)
	created := jsonObject(t, r.stdout)
	primary, _ := path(created, "authentication", "symmetricKey", "primaryKey").(string)
	secondary, _ := path(created, "authentication", "symmetricKey", "secondaryKey").(string)
	if created["deviceId"] != "e2e-b" || created["status"] != "enabled" || created["etag"] == "" ||
		path(created, "authentication", "type") != "sas" || primary == "" || secondary == "" || primary == secondary ||
		created["connectionState"] != "Disconnected" {
		t.Errorf("create --json:\n%s", r.stdout)
	}
	if _, ok := created["parentScopes"].([]any); !ok {
		t.Errorf("create --json: parentScopes is %v, want an array", created["parentScopes"])
	}
	if _, err := protocol.DecodeKey(primary); err != nil {
		t.Errorf("primary key %q: %v", primary, err)
	}
	r = ferry(t, h, "device", "create", "e2e-a").expect(t, 5)
	if !strings.Contains(r.stderr, "already exists") || r.stdout != "" {
		t.Errorf("create twice:\n%s", r)
	}
	ferry(t, h, "device", "create", "e2e-a", "--json").expect(t, 5)

	// usage errors: exit 2, nothing sent
	for _, args := range [][]string{
		{"device", "create"},
		{"device", "create", "x", "y"},
		{"device", "create", "x", "--status", "sleeping"},
		{"device", "create", "x", "--no-such-flag"},
		{"device", "update", "e2e-a"},
		{"device", "sas-token", "e2e-a", "--ttl", "0s"},
		{"device", "connection-string", "e2e-a", "--key", "tertiary"},
		{"device", "list", "--top", "0"},
		{"device", "frobnicate"},
	} {
		if r := ferry(t, h, args...); r.code != 2 {
			t.Errorf("ferry %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r)
		}
	}
	ferry(t, h, "device", "show", "x").expect(t, 3) // the usage errors created nothing

	// list
	r = ferry(t, h, "device", "list").expect(t, 0)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DEVICE ID") ||
		!strings.HasPrefix(lines[1], "e2e-a ") || !strings.HasPrefix(lines[2], "e2e-b ") {
		t.Errorf("list:\n%s", r)
	}
	r = ferry(t, h, "device", "list", "--json").expect(t, 0)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 ||
		list[0]["deviceId"] != "e2e-a" || list[1]["deviceId"] != "e2e-b" {
		t.Errorf("list --json (%v):\n%s", err, r.stdout)
	}
	r = ferry(t, h, "device", "list", "--top", "1").expect(t, 0)
	if strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stderr, "--all") {
		t.Errorf("list --top 1:\n%s", r)
	}

	// show
	r = ferry(t, h, "device", "show", "e2e-b").expect(t, 0)
	if !strings.Contains(r.stdout, "Primary key:") || !strings.Contains(r.stdout, primary) {
		t.Errorf("show:\n%s", r)
	}
	r = ferry(t, h, "device", "show", "e2e-b", "--json").expect(t, 0)
	shown := jsonObject(t, r.stdout)
	if shown["deviceId"] != "e2e-b" || shown["etag"] != created["etag"] ||
		path(shown, "authentication", "symmetricKey", "primaryKey") != primary {
		t.Errorf("show --json:\n%s", r.stdout)
	}
	r = ferry(t, h, "device", "show", "nope").expect(t, 3)
	if r.stdout != "" || !strings.Contains(r.stderr, "nope") {
		t.Errorf("show unknown:\n%s", r)
	}
	ferry(t, h, "device", "show", "nope", "--json").expect(t, 3)

	// update
	r = ferry(t, h, "device", "update", "e2e-a", "--status", "disabled", "--status-reason", "maintenance", "--json").expect(t, 0)
	updated := jsonObject(t, r.stdout)
	if updated["status"] != "disabled" || updated["statusReason"] != "maintenance" {
		t.Errorf("update --json:\n%s", r.stdout)
	}
	if d, err := h.Client.GetDevice(context.Background(), "e2e-a"); err != nil || d.Status != "disabled" {
		t.Errorf("after update the hub has %+v, %v", d, err)
	}
	ferry(t, h, "device", "update", "e2e-a", "--status", "enabled", "--etag", `"stale"`).expect(t, 5)
	ferry(t, h, "device", "update", "nope", "--status", "disabled").expect(t, 3)
	r = ferry(t, h, "device", "update", "e2e-a", "--status", "enabled", "--etag", updated["etag"].(string)).expect(t, 0)
	if !strings.Contains(r.stdout, "enabled") || !strings.Contains(r.stderr, "Updated device e2e-a") {
		t.Errorf("update:\n%s", r)
	}

	// connection-string and sas-token
	r = ferry(t, h, "device", "connection-string", "e2e-b").expect(t, 0)
	wantCS := "HostName=" + h.DeviceHost() + ";DeviceId=e2e-b;SharedAccessKey=" + primary
	if strings.TrimSpace(r.stdout) != wantCS {
		t.Errorf("connection-string = %q, want %q", r.stdout, wantCS)
	}
	r = ferry(t, h, "device", "connection-string", "e2e-b", "--key", "secondary", "--json").expect(t, 0)
	if cs := jsonObject(t, r.stdout); cs["connectionString"] != "HostName="+h.DeviceHost()+";DeviceId=e2e-b;SharedAccessKey="+secondary {
		t.Errorf("connection-string --key secondary --json:\n%s", r.stdout)
	}
	ferry(t, h, "device", "connection-string", "nope").expect(t, 3)

	r = ferry(t, h, "device", "sas-token", "e2e-b", "--ttl", "1h").expect(t, 0)
	tok, err := protocol.ParseSAS(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("sas-token %q: %v", r.stdout, err)
	}
	key, _ := protocol.DecodeKey(primary)
	if err := tok.Verify(key, time.Now()); err != nil {
		t.Errorf("sas-token does not verify with the primary key: %v", err)
	}
	if err := tok.Verify(key, time.Now().Add(61*time.Minute)); err == nil {
		t.Errorf("sas-token --ttl 1h is still valid after 61 minutes")
	}
	if res, _ := tok.ResourceURI(); res != h.DeviceHost()+"/devices/e2e-b" || tok.KeyName != "" {
		t.Errorf("sas-token resource %q, skn %q", res, tok.KeyName)
	}
	r = ferry(t, h, "device", "sas-token", "e2e-b", "--ttl", "1h", "--json").expect(t, 0)
	var st struct {
		SAS    string    `json:"sas"`
		Expiry time.Time `json:"expiry"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || !strings.HasPrefix(st.SAS, "SharedAccessSignature sr=") ||
		time.Until(st.Expiry) < 58*time.Minute || time.Until(st.Expiry) > 61*time.Minute {
		t.Errorf("sas-token --json (%v):\n%s", err, r.stdout)
	}
	ferry(t, h, "device", "sas-token", "nope").expect(t, 3)

	// delete
	ferry(t, h, "device", "delete", "e2e-a", "--etag", `"stale"`).expect(t, 5)
	r = ferry(t, h, "device", "delete", "e2e-a").expect(t, 0)
	if r.stdout != "" || !strings.Contains(r.stderr, "Deleted device e2e-a") {
		t.Errorf("delete:\n%s", r)
	}
	ferry(t, h, "device", "delete", "e2e-a").expect(t, 3)
	ferry(t, h, "device", "show", "e2e-a").expect(t, 3)
	r = ferry(t, h, "device", "list", "--json").expect(t, 0)
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["deviceId"] != "e2e-b" {
		t.Errorf("list after delete:\n%s", r.stdout)
	}

	// Wrong credentials: exit 4.
	cs, _ := protocol.ParseConnectionString(h.OwnerConnectionString())
	cs.SharedAccessKey = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgISE="
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if code := cli.Main(ctx, []string{"device", "list", "--hub", cs.String(), "--ca", h.CAFile()}, &stdout, &stderr); code != 4 {
		t.Errorf("wrong owner key: exit %d, want 4\n%s", code, stderr.String())
	}
}

// mosquittoPub runs mosquitto_pub with a deadline.
func mosquittoPub(t *testing.T, args ...string) e2eResult {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatalf("mosquitto_pub is not installed (./scripts/test installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := e2eResult{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("mosquitto_pub did not finish within %s\n%s", e2eTimeout, r)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// TestE2ECredentialsConnect connects mosquitto_pub with what `ferry device
// connection-string` and `ferry device sas-token` print: the host and port
// from the connection string's HostName, the user name built from it, the
// token as password. Disabling the device with `ferry device update` locks
// it out.
func TestE2ECredentialsConnect(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ferry(t, h, "device", "create", "e2e-mosq").expect(t, 0)
	r := ferry(t, h, "device", "connection-string", "e2e-mosq").expect(t, 0)
	cs, err := protocol.ParseConnectionString(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cs.HostName)
	if err != nil {
		t.Fatalf("HostName %q carries no port: %v", cs.HostName, err)
	}
	token := strings.TrimSpace(ferry(t, h, "device", "sas-token", "e2e-mosq", "--ttl", "1h").expect(t, 0).stdout)
	// The token is the one the connection string's key signs.
	key, err := protocol.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := protocol.ParseSAS(token)
	if err != nil || tok.Verify(key, time.Now()) != nil {
		t.Fatalf("the sas-token %q is not signed with the connection string's key (%v)", token, err)
	}
	pub := func(body string) e2eResult {
		return mosquittoPub(t, "--cafile", h.CAFile(), "-h", host, "-p", port, "-V", "mqttv311", "-q", "1",
			"-i", cs.DeviceID, "-u", cs.HostName+"/"+cs.DeviceID+"/?api-version=2021-04-12", "-P", token,
			"-t", "devices/"+cs.DeviceID+"/messages/events/%24.mid=cs-1", "-m", body)
	}
	if r := pub("from the connection string"); r.code != 0 {
		t.Fatalf("mosquitto_pub with the printed credentials:\n%s", r)
	}
	page, err := h.Client.ReadStream(context.Background(), "*", api.ReadQuery{From: "beginning", Device: "e2e-mosq"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || string(page.Messages[0].Body) != "from the connection string" ||
		page.Messages[0].SystemProperties.MessageID != "cs-1" {
		t.Fatalf("stored %+v", page.Messages)
	}

	ferry(t, h, "device", "update", "e2e-mosq", "--status", "disabled").expect(t, 0)
	if r := pub("while disabled"); r.code == 0 {
		t.Errorf("a disabled device connected and published:\n%s", r)
	}
}

// TestE2EMonitorConsumerGroup reads five messages with `ferry monitor
// --consumer-group`: two in a first run, the other three in a second run,
// none in a third; another consumer group reads all five on its own.
func TestE2EMonitorConsumerGroup(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "e2e-mon")
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatalf("connect: 0x%02x %v", code, err)
	}
	defer c.Disconnect()
	for i := range 5 {
		topic := fmt.Sprintf("devices/e2e-mon/messages/events/%%24.mid=c-%d&n=%d", i, i)
		if code, err := c.Publish(topic, []byte(fmt.Sprintf(`{"n":%d}`, i)), 1, false); err != nil || code != 0 {
			t.Fatalf("publish %d: 0x%02x %v", i, code, err)
		}
	}

	monitor := func(group string, args ...string) []string {
		t.Helper()
		args = append([]string{"monitor", "--consumer-group", group, "--json"}, args...)
		r := ferry(t, h, args...).expect(t, 0)
		var ids []string
		for line := range strings.Lines(r.stdout) {
			var ev struct {
				Event struct {
					Origin     string `json:"origin"`
					Properties struct {
						System      map[string]string `json:"system"`
						Application map[string]string `json:"application"`
					} `json:"properties"`
					Payload json.RawMessage `json:"payload"`
				} `json:"event"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("monitor line %q: %v", line, err)
			}
			id := ev.Event.Properties.System["messageId"]
			n := strings.TrimPrefix(id, "c-")
			if ev.Event.Origin != "e2e-mon" || ev.Event.Properties.Application["n"] != n || string(ev.Event.Payload) != `{"n":`+n+`}` {
				t.Errorf("event %s", line)
			}
			ids = append(ids, id)
		}
		if r.stderr != "" {
			t.Errorf("monitor --json wrote to stderr: %q", r.stderr)
		}
		return ids
	}
	// --timeout bounds each run: a monitor that reads too little ends
	// rather than hanging, and the comparison below fails.
	if got := strings.Join(monitor("g1", "--max", "2", "--timeout", "20s"), ","); got != "c-0,c-1" {
		t.Fatalf("first run of g1 read %q, want c-0,c-1", got)
	}
	if got := strings.Join(monitor("g1", "--max", "3", "--timeout", "20s"), ","); got != "c-2,c-3,c-4" {
		t.Fatalf("second run of g1 read %q, want c-2,c-3,c-4", got)
	}
	start := time.Now()
	if got := monitor("g1", "--timeout", "1s"); len(got) != 0 {
		t.Fatalf("third run of g1 read %q, want nothing", got)
	}
	if d := time.Since(start); d > 20*time.Second { // under e2eTimeout, with room for a loaded machine
		t.Errorf("monitor --timeout 1s took %v", d)
	}
	// Another group has its own position.
	if got := strings.Join(monitor("g2", "--max", "5", "--timeout", "20s"), ","); got != "c-0,c-1,c-2,c-3,c-4" {
		t.Fatalf("g2 read %q, want all five", got)
	}
	// And g1 still has nothing new; a new message reaches it exactly once.
	if code, err := c.Publish("devices/e2e-mon/messages/events/%24.mid=c-5&n=5", []byte(`{"n":5}`), 1, false); err != nil || code != 0 {
		t.Fatalf("publish 5: 0x%02x %v", code, err)
	}
	if got := strings.Join(monitor("g1", "--timeout", "2s"), ","); got != "c-5" {
		t.Fatalf("g1 after a new message read %q, want c-5", got)
	}
}
