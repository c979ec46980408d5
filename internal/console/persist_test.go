package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// offsetClock is the hub's clock, moved forward by the test.
type offsetClock struct{ d atomic.Int64 }

func (c *offsetClock) Now() time.Time         { return time.Now().Add(time.Duration(c.d.Load())) }
func (c *offsetClock) Add(d time.Duration)    { c.d.Add(int64(d)) }
func (c *offsetClock) option() hubtest.Option { return func(cfg *hub.Config) { cfg.Now = c.Now } }
func hubBase(h *hubtest.Hub) string           { return "https://" + h.HTTPAddr().String() }
func (b *browser) status(path string) int     { r, _ := b.do("GET", path, "", nil); return r.StatusCode }
func hubBrowser(t *testing.T, h *hubtest.Hub) *browser {
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: h.TLSConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(cl.CloseIdleConnections)
	return &browser{t: t, base: hubBase(h), c: cl}
}

// policyKeys reads the access policies' primary keys from the hub's
// database.
func policyKeys(t *testing.T, dir string) map[string]string {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := db.ListPolicies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, p := range ps {
		keys[p.KeyName] = p.PrimaryKey
	}
	return keys
}

// Console sessions live in the hub's database: a restart signs nobody
// out, while sign-out, a deleted policy, a regenerated key and expiry still
// end them.
func TestSessionSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub")
	}
	dir := t.TempDir()
	clk := &offsetClock{}
	h, stop, err := hubtest.Launch(dir, clk.option())
	if err != nil {
		t.Fatal(err)
	}
	keys := policyKeys(t, dir)
	owner, reader, service, leaving := hubBrowser(t, h), hubBrowser(t, h), hubBrowser(t, h), hubBrowser(t, h)
	owner.signInKey("iothubowner", keys["iothubowner"])
	reader.signInKey("registryRead", keys["registryRead"])
	service.signInKey("service", keys["service"])
	leaving.signInKey("iothubowner", keys["iothubowner"])
	for _, b := range []*browser{owner, reader, service, leaving} {
		if s := b.status("/console/data/presence"); s != http.StatusOK {
			t.Fatalf("before the restart: %d", s)
		}
	}
	cookie := sessionID(t, owner)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The database holds hashes only.
	raw, err := sql.Open("sqlite", filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sum := sha256.Sum256([]byte(cookie))
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM console_sessions WHERE id_hash = ?`, sum[:]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows for the owner's session: %d, %v; want 1", n, err)
	}

	// While the hub is down, the registryRead policy is deleted (by hand,
	// so its sessions' rows stay) and the service policy's keys are
	// regenerated.
	if _, err := raw.Exec(`DELETE FROM policies WHERE key_name = 'registryRead'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutPolicy(context.Background(), registry.Policy{KeyName: "service", PrimaryKey: newKey(), SecondaryKey: newKey(),
		Rights: []registry.Right{registry.ServiceConnect}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	h = hubtest.StartDir(t, dir, clk.option())
	for _, b := range []*browser{owner, reader, service, leaving} {
		b.base = hubBase(h)
	}
	if s := owner.status("/console/data/presence"); s != http.StatusOK {
		t.Fatalf("the owner's session after the restart: %d, want 200", s)
	}
	// The session signs API calls with the key it signed in with.
	if r, body := owner.api("PUT", "devices/after-restart", `{"deviceId":"after-restart"}`, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("write through the console after the restart: %s %s", r.Status, body)
	}
	if s := reader.status("/console/data/presence"); s != http.StatusUnauthorized {
		t.Errorf("session of a deleted policy: %d, want 401", s)
	}
	if s := service.status("/console/data/presence"); s != http.StatusUnauthorized {
		t.Errorf("session whose policy key was regenerated: %d, want 401", s)
	}
	if r, _ := leaving.do("POST", "/console/logout", "", map[string]string{"X-CSRF-Token": leaving.csrf}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out after the restart: %s", r.Status)
	}
	if s := leaving.status("/console/data/presence"); s != http.StatusUnauthorized {
		t.Errorf("after sign-out: %d, want 401", s)
	}
	if s := owner.status("/console/data/presence"); s != http.StatusOK {
		t.Fatalf("another browser's sign-out ended the owner's session: %d", s)
	}

	// Last-seen is written at most once a minute.
	hdb, err := sql.Open("sqlite", filepath.Join(dir, "ferry.db")+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer hdb.Close()
	lastSeen := func() string {
		var s string
		if err := hdb.QueryRow(`SELECT last_seen_at FROM console_sessions WHERE id_hash = ?`, sum[:]).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := lastSeen()
	for range 5 {
		owner.status("/console/data/presence")
	}
	if got := lastSeen(); got != before {
		t.Errorf("last seen changed within a minute: %s -> %s", before, got)
	}
	clk.Add(2 * time.Minute)
	owner.status("/console/data/presence")
	if got := lastSeen(); got <= before {
		t.Errorf("last seen after two minutes: %s, was %s", got, before)
	}

	// Sessions last 8 hours.
	clk.Add(8 * time.Hour)
	if s := owner.status("/console/data/presence"); s != http.StatusUnauthorized {
		t.Errorf("after 8h: %d, want 401", s)
	}
}

func sessionID(t *testing.T, b *browser) string {
	t.Helper()
	u, _ := url.Parse(b.base + "/console/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "ferry_session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
