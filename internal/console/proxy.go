package console

import (
	"encoding/json"
	"net/http"
	"strings"
)

// maxProxyBody bounds what the console forwards to the REST API; the API
// applies its own, smaller limits per resource.
const maxProxyBody = 1 << 20

// proxy forwards /console/api/{path} to the REST API's /api/v1/{path} in
// process, authorized as the session's access policy. The API decides
// whether the policy may do it.
func (c *Console) proxy(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	rest := strings.TrimPrefix(r.URL.Path, Prefix+"api/")
	raw := strings.TrimPrefix(r.URL.EscapedPath(), Prefix+"api/")
	if rest == "" || strings.Contains(rest, "..") {
		writeProblem(w, http.StatusNotFound, "no such API path")
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path = "/api/v1/" + rest
	out.URL.RawPath = ""
	if raw != rest {
		out.URL.RawPath = "/api/v1/" + raw
	}
	out.RequestURI = out.URL.RequestURI()
	out.Header = make(http.Header)
	for name, v := range r.Header {
		switch n := strings.ToLower(name); {
		case n == "content-type", n == "content-encoding", n == "if-match", n == "accept", strings.HasPrefix(n, "iothub-"):
			out.Header[name] = v // message properties of a C2D send travel as iothub-* headers
		}
	}
	out.Header.Set("Authorization", s.bearer(c.cfg.Info().HostName, c.cfg.Now()))
	if r.Body != nil {
		out.Body = http.MaxBytesReader(w, r.Body, maxProxyBody)
	}
	w.Header().Set("Cache-Control", "no-store")
	c.cfg.API.ServeHTTP(w, out)
}

// writeProblem writes a small JSON error the console's scripts show.
func writeProblem(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// secureHeaders sets the headers every console response carries.
func secureHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// staticHandler serves the embedded files with a short cache lifetime (the
// files change only with the binary).
func staticHandler(fsys interface {
	Open(string) (http.File, error)
}) http.Handler {
	fs := http.FileServer(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		fs.ServeHTTP(w, r)
	})
}
