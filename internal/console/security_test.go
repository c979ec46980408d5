package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// Every page, data stream and API call needs a valid session; pages send
// browsers to the sign-in page, everything else answers 401.
func TestNoSessionNoAccess(t *testing.T) {
	e := newEnv(t)
	if _, err := e.reg.Create(context.Background(), registry.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	anon := e.browser(t)
	forged := e.browser(t)
	u, _ := url.Parse(e.srv.URL + "/console/")
	forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "ferry_session", Value: "forged-session-id", Path: "/console/"}})
	pages := []string{"/console/", "/console/devices", "/console/devices/d1", "/console/provisioning", "/console/routes", "/console/streams", "/console/nowhere"}
	data := []string{"/console/data/stats", "/console/data/presence?id=d1", "/console/data/model?id=dtmi:x:y;1", "/console/data/devices/d1/telemetry", "/console/data/devices/d1/live",
		"/console/api/devices/d1", "/console/api/hub", "/console/api/twins/d1"}
	for _, b := range []*browser{anon, forged} {
		for _, p := range pages {
			resp, _ := b.get(p)
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
				t.Errorf("GET %s without a session: %s to %q, want 303 to the sign-in page", p, resp.Status, resp.Header.Get("Location"))
			}
		}
		for _, p := range data {
			if resp, _ := b.do("GET", p, "", nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without a session: %s, want 401", p, resp.Status)
			}
		}
		for _, m := range []string{"PUT", "DELETE", "POST", "PATCH"} {
			if resp, _ := b.do(m, "/console/api/devices/d1", `{"deviceId":"d1"}`, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s /console/api/devices/d1 without a session: %s, want 401", m, resp.Status)
			}
		}
		if resp, _ := b.do("POST", "/console/logout", "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("logout without a session: %s", resp.Status)
		}
	}
	if _, err := e.reg.Get(context.Background(), "d1"); err != nil {
		t.Errorf("d1 is gone: %v", err)
	}
	// The sign-in page and static files are public.
	if resp, _ := anon.get("/console/login"); resp.StatusCode != http.StatusOK {
		t.Errorf("sign-in page: %s", resp.Status)
	}
	if resp, _ := anon.do("GET", "/console/static/app.css", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("static: %s", resp.Status)
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	key, _ := protocol.DecodeKey(e.keys["registryRead"])
	cases := []struct {
		name string
		form url.Values
		ok   bool
	}{
		{"key", url.Values{"policy": {"registryRead"}, "key": {e.keys["registryRead"]}}, true},
		{"wrong key", url.Values{"policy": {"registryRead"}, "key": {e.keys["iothubowner"]}}, false},
		{"unknown policy", url.Values{"policy": {"nobody"}, "key": {e.keys["registryRead"]}}, false},
		{"device policy has nothing to see", url.Values{"policy": {"device"}, "key": {e.keys["device"]}}, false},
		{"sas token", url.Values{"token": {protocol.SignSAS(key, "localhost", time.Now().Add(time.Hour), "registryRead")}}, true},
		{"sas token without prefix", url.Values{"token": {strings.TrimPrefix(protocol.SignSAS(key, "localhost", time.Now().Add(time.Hour), "registryRead"), "SharedAccessSignature ")}}, true},
		{"expired sas token", url.Values{"token": {protocol.SignSAS(key, "localhost", time.Now().Add(-time.Minute), "registryRead")}}, false},
		{"forged sas token", url.Values{"token": {protocol.SignSAS([]byte("not the key"), "localhost", time.Now().Add(time.Hour), "registryRead")}}, false},
		{"empty", url.Values{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := e.browser(t)
			resp := b.signIn(c.form)
			if got := resp.StatusCode == http.StatusSeeOther; got != c.ok {
				t.Fatalf("sign in: %s, want ok=%v", resp.Status, c.ok)
			}
			r, _ := b.get("/console/devices")
			if got := r.StatusCode == http.StatusOK; got != c.ok {
				t.Errorf("devices page after sign-in: %s", r.Status)
			}
		})
	}
	t.Run("session cookie attributes", func(t *testing.T) {
		b := e.browser(t)
		_, page := b.get("/console/login")
		tok := csrfField(t, page)
		resp, _ := b.do("POST", "/console/login", url.Values{"csrf": {tok}, "policy": {"registryRead"}, "key": {e.keys["registryRead"]}}.Encode(),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		var sc *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "ferry_session" {
				sc = c
			}
		}
		if sc == nil || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || len(sc.Value) < 40 {
			t.Fatalf("session cookie %+v: want Secure, HttpOnly, SameSite=Strict and a long random value", sc)
		}
	})
	t.Run("sign-in form needs its token", func(t *testing.T) {
		b := e.browser(t)
		b.get("/console/login")
		resp, _ := b.do("POST", "/console/login", url.Values{"policy": {"registryRead"}, "key": {e.keys["registryRead"]}}.Encode(),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-in without the form token: %s, want 403", resp.Status)
		}
	})
	t.Run("open redirect", func(t *testing.T) {
		b := e.browser(t)
		resp := b.signIn(url.Values{"policy": {"registryRead"}, "key": {e.keys["registryRead"]}, "next": {"//evil.example/x"}})
		if loc := resp.Header.Get("Location"); loc != "/console/" {
			t.Errorf("next=//evil.example redirected to %q", loc)
		}
	})
}

// Sessions end: at sign-out, at expiry, and when the policy's key changes.
func TestSessionEnds(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	if r, _ := b.do("POST", "/console/logout", "", map[string]string{"X-CSRF-Token": b.csrf}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", r.Status)
	}
	if r, _ := b.do("GET", "/console/data/presence", "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after sign-out: %s, want 401", r.Status)
	}

	b = e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	e.clock.Add(7 * time.Hour)
	if r, _ := b.do("GET", "/console/data/presence", "", nil); r.StatusCode != http.StatusOK {
		t.Errorf("after 7h: %s, want 200", r.Status)
	}
	e.clock.Add(90 * time.Minute)
	if r, _ := b.do("GET", "/console/data/presence", "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after 8.5h: %s, want 401 (sessions last 8h)", r.Status)
	}
}

// A read-only policy sees no write buttons and cannot write through the
// console's API path, whatever it sends.
func TestReadOnlyPolicyCannotWrite(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.reg.Create(ctx, registry.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	b.signInKey("registryRead", e.keys["registryRead"])
	_, page := b.get("/console/devices")
	for _, s := range []string{"New device", `data-action="delete"`, `data-action="disable"`, "Provisioning</a>"} {
		if strings.Contains(page, s) {
			t.Errorf("read-only devices page shows %q", s)
		}
	}
	if !strings.Contains(page, `href="/console/devices/d1"`) || !strings.Contains(page, "read-only") {
		t.Errorf("read-only devices page lacks the device or the read-only mark")
	}
	_, dev := b.get("/console/devices/d1")
	for _, s := range []string{`id="twin-save"`, `id="method-form"`, `id="c2d-form"`} {
		if strings.Contains(dev, s) {
			t.Errorf("read-only device page shows %s", s)
		}
	}
	if r, _ := b.get("/console/provisioning"); r.StatusCode != http.StatusForbidden {
		t.Errorf("provisioning page for registryRead: %s, want 403", r.Status)
	}
	if r, _ := b.get("/console/streams"); r.StatusCode != http.StatusForbidden {
		t.Errorf("streams page for registryRead: %s, want 403", r.Status)
	}
	if _, page := b.get("/console/routes"); !strings.Contains(page, `data-write="false"`) {
		t.Errorf("routes page for registryRead offers writes")
	}
	for _, w := range []struct{ method, path, body string }{
		{"PUT", "devices/d2", `{"deviceId":"d2"}`},
		{"PUT", "devices/d1", `{"deviceId":"d1","status":"disabled"}`},
		{"DELETE", "devices/d1", ""},
		{"PATCH", "twins/d1", `{"tags":{"a":1}}`},
		{"POST", "twins/d1/methods", `{"methodName":"reboot"}`},
		{"POST", "provisioning/tokens", `{"name":"x"}`},
	} {
		r, body := b.api(w.method, w.path, w.body, map[string]string{"If-Match": "*"})
		if r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s as registryRead: %s %s, want 403", w.method, w.path, r.Status, body)
		}
	}
	d, err := e.reg.Get(ctx, "d1")
	if err != nil || d.Status != registry.StatusEnabled {
		t.Errorf("d1 changed: %+v %v", d, err)
	}
	if _, err := e.reg.Get(ctx, "d2"); err == nil {
		t.Error("d2 was created")
	}
	// Reads work.
	if r, body := b.api("GET", "devices/d1", "", nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET devices/d1 as registryRead: %s %s", r.Status, body)
	}
}

// Every state-changing request needs the session's CSRF token and a
// same-origin Origin.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	body := `{"deviceId":"c1"}`
	cases := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", map[string]string{"X-CSRF-Token": ""}, http.StatusForbidden},
		{"wrong token", map[string]string{"X-CSRF-Token": "x" + b.csrf}, http.StatusForbidden},
		{"other site", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"token", nil, http.StatusOK},
	}
	for _, c := range cases {
		r, out := b.api("PUT", "devices/c1", body, c.hdr)
		if r.StatusCode != c.want {
			t.Errorf("%s: %s %s, want %d", c.name, r.Status, out, c.want)
		}
	}
	// The token of another session does not work either.
	other := e.browser(t)
	other.signInKey("iothubowner", e.keys["iothubowner"])
	if r, _ := b.api("DELETE", "devices/c1", "", map[string]string{"X-CSRF-Token": other.csrf, "If-Match": "*"}); r.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %s, want 403", r.Status)
	}
	// Sign-out is a POST and needs it too.
	if r, _ := b.do("POST", "/console/logout", "", nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("logout without token: %s, want 403", r.Status)
	}
	if _, err := e.reg.Get(context.Background(), "c1"); err != nil {
		t.Errorf("c1: %v", err)
	}
}

// Device ids and tags are escaped in pages; pages carry the security
// headers.
func TestEscapingAndHeaders(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := `x'(alert)=@$!`
	if _, err := e.reg.Create(ctx, registry.Device{DeviceID: id}); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	r, out := b.api("PATCH", "twins/"+url.PathEscape(id), `{"tags":{"note":"`+strings.ReplaceAll(evil, `"`, `\"`)+`"}}`, map[string]string{"If-Match": "*"})
	if r.StatusCode/100 != 2 {
		t.Fatalf("twin patch: %s %s", r.Status, out)
	}
	for _, p := range []string{"/console/devices", "/console/devices/" + url.PathEscape(id), "/console/devices?q=" + url.QueryEscape(evil)} {
		resp, page := b.get(p)
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
			t.Errorf("%s renders HTML from data:\n%s", p, page)
		}
		if p == "/console/devices" && !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s lacks the escaped tag", p)
		}
		if strings.Contains(page, `x'(alert)`) {
			t.Errorf("%s has the raw id with quotes", p)
		}
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s CSP %q", p, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s headers %v", p, h)
		}
		if strings.Contains(page, "<script>") || strings.Contains(page, " onclick=") || strings.Contains(page, " style=") {
			t.Errorf("%s has an inline script, handler or style (the CSP forbids them)", p)
		}
	}
}

func csrfField(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatal("no csrf field")
	}
	rest := page[i+len(`name="csrf" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// Wrong credentials from one address are refused for a minute after ten,
// even the right one; other addresses and later tries are not affected.
func TestSignInThrottle(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	for i := range 10 {
		if r := b.signIn(url.Values{"policy": {"iothubowner"}, "key": {e.keys["service"]}}); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %s", i, r.Status)
		}
	}
	if r := b.signIn(url.Values{"policy": {"iothubowner"}, "key": {e.keys["iothubowner"]}}); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right key after ten wrong ones: %s, want 429", r.Status)
	}
	e.clock.Add(61 * time.Second)
	if r := b.signIn(url.Values{"policy": {"iothubowner"}, "key": {e.keys["iothubowner"]}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("right key a minute later: %s", r.Status)
	}
}

// With an idle limit, a session unused that long ends; one in use lives
// on. The CSRF token is not the session id.
func TestSessionIdleLimit(t *testing.T) {
	e := newEnv(t, func(c *console.Config, _ *api.Config) { c.SessionIdle = 30 * time.Minute })
	busy, idle := e.browser(t), e.browser(t)
	busy.signInKey("iothubowner", e.keys["iothubowner"])
	idle.signInKey("iothubowner", e.keys["iothubowner"])
	u, _ := url.Parse(busy.base + "/console/")
	for _, c := range busy.c.Jar.Cookies(u) {
		if c.Name == "ferry_session" && (c.Value == busy.csrf || busy.csrf == "") {
			t.Errorf("CSRF token %q is empty or the session id", busy.csrf)
		}
	}
	for range 3 {
		e.clock.Add(20 * time.Minute)
		if r, _ := busy.do("GET", "/console/data/presence", "", nil); r.StatusCode != http.StatusOK {
			t.Fatalf("session in use: %s, want 200", r.Status)
		}
	}
	if r, _ := idle.do("GET", "/console/data/presence", "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("session idle for an hour: %s, want 401", r.Status)
	}
}
