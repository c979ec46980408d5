package console_test

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
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
// a time: about 4,000 a second), a model id on every hundredth, a last
// activity i minutes ago on every tenth (the others never active), and
// tags {"site": "site-NN", "rack": i % 7} on every device but every
// thirteenth.
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
	const layout = "2006-01-02T15:04:05.000000000Z"
	t1 := time.Now().UTC()
	now := t1.Format(layout)
	never := time.Time{}.Format(layout)
	auth := `{"symmetricKey":{"primaryKey":"cHJpbWFyeWtleXByaW1hcnlrZXlwcmltYXJ5a2V5MDE=","secondaryKey":"c2Vjb25kYXJ5a2V5c2Vjb25kYXJ5a2V5c2Vjb25kMDE="},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"}`
	attrs := `{"capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":null}`
	for i := range n {
		model := ""
		if i%100 == 0 {
			model = "dtmi:com:example:Thermostat;1"
		}
		last := never
		if i%10 == 0 {
			last = t1.Add(-time.Duration(i) * time.Minute).Format(layout)
		}
		if _, err := st.Exec(fmt.Sprintf("dev-%06d", i), now, now, last, model, auth, attrs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(`UPDATE twins SET tags = json_object('site', printf('site-%02d', rowid % 37), 'rack', rowid % 7)
		WHERE module_id = '' AND rowid % 13 <> 0`); err != nil {
		t.Fatal(err)
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
		{"sorted by last activity, newest first", "/console/devices?sort=activity&order=desc", "dev-000490", true},
		{"sorted by last activity, oldest first", "/console/devices?sort=activity", "dev-000049", true},
		{"sorted by device id, descending", "/console/devices?order=desc", "dev-099950", true},
		{"sorted by status", "/console/devices?sort=status", "dev-000049", true},
		{"sorted by tag (no index)", "/console/devices?sort=tags.site", "dev-000012", false},
		{"sorted by tag, descending", "/console/devices?sort=tags.site&order=desc", "site-36", false},
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
		t.Logf("%-40s median %6.1f ms, max %6.1f ms", c.name, ms(med), ms(times[len(times)-1]))
		switch {
		case c.bar && med > listBar:
			t.Errorf("%s: median %s over the %s bar", c.name, med, listBar)
		case med > listBar:
			t.Logf("%s: median %s is over the %s bar (not held to it: no index serves it)", c.name, med, listBar)
		}
	}
}

// TestDeviceListSort pages through a sorted list by its links: every device
// once, in the server's order, with the sort kept across pages and filters
// and the headers saying how the list is sorted.
func TestDeviceListSort(t *testing.T) {
	e := newEnv(t)
	const n = 130
	fillRegistry(t, e, n)
	ck := sessionCookie(t, e)
	rowRE := regexp.MustCompile(`<tr data-id="([^"]+)"`)
	nextRE := regexp.MustCompile(`<a class="btn" href="([^"]+)" rel="next">`)
	pages := func(path string) (ids []string, first string) {
		for range n {
			_, rec := serverTime(t, e, ck, path)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
			}
			body := rec.Body.String()
			if first == "" {
				first = body
			}
			for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
				ids = append(ids, m[1])
			}
			m := nextRE.FindStringSubmatch(body)
			if m == nil {
				return ids, first
			}
			path = html.UnescapeString(m[1])
		}
		t.Fatalf("%s: no last page", path)
		return nil, ""
	}
	id := func(i int) string { return fmt.Sprintf("dev-%06d", i) }
	// Newest first: every tenth device by its activity (device i was
	// active i minutes ago), then the never active ones, ties by id
	// descending as the sort is.
	var want []string
	for i := 0; i < n; i += 10 {
		want = append(want, id(i))
	}
	for i := n - 1; i >= 0; i-- {
		if i%10 != 0 {
			want = append(want, id(i))
		}
	}
	got, body := pages("/console/devices?sort=activity&order=desc&size=25")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("by activity, newest first:\n got %q\nwant %q", got, want)
	}
	for _, s := range []string{
		`<th scope="col" aria-sort="descending"><a class="sort" href="/console/devices?sort=activity&amp;size=25">Last activity<span class="sr-only"> (sort ascending)</span></a></th>`,
		`<th scope="col"><a class="sort" href="/console/devices?size=25">Device id<span class="sr-only"> (sort ascending)</span></a></th>`,
		`<th scope="col"><a class="sort" href="/console/devices?sort=status&amp;size=25">Status`,
		`<input type="hidden" name="sort" value="activity">`,
		`<input type="hidden" name="order" value="desc">`,
		`ORDER BY lastActivityTime DESC`,
		`ordered by last activity, descending`,
	} {
		if !strings.Contains(body, html.UnescapeString(s)) && !strings.Contains(body, s) {
			t.Errorf("the sorted page lacks %s", s)
		}
	}
	if strings.Contains(body, "data-key=") {
		t.Error("the page still sorts on the client")
	}
	// A condition and a sort by a tag, descending: devices without the tag
	// (every thirteenth) last.
	got, body = pages("/console/devices?q=dev-00001&sort=tags.site&order=desc&size=25")
	if len(got) != 10 || got[len(got)-1] != id(12) || !strings.Contains(body, `<span class="sorted-by">tags.site</span>`) {
		t.Errorf("by tags.site descending among dev-00001*: %q", got)
	}
	// Unknown sort keys and tag paths that are not plain fall back to the
	// device id; they never reach the query's text.
	for _, path := range []string{"/console/devices?sort=nope", "/console/devices?sort=tags.a%27%20OR%201", "/console/devices?sort=tags."} {
		_, rec := serverTime(t, e, ck, path)
		if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "ORDER BY") {
			t.Errorf("%s: %d, or the query has an ORDER BY", path, rec.Code)
		}
	}
	// A token from another sort is refused plainly.
	_, rec := serverTime(t, e, ck, "/console/devices?sort=activity&order=desc")
	m := nextRE.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatal("no next page")
	}
	u, _ := url.Parse(html.UnescapeString(m[1]))
	_, rec = serverTime(t, e, ck, "/console/devices?sort=status&after="+url.QueryEscape(u.Query().Get("after")))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "issued for a different query") {
		t.Errorf("a token of another order: %d", rec.Code)
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
