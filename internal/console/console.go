// Package console is Ferry's web console: server-rendered pages
// (html/template) with small vanilla JavaScript modules, embedded in the
// binary, served by the hub under /console/ (the hub's / redirects browsers
// there; /devices and /twins belong to the Azure-shaped REST API).
//
// # Security model
//
// An operator signs in with an access-policy name and key, or with a service
// SAS token: the same policies as the REST API. The console keeps the
// policy key on the server and gives the browser only a random session id
// in a Secure, HttpOnly, SameSite=Strict cookie. Sessions are kept in the
// hub's database (SessionStore), so a restart signs nobody out: a row holds
// a hash of the id, the policy name and a fingerprint of the policy key,
// never the id or the key; the CSRF token is derived from the id. A session
// has an absolute expiry (never past a SAS token's own), optionally an idle
// limit, and ends when its policy is deleted or the key it signed in with
// is regenerated.
//
// Every page, data and live endpoint needs a valid session; only the
// sign-in page and the static files do not. Every state-changing request
// needs the session's CSRF token (a form field or the X-CSRF-Token header)
// and, when the browser sends one, a same-origin Origin header.
//
// Writes go through the REST API itself: /console/api/{path} is forwarded,
// in process, to /api/v1/{path} with a short-lived SAS token signed for the
// session's policy, so the API's own permission checks, validation and
// error shapes apply unchanged, and a read-only policy cannot write even by
// crafting requests. Pages hide the buttons the policy could not use.
//
// Pages send a Content-Security-Policy without inline scripts or styles,
// frame-ancestors 'none' (and X-Frame-Options: DENY) and nosniff. Templates
// escape every value; scripts insert data with textContent only.
//
// # Live data
//
// Live telemetry reaches browsers over Server-Sent Events. One tailer per
// watched device reads the stream store (shared by every browser watching
// it) at most ten times a second and hands each subscriber the batch
// through a bounded buffer that drops the oldest batch when the browser is
// slow, so a slow browser never blocks the hub or other browsers.
//
// The device list's connection states are pushed too: a connect or
// disconnect marks the device for each browser showing it (a set bounded
// by the page, never a queue), and each browser's stream sends the marked
// devices' current state at most four times a second. A reconnecting
// stream starts with every device's state, and the page still polls every
// 30 s, so whatever a dropped connection missed is caught up.
package console

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/stream"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

// Policies looks up access policies (registry.Service).
type Policies interface {
	Policy(ctx context.Context, name string) (*registry.Policy, error)
}

// Counter counts registered devices (registry.Service).
type Counter interface {
	Count(ctx context.Context) (int, error)
}

// Presence tells which devices are connected right now (the broker).
type Presence interface {
	Presence(clientID string) (connected bool, since, lastActivity time.Time)
	ConnectedCount() int
}

// Telemetry reads stored messages (stream.Store).
type Telemetry interface {
	Read(ctx context.Context, q stream.Query) ([]stream.Message, stream.Cursor, error)
	Last(ctx context.Context) (stream.Cursor, error)
}

// Provisioning lists what operators decide on (provision.Service).
type Provisioning interface {
	Operations(ctx context.Context, state provision.State, limit int) ([]provision.Operation, error)
	Tokens(ctx context.Context) ([]provision.Token, error)
}

// Config wires the console to the hub.
type Config struct {
	API          http.Handler  // the REST API handler; /console/api/ forwards to it
	Policies     Policies      // access policies, for sign-in
	Devices      Counter       // device count
	Query        query.Querier // the database the query language runs on
	Presence     Presence      // live connection state
	PresenceFeed PresenceFeed  // connection changes, pushed to the device list; nil: the list only polls
	Telemetry    Telemetry     // stored telemetry; nil hides charts
	Provisioning Provisioning  // nil hides the provisioning page
	Models       Models        // DTDL model repository; nil hides the model-driven view
	Info         func() api.HubInfo
	Ingested     func() uint64 // messages stored so far, for messages per second
	Errors       *ErrorLog     // recent errors for the overview; nil shows none
	Logger       *slog.Logger
	Now          func() time.Time

	Sessions    SessionStore  // where sessions are kept; nil keeps them in memory (tests)
	SessionTTL  time.Duration // absolute session lifetime; default 8h
	SessionIdle time.Duration // a session unused this long ends; default 0, no idle limit
	MaxSessions int           // sessions kept at once; default 10,000
	LiveRate    time.Duration // minimum time between live updates of one chart; default 100ms
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 8 * time.Hour
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10000
	}
	if c.Sessions == nil {
		c.Sessions = newMemSessions()
	}
	if c.LiveRate <= 0 {
		c.LiveRate = 100 * time.Millisecond
	}
	if c.Info == nil {
		c.Info = func() api.HubInfo { return api.HubInfo{} }
	}
	if c.Ingested == nil {
		c.Ingested = func() uint64 { return 0 }
	}
}

// Console serves the web console.
type Console struct {
	cfg      Config
	mux      *http.ServeMux
	sessions *sessions
	throttle *throttle
	pages    *pages
	live     *live
	pushes   *presenceFan // nil without Config.PresenceFeed
	static   http.Handler
	stats    stats
}

// New builds the console's routes. It starts no goroutines until a browser
// asks for live data; Close stops what live data started.
func New(cfg Config) (*Console, error) {
	cfg.setDefaults()
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	ss := &sessions{store: cfg.Sessions, now: cfg.Now, ttl: cfg.SessionTTL, idle: cfg.SessionIdle,
		max: cfg.MaxSessions, log: cfg.Logger}
	c := &Console{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		sessions: ss,
		throttle: newThrottle(cfg.Now),
		pages:    p,
		static:   http.StripPrefix(Prefix+"static/", staticHandler(http.FS(sub))),
	}
	c.live = newLive(cfg.Telemetry, cfg.LiveRate, cfg.Logger)
	c.pushes = newPresenceFan(cfg.PresenceFeed)
	c.routes()
	return c, nil
}

// Close ends live streams.
func (c *Console) Close() {
	c.live.close()
	c.pushes.close()
}

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET "+Prefix+"static/", c.static)
	m.HandleFunc("GET "+Prefix+"login", c.loginPage)
	m.HandleFunc("POST "+Prefix+"login", c.login)
	m.HandleFunc("POST "+Prefix+"logout", c.withSession(c.logout))
	m.HandleFunc("GET "+Prefix+"{$}", c.withSession(c.overview))
	m.HandleFunc("GET "+Prefix+"devices", c.withSession(c.devicesPage))
	m.HandleFunc("GET "+Prefix+"devices/{id}", c.withSession(c.devicePage))
	m.HandleFunc("GET "+Prefix+"provisioning", c.withSession(c.provisioningPage))
	m.HandleFunc("GET "+Prefix+"routes", c.withSession(c.routesPage))
	m.HandleFunc("GET "+Prefix+"streams", c.withSession(c.streamsPage))
	m.HandleFunc("GET "+Prefix+"data/stats", c.withSession(c.statsStream))
	m.HandleFunc("GET "+Prefix+"data/presence", c.withSession(c.presence))
	m.HandleFunc("GET "+Prefix+"data/presence/live", c.withSession(c.presenceLive))
	m.HandleFunc("GET "+Prefix+"data/model", c.withSession(c.modelData))
	m.HandleFunc("GET "+Prefix+"data/devices/{id}/telemetry", c.withSession(c.telemetryHistory))
	m.HandleFunc("GET "+Prefix+"data/devices/{id}/live", c.withSession(c.telemetryLive))
	m.HandleFunc(Prefix+"api/", c.withSession(c.proxy))
	m.HandleFunc(Prefix, c.withSession(c.notFound))
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

// RedirectBrowsers answers GET / with a redirect to the console when the
// client asks for HTML (a browser), and hands every other request to next.
func RedirectBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && acceptsHTML(r) {
			http.Redirect(w, r, Prefix, http.StatusFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}
