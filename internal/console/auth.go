package console

import (
	"context"
	"crypto/hmac"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

const (
	sessionCookie = "ferry_session"
	loginCookie   = "ferry_login" // double-submit CSRF token of the sign-in form
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
)

type ctxKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(ctxKey{}).(*session)
	return s
}

// withSession runs fn only for a request with a valid session (and, for a
// state-changing method, its CSRF token and a same-origin Origin). Pages
// without one redirect to the sign-in page; everything else gets 401.
func (c *Console) withSession(fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.currentSession(r)
		if s == nil {
			if r.Method == http.MethodGet && acceptsHTML(r) && !strings.HasPrefix(r.URL.Path, Prefix+"api/") && !strings.HasPrefix(r.URL.Path, Prefix+"data/") {
				http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			writeProblem(w, http.StatusUnauthorized, "sign in first: no valid console session")
			return
		}
		if !safeMethod(r.Method) {
			if !sameOrigin(r) {
				writeProblem(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostFormValue(csrfField)
			}
			if !equalSecret(tok, s.csrf) {
				writeProblem(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
				return
			}
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	}
}

// currentSession returns the request's session if it exists, has not
// expired and its credential still verifies against the policy's current
// keys (a rotated key or a deleted policy ends it).
func (c *Console) currentSession(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s := c.sessions.get(ck.Value)
	if s == nil {
		return nil
	}
	pol, err := c.cfg.Policies.Policy(r.Context(), s.policy)
	if err != nil || !credentialValid(pol, s.key, s.token, c.cfg.Now()) {
		c.sessions.delete(s.id)
		return nil
	}
	return s
}

// credentialValid checks a policy key or a SAS token against pol's keys.
func credentialValid(pol *registry.Policy, key []byte, token string, now time.Time) bool {
	for _, k := range []string{pol.PrimaryKey, pol.SecondaryKey} {
		pk, err := protocol.DecodeKey(k)
		if err != nil {
			continue
		}
		if key != nil && hmac.Equal(key, pk) {
			return true
		}
		if token != "" {
			if t, err := protocol.ParseSAS(token); err == nil && t.KeyName == pol.KeyName && t.Verify(pk, now) == nil {
				return true
			}
		}
	}
	return false
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.currentSession(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.renderLogin(w, r, http.StatusOK, "")
}

func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: Prefix + "login",
		MaxAge: 3600, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.render(w, r, status, "login", map[string]any{
		"CSRF":  tok,
		"Next":  safeNext(r.FormValue("next")),
		"Error": msg,
		"Info":  c.cfg.Info(),
	})
}

// login signs in with a policy name and key, or a SAS token.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		writeProblem(w, http.StatusBadRequest, "malformed form")
		return
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !equalSecret(r.PostFormValue(csrfField), ck.Value) || !sameOrigin(r) {
		c.renderLogin(w, r, http.StatusForbidden, "The sign-in form expired. Please try again.")
		return
	}
	addr := clientAddr(r)
	if c.throttle.blocked(addr) {
		c.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from your address: wait a minute.")
		return
	}
	s, notAfter, msg := c.authenticate(r)
	if s == nil {
		c.throttle.failed(addr)
		c.cfg.Logger.Info("console sign-in refused", "remote", r.RemoteAddr, "reason", msg)
		c.renderLogin(w, r, http.StatusUnauthorized, msg)
		return
	}
	c.throttle.succeeded(addr)
	s = c.sessions.create(s, notAfter)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.id, Path: Prefix,
		Expires: s.expires, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: Prefix + "login", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.cfg.Logger.Info("console sign-in", "policy", s.policy, "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// authenticate checks the form's credential; on failure it returns the
// message to show (the same for every wrong credential).
func (c *Console) authenticate(r *http.Request) (*session, time.Time, string) {
	const wrong = "Wrong policy name, key or token."
	name := strings.TrimSpace(r.PostFormValue("policy"))
	keyText := strings.TrimSpace(r.PostFormValue("key"))
	token := strings.TrimSpace(r.PostFormValue("token"))
	var key []byte
	var notAfter time.Time
	switch {
	case token != "":
		t, err := protocol.ParseSAS(token)
		if err != nil || t.KeyName == "" {
			return nil, time.Time{}, "That is not a service SAS token (SharedAccessSignature sr=...&sig=...&se=...&skn=...)."
		}
		name = t.KeyName
		notAfter = time.Unix(t.Expiry, 0)
		if !strings.HasPrefix(token, "SharedAccessSignature ") {
			token = "SharedAccessSignature " + token
		}
	case name != "" && keyText != "":
		k, err := protocol.DecodeKey(keyText)
		if err != nil {
			return nil, time.Time{}, wrong
		}
		key = k
	default:
		return nil, time.Time{}, "Give an access policy name and key, or a SAS token."
	}
	pol, err := c.cfg.Policies.Policy(r.Context(), name)
	if err != nil || !credentialValid(pol, key, token, c.cfg.Now()) {
		return nil, time.Time{}, wrong
	}
	if !pol.Has(registry.RegistryRead) && !pol.Has(registry.ServiceConnect) {
		return nil, time.Time{}, "The policy " + pol.KeyName + " has neither RegistryRead nor ServiceConnect: the console has nothing to show it."
	}
	return &session{policy: pol.KeyName, rights: rightsOf(pol), key: key, token: token}, notAfter, ""
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.delete(sessionFrom(r.Context()).id)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// bearer returns an Authorization value for the REST API on behalf of s: a
// SAS token valid for a minute signed with the session's key, or the token
// the operator signed in with.
func (s *session) bearer(resource string, now time.Time) string {
	if s.key == nil {
		return s.token
	}
	return protocol.SignSAS(s.key, resource, now.Add(time.Minute), s.policy)
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin refuses requests whose Origin (when sent) is another site.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // SameSite=Strict cookies and the CSRF token still apply
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func acceptsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
