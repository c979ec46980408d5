package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
)

// pages holds one template set per page, each with the shared layout.
type pages struct {
	t map[string]*template.Template
}

var pageNames = []string{"login", "overview", "devices", "device", "provisioning", "routes", "streams", "notfound"}

func parsePages() (*pages, error) {
	p := &pages{t: make(map[string]*template.Template)}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: templates: %w", err)
		}
		p.t[name] = t
	}
	return p, nil
}

var funcs = template.FuncMap{
	"deviceURL": func(id string) string { return Prefix + "devices/" + url.PathEscape(id) },
	"ago":       ago,
	"when":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"compact":   compactJSON,
	"hasKeys":   func(m map[string]any) bool { return len(m) > 0 },
}

// view is what every page's template gets.
type view struct {
	Page    string
	Title   string
	S       *session // nil on the sign-in page
	CSRF    string
	Version string
	Data    any
}

// CanRead and the other helpers gate what the templates show.
func (v view) CanRead() bool        { return v.S != nil && v.S.can(registry.RegistryRead) }
func (v view) CanWrite() bool       { return v.S != nil && v.S.can(registry.RegistryWrite) }
func (v view) CanService() bool     { return v.S != nil && v.S.can(registry.ServiceConnect) }
func (v view) Policy() string       { return v.S.policy }
func (v view) ReadOnly() bool       { return !v.CanWrite() && !v.CanService() }
func (v view) Active(p string) bool { return v.Page == p }

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	v := view{Page: name, Title: titles[name], Data: data, Version: c.cfg.Info().Version}
	if s := sessionFrom(r.Context()); s != nil {
		v.S, v.CSRF = s, s.csrf
	}
	if m, ok := data.(map[string]any); ok && name == "login" {
		v.CSRF, _ = m["CSRF"].(string)
	}
	var buf bytes.Buffer
	if err := c.pages.t[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.cfg.Logger.Error("console: render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var titles = map[string]string{
	"login": "Sign in", "overview": "Overview", "devices": "Devices", "device": "Device",
	"provisioning": "Provisioning", "routes": "Routes", "streams": "Streams", "notfound": "Not found",
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusNotFound, "notfound", nil)
}

func (c *Console) forbidden(w http.ResponseWriter, r *http.Request, right registry.Right) {
	c.render(w, r, http.StatusForbidden, "notfound", map[string]any{
		"Forbidden": true, "Right": string(right), "Policy": sessionFrom(r.Context()).policy})
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	info := c.cfg.Info()
	total, err := c.cfg.Devices.Count(r.Context())
	if err != nil {
		c.cfg.Logger.Error("console: count devices", "error", err)
	}
	var errs []LoggedError
	if c.cfg.Errors != nil {
		errs = c.cfg.Errors.Recent(20)
	}
	c.render(w, r, http.StatusOK, "overview", map[string]any{
		"Info":      info,
		"Total":     total,
		"Connected": c.cfg.Presence.ConnectedCount(),
		"Uptime":    time.Duration(info.UptimeSeconds * float64(time.Second)).Truncate(time.Second).String(),
		"Errors":    errs,
	})
}

func (c *Console) provisioningPage(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	if !s.can(registry.RegistryWrite) {
		c.forbidden(w, r, registry.RegistryWrite)
		return
	}
	if c.cfg.Provisioning == nil {
		c.notFound(w, r)
		return
	}
	ops, err := c.cfg.Provisioning.Operations(r.Context(), "pending", 200)
	if err != nil {
		c.cfg.Logger.Error("console: provisioning operations", "error", err)
	}
	toks, err := c.cfg.Provisioning.Tokens(r.Context())
	if err != nil {
		c.cfg.Logger.Error("console: provisioning tokens", "error", err)
	}
	c.render(w, r, http.StatusOK, "provisioning", map[string]any{"Operations": ops, "Tokens": toks, "Now": c.cfg.Now()})
}

// ago renders a time as "12s ago", "5m ago"; the zero time as "never".
func ago(t time.Time) string {
	if t.IsZero() || t.Year() < 2000 {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// compactJSON renders a JSON object on one line, cut at 120 characters.
func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the template escapes; \u003c would only confuse readers
	if err := enc.Encode(v); err != nil {
		return ""
	}
	s := strings.TrimSpace(buf.String())
	if s == "{}" || s == "null" {
		return ""
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// routesPage and streamsPage are shells: their scripts read the REST API
// through /console/api/.
func (c *Console) routesPage(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).can(registry.RegistryRead) {
		c.forbidden(w, r, registry.RegistryRead)
		return
	}
	c.render(w, r, http.StatusOK, "routes", nil)
}

func (c *Console) streamsPage(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).can(registry.ServiceConnect) {
		c.forbidden(w, r, registry.ServiceConnect)
		return
	}
	c.render(w, r, http.StatusOK, "streams", nil)
}
