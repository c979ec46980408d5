package console

import (
	"context"
	"crypto/hmac"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
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
// expired and the policy still has the key it signed in with (a
// regenerated key or a deleted policy ends it).
func (c *Console) currentSession(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	ctx := r.Context()
	st, ok := c.sessions.load(ctx, ck.Value)
	if !ok {
		return nil
	}
	pol, err := c.cfg.Policies.Policy(ctx, st.Policy)
	if err != nil {
		if fault.Is(err, fault.Unauthorized) { // no such policy any more
			c.sessions.delete(ctx, st.ID)
		}
		return nil
	}
	key := keyWithHash(pol, st.KeyHash)
	if key == nil {
		c.sessions.delete(ctx, st.ID)
		return nil
	}
	c.sessions.touch(ctx, st)
	return &session{id: ck.Value, hash: st.ID, csrf: csrfOf(ck.Value), policy: pol.KeyName,
		rights: rightsOf(pol), key: key, expires: st.Expires}
}

// verifyingKey returns pol's key that the policy key or the SAS token
// given at sign-in matches, or nil.
func verifyingKey(pol *registry.Policy, key []byte, token string, now time.Time) []byte {
	for _, k := range []string{pol.PrimaryKey, pol.SecondaryKey} {
		pk, err := protocol.DecodeKey(k)
		if err != nil {
			continue
		}
		if key != nil && hmac.Equal(key, pk) {
			return pk
		}
		if token != "" {
			if t, err := protocol.ParseSAS(token); err == nil && t.KeyName == pol.KeyName && t.Verify(pk, now) == nil {
				return pk
			}
		}
	}
	return nil
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
	in, msg := c.authenticate(r)
	if in == nil {
		c.throttle.failed(addr)
		c.cfg.Logger.Info("console sign-in refused", "remote", r.RemoteAddr, "reason", msg)
		c.renderLogin(w, r, http.StatusUnauthorized, msg)
		return
	}
	c.throttle.succeeded(addr)
	s, err := c.sessions.create(r.Context(), in.policy, in.key, in.rights, in.notAfter)
	if err != nil {
		c.cfg.Logger.Error("console: store session", "policy", in.policy, "error", err)
		c.renderLogin(w, r, http.StatusServiceUnavailable, "The sign-in could not be stored. Please try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.id, Path: Prefix,
		Expires: s.expires, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: Prefix + "login", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.cfg.Logger.Info("console sign-in", "policy", s.policy, "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// signIn is a verified sign-in.
type signIn struct {
	policy   string
	key      []byte // the policy key that verified the credential
	rights   []registry.Right
	notAfter time.Time // a SAS token's expiry; zero for a key
}

// authenticate checks the form's credential; on failure it returns the
// message to show (the same for every wrong credential).
func (c *Console) authenticate(r *http.Request) (*signIn, string) {
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
			return nil, "That is not a service SAS token (SharedAccessSignature sr=...&sig=...&se=...&skn=...)."
		}
		name = t.KeyName
		notAfter = time.Unix(t.Expiry, 0)
		if !strings.HasPrefix(token, "SharedAccessSignature ") {
			token = "SharedAccessSignature " + token
		}
	case name != "" && keyText != "":
		k, err := protocol.DecodeKey(keyText)
		if err != nil {
			return nil, wrong
		}
		key = k
	default:
		return nil, "Give an access policy name and key, or a SAS token."
	}
	pol, err := c.cfg.Policies.Policy(r.Context(), name)
	if err != nil {
		return nil, wrong
	}
	pk := verifyingKey(pol, key, token, c.cfg.Now())
	if pk == nil {
		return nil, wrong
	}
	if !pol.Has(registry.RegistryRead) && !pol.Has(registry.ServiceConnect) {
		return nil, "The policy " + pol.KeyName + " has neither RegistryRead nor ServiceConnect: the console has nothing to show it."
	}
	return &signIn{policy: pol.KeyName, key: pk, rights: rightsOf(pol), notAfter: notAfter}, ""
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.delete(r.Context(), sessionFrom(r.Context()).hash)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// bearer returns an Authorization value for the REST API on behalf of s: a
// SAS token signed with the session's policy key, valid for a minute but
// not past the session's end (a SAS token's expiry when the operator
// signed in with one).
func (s *session) bearer(resource string, now time.Time) string {
	exp := now.Add(time.Minute)
	if s.expires.Before(exp) {
		exp = s.expires
	}
	return protocol.SignSAS(s.key, resource, exp, s.policy)
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
