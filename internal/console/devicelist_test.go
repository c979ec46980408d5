package console_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// listBar is issue 7's bar: the device list's first page in under 300 ms
// of server time with 100,000 registered devices.
const listBar = 300 * time.Millisecond

// fillRegistry registers n devices straight into the database in one
// transaction (the registry service writes and generates keys one device at
// a time: about 4,000 a second), a model id on every hundredth.
func fillRegistry(t testing.TB, e *env, n int) {
	t.Helper()
	t0 := time.Now()
	db, err := sql.Open("sqlite", e.dbPath+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	st, err := tx.Prepare(`INSERT INTO devices (id, generation_id, etag, status, status_reason, status_updated_at,
		connection_state, connection_state_updated_at, last_activity_at, c2d_message_count,
		auth_type, model_id, authentication, attributes) VALUES (?, 'g', 'e', 'enabled', NULL, ?, 'Disconnected', ?, ?, 0, 'sas', ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	never := time.Time{}.Format("2006-01-02T15:04:05.000000000Z")
	auth := `{"symmetricKey":{"primaryKey":"cHJpbWFyeWtleXByaW1hcnlrZXlwcmltYXJ5a2V5MDE=","secondaryKey":"c2Vjb25kYXJ5a2V5c2Vjb25kYXJ5a2V5c2Vjb25kMDE="},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"}`
	attrs := `{"capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":null}`
	for i := range n {
		model := ""
		if i%100 == 0 {
			model = "dtmi:com:example:Thermostat;1"
		}
		if _, err := st.Exec(fmt.Sprintf("dev-%06d", i), now, now, never, model, auth, attrs); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if c, err := e.reg.Count(context.Background()); err != nil || c != n {
		t.Fatalf("registry counts %d devices (%v), want %d", c, err, n)
	}
	if _, err := e.reg.Get(context.Background(), "dev-000100"); err != nil {
		t.Fatalf("the registry cannot read a bulk-inserted device: %v", err)
	}
	t.Logf("registered %d devices in %s", n, time.Since(t0).Round(time.Millisecond))
}

// serverTime runs one request through the console handler (no network)
// and returns its duration.
func serverTime(t testing.TB, e *env, cookie *http.Cookie, path string) (time.Duration, *httptest.ResponseRecorder) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Accept", "text/html")
	req.AddCookie(cookie)
	rec := httptest.NewRecorder()
	t0 := time.Now()
	e.con.ServeHTTP(rec, req)
	return time.Since(t0), rec
}

func sessionCookie(t testing.TB, e *env) *http.Cookie {
	t.Helper()
	b := e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	u := e.srv.URL + "/console/"
	req, _ := http.NewRequest("GET", u, nil)
	for _, c := range b.c.Jar.Cookies(req.URL) {
		if c.Name == "ferry_session" {
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

func TestDeviceListFirstPage100k(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 100,000 devices")
	}
	if raceEnabled {
		t.Skip("timings under the race detector say nothing")
	}
	e := newEnv(t)
	fillRegistry(t, e, 100000)
	ck := sessionCookie(t, e)
	for _, c := range []struct {
		name, path string
		want       string
		bar        bool // held to the bar; the others read more rows and are reported
	}{
		{"first page", "/console/devices", "dev-000049", true},
		{"100 per page", "/console/devices?size=100", "dev-000099", true},
		{"search by id prefix", "/console/devices?q=dev-0999", "dev-099949", false},
		{"model id condition", "/console/devices?where=" + "modelId+%3D+%27dtmi%3Acom%3Aexample%3AThermostat%3B1%27", "dev-004900", false},
		{"connected only (none are)", "/console/devices?state=connected", "No devices match", false},
	} {
		var times []time.Duration
		var rec *httptest.ResponseRecorder
		for range 7 {
			var d time.Duration
			d, rec = serverTime(t, e, ck, c.path)
			times = append(times, d)
		}
		slices.Sort(times)
		med := times[len(times)/2]
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d, want a page with %q", c.name, rec.Code, c.want)
		}
		t.Logf("%-28s median %6.1f ms, max %6.1f ms", c.name, ms(med), ms(times[len(times)-1]))
		if c.bar && med > listBar {
			t.Errorf("%s: median %s over the %s bar", c.name, med, listBar)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkDeviceListFirstPage measures the first page of the list with
// 100,000 registered devices.
func BenchmarkDeviceListFirstPage(b *testing.B) {
	e := newEnv(b)
	fillRegistry(b, e, 100000)
	ck := sessionCookie(b, e)
	b.ResetTimer()
	for b.Loop() {
		_, rec := serverTime(b, e, ck, "/console/devices")
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
