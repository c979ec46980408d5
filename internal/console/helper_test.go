package console_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/twin"
)

// env is a console over a real SQLite registry and the real REST API, on
// an httptest TLS server.
type env struct {
	srv    *httptest.Server
	db     *sqlite.DB
	dbPath string
	reg    *registry.Service
	keys   map[string]string // policy name -> primary key
	clock  *clock
	pres   *fakePresence
	con    *console.Console
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakePresence struct {
	mu sync.Mutex
	on map[string]bool
}

func (p *fakePresence) Presence(id string) (bool, time.Time, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.on[id], time.Time{}, time.Time{}
}

func (p *fakePresence) ConnectedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.on)
}

type queries struct{ db query.Querier }

func (q queries) Run(ctx context.Context, text string, page query.Page) (query.Result, error) {
	return query.Run(ctx, q.db, text, page)
}

// envOption changes the console's and the API's configuration.
type envOption func(*console.Config, *api.Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ferry.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &env{db: db, dbPath: path, clock: &clock{t: time.Now()}, pres: &fakePresence{on: map[string]bool{}}, keys: map[string]string{}}
	e.reg = registry.NewService(db, registry.Options{Now: e.clock.Now})
	pols, err := e.reg.EnsureDefaultPolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pols {
		e.keys[p.KeyName] = p.PrimaryKey
	}
	twins := twin.NewService(db, twin.Options{Now: e.clock.Now})
	t.Cleanup(func() { _ = twins.Close(context.Background()) })
	acfg := api.Config{Registry: e.reg, Presence: e.pres, Query: queries{db}, Twins: twins, Now: e.clock.Now}
	ccfg := console.Config{
		Policies: e.reg, Devices: e.reg, Query: db, Presence: e.pres, Now: e.clock.Now,
		Info: func() api.HubInfo {
			return api.HubInfo{HostName: "localhost", DeviceHostName: "localhost", Version: "test"}
		},
	}
	for _, o := range opts {
		o(&ccfg, &acfg)
	}
	apiH := api.NewHandler(acfg)
	ccfg.API = apiH
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // browsers' refusals of the test certificate
	e.con, err = console.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, e.con)
	mux.Handle("/", console.RedirectBrowsers(apiH))
	e.srv.Config.Handler = mux
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.con.Close)
	return e
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string
}

func (e *env) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client() // a copy: each browser has its own jar
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, base: e.srv.URL, c: &c}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// do sends a request; html sets Accept: text/html.
func (b *browser) do(method, path, body string, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if m := csrfMeta.FindStringSubmatch(string(out)); m != nil && m[1] != "" {
		b.csrf = m[1]
	}
	return resp, string(out)
}

func (b *browser) get(path string) (*http.Response, string) {
	return b.do("GET", path, "", map[string]string{"Accept": "text/html"})
}

// signIn signs in through the form: GET (for its token), then POST.
func (b *browser) signIn(form url.Values) *http.Response {
	b.t.Helper()
	_, page := b.get("/console/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no csrf field on the sign-in page:\n%s", page)
	}
	form.Set("csrf", m[1])
	resp, _ := b.do("POST", "/console/login", form.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode == http.StatusSeeOther {
		b.get("/console/") // picks up the session's CSRF token
	}
	return resp
}

func (b *browser) signInKey(policy, key string) {
	b.t.Helper()
	resp := b.signIn(url.Values{"policy": {policy}, "key": {key}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign in as %s: %s", policy, resp.Status)
	}
}

// api calls /console/api/ with the session's CSRF token.
func (b *browser) api(method, path, body string, hdr map[string]string) (*http.Response, string) {
	h := map[string]string{"X-CSRF-Token": b.csrf, "Content-Type": "application/json"}
	for k, v := range hdr {
		h[k] = v
	}
	return b.do(method, "/console/api/"+path, body, h)
}
