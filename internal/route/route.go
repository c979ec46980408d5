package route

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// Source is the kind of message a route reads.
type Source string

// The sources, spelled as Azure IoT Hub's routing sources.
const (
	Telemetry        Source = "telemetry"             // device-to-cloud messages
	TwinChanges      Source = "twinChangeEvents"      // a twin's tags, desired or reported properties changed
	LifecycleEvents  Source = "deviceLifecycleEvents" // created, deleted, connected, disconnected
	defaultRouteName        = "$fallback"
)

// Kind is an endpoint's type.
type Kind string

// The endpoint kinds.
const (
	KindStream  Kind = "stream"  // re-store the message in another stream of the hub
	KindWebhook Kind = "webhook" // HTTP POST of the body
	KindNATS    Kind = "nats"    // publish on a subject of the hub's NATS
	KindMethod  Kind = "method"  // invoke a direct method on a device, the body as payload
	KindC2D     Kind = "c2d"     // queue the body as a cloud-to-device message
)

// Route sends the messages of one source that match its condition to its
// endpoints.
type Route struct {
	Name   string `json:"name"`
	Source Source `json:"source"`
	// Condition selects messages; "" and "true" select all. See the
	// package doc for the language.
	Condition   string       `json:"condition"`
	Endpoints   []Endpoint   `json:"endpoints"`
	Enabled     bool         `json:"enabled"`
	Enrichments []Enrichment `json:"enrichments,omitempty"`
	// Allow restricts device endpoints: who may send through the route
	// and which devices it may reach.
	Allow   Allow     `json:"allow,omitzero"`
	Created time.Time `json:"created,omitzero"`
	Updated time.Time `json:"updated,omitzero"`
}

// Endpoint is one destination of a route.
type Endpoint struct {
	Kind Kind `json:"kind"`
	// Name is the stream name (stream), the subject (nats) or the method
	// name (method).
	Name string `json:"name,omitempty"`
	// URL and Secret configure a webhook: the body is POSTed to URL with
	// an X-Ferry-Signature header, "sha256=" and the hex HMAC-SHA256 of
	// the body under Secret (no header when Secret is empty).
	URL    string `json:"url,omitempty"`
	Secret string `json:"secret,omitempty"`
	// Target is the device (or "device/module") of a method or c2d
	// endpoint, unless TargetFrom takes it from each message: "to" (the
	// $.to system property; "/devices/X/..." forms are accepted) or
	// "property:NAME" (an application property).
	Target     string `json:"target,omitempty"`
	TargetFrom string `json:"targetFrom,omitempty"`
	// Timeout bounds one attempt (webhook) or the method's answer
	// (method). Default 10s for webhooks, 30s for methods.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// Enrichment adds an application property to what endpoints receive:
// Value is static text, or $twin.tags.x, $twin.properties.desired.x,
// $twin.properties.reported.x (the sender's twin; absent values add
// nothing), or a system property such as $connectionDeviceId.
type Enrichment struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Allow is a route's allow-list for device endpoints. Empty fields allow
// everything; a delivery that breaks a non-empty rule is refused, counted
// and logged, never delivered.
type Allow struct {
	Sources    []string          `json:"sources,omitempty"`    // sending device ids
	Targets    []string          `json:"targets,omitempty"`    // target device ids
	TargetTags map[string]string `json:"targetTags,omitempty"` // tags the target's twin must carry (string values)
}

// IsZero reports whether a allows everything.
func (a Allow) IsZero() bool {
	return len(a.Sources) == 0 && len(a.Targets) == 0 && len(a.TargetTags) == 0
}

// Limits on routes.
const (
	MaxEndpoints   = 16
	MaxEnrichments = 16
	MaxNameLength  = 128
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Validate checks r and fills defaults (Source telemetry). Errors are
// fault.Invalid; a condition error names its line and column.
func (r *Route) Validate() error {
	if len(r.Name) > MaxNameLength || !nameRE.MatchString(r.Name) {
		return fault.Invalidf("route name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d characters", r.Name, MaxNameLength)
	}
	switch r.Source {
	case "":
		r.Source = Telemetry
	case Telemetry, TwinChanges, LifecycleEvents:
	default:
		return fault.Invalidf("route %s: source must be telemetry, twinChangeEvents or deviceLifecycleEvents, not %q", r.Name, r.Source)
	}
	if _, err := CompileCondition(r.Condition); err != nil {
		return err
	}
	if len(r.Endpoints) == 0 || len(r.Endpoints) > MaxEndpoints {
		return fault.Invalidf("route %s: give 1 to %d endpoints", r.Name, MaxEndpoints)
	}
	for i := range r.Endpoints {
		if err := r.Endpoints[i].validate(); err != nil {
			return fault.Invalidf("route %s: endpoint %d: %s", r.Name, i+1, fault.Public(err))
		}
	}
	if len(r.Enrichments) > MaxEnrichments {
		return fault.Invalidf("route %s: at most %d enrichments", r.Name, MaxEnrichments)
	}
	for _, e := range r.Enrichments {
		if e.Key == "" {
			return fault.Invalidf("route %s: an enrichment has an empty key", r.Name)
		}
		if _, err := compileEnrichment(e); err != nil {
			return fault.Invalidf("route %s: enrichment %s: %s", r.Name, e.Key, fault.Public(err))
		}
	}
	return nil
}

var streamNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (e *Endpoint) validate() error {
	switch e.Kind {
	case KindStream:
		if !streamNameRE.MatchString(e.Name) {
			return fault.Invalidf("stream endpoint: stream name %q: use letters, digits, '_', '.' and '-'", e.Name)
		}
	case KindWebhook:
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fault.Invalidf("webhook endpoint: url must be http:// or https://, not %q", e.URL)
		}
	case KindNATS:
		if e.Name == "" || strings.ContainsAny(e.Name, " \t\r\n*>") || strings.HasPrefix(e.Name, "$") ||
			strings.HasPrefix(e.Name, "ferry.") || strings.HasPrefix(e.Name, "_") {
			return fault.Invalidf("nats endpoint: subject %q: give a plain subject outside ferry.>, $ and _ subjects, without wildcards", e.Name)
		}
	case KindMethod, KindC2D:
		if e.Kind == KindMethod && (e.Name == "" || len(e.Name) > 128) {
			return fault.Invalidf("method endpoint: a method name is required")
		}
		if (e.Target == "") == (e.TargetFrom == "") {
			return fault.Invalidf("%s endpoint: give a target device or where to take it from (targetFrom), one of them", e.Kind)
		}
		if e.TargetFrom != "" {
			if _, err := parseTargetFrom(e.TargetFrom); err != nil {
				return err
			}
		}
	default:
		return fault.Invalidf("endpoint kind must be stream, webhook, nats, method or c2d, not %q", e.Kind)
	}
	if e.TimeoutSeconds < 0 || e.TimeoutSeconds > 300 {
		return fault.Invalidf("%s endpoint: timeout must be 1 to 300 seconds", e.Kind)
	}
	return nil
}

// targetFrom says where a device endpoint finds its target in a message.
type targetFrom struct {
	to       bool   // the $.to system property
	property string // else this application property
}

func parseTargetFrom(s string) (targetFrom, error) {
	switch {
	case s == "to" || s == "$to":
		return targetFrom{to: true}, nil
	case strings.HasPrefix(s, "property:") && len(s) > len("property:"):
		return targetFrom{property: s[len("property:"):]}, nil
	}
	return targetFrom{}, fault.Invalidf("targetFrom must be 'to' or 'property:NAME', not %q", s)
}

// String describes an endpoint in the form the CLI's --endpoint takes.
func (e Endpoint) String() string {
	s := string(e.Kind)
	switch e.Kind {
	case KindStream, KindNATS, KindMethod:
		s += ":" + e.Name
	case KindWebhook:
		s += ":" + e.URL
	}
	switch {
	case e.Target != "":
		s += " → " + e.Target
	case e.TargetFrom != "":
		s += " → from " + e.TargetFrom
	}
	return s
}

// ParseEndpoint reads the CLI's endpoint form: stream:NAME, webhook:URL,
// nats:SUBJECT, method:NAME or c2d.
func ParseEndpoint(s string) (Endpoint, error) {
	kind, arg, _ := strings.Cut(s, ":")
	e := Endpoint{Kind: Kind(kind)}
	switch e.Kind {
	case KindStream, KindNATS, KindMethod:
		e.Name = arg
	case KindWebhook:
		e.URL = arg
	case KindC2D:
		if arg != "" {
			return e, fault.Invalidf("endpoint %q: c2d takes no argument", s)
		}
	default:
		return e, fault.Invalidf("endpoint %q: want stream:NAME, webhook:URL, nats:SUBJECT, method:NAME or c2d", s)
	}
	return e, nil
}

// NotFoundError is the error for an unknown route.
func NotFoundError(name string) error {
	return fault.New(fault.NotFound, "RouteNotFound", 404001, "route %q not found", name)
}

// ErrExists is wrapped by the error for a route name that is taken.
var ErrExists = errors.New("route: exists")

// ExistsError is the error for a route name that is taken.
func ExistsError(name string) error {
	return &fault.Error{Kind: fault.Conflict, Code: "RouteAlreadyExists", Num: 409001,
		Msg: fmt.Sprintf("route %q already exists", name), Err: ErrExists}
}

// Redacted is what the API shows for a webhook secret.
const Redacted = "(redacted)"

// Redacted returns r with webhook secrets replaced by Redacted.
func (r Route) Redacted() Route {
	r.Endpoints = append([]Endpoint(nil), r.Endpoints...)
	for i := range r.Endpoints {
		if r.Endpoints[i].Secret != "" {
			r.Endpoints[i].Secret = Redacted
		}
	}
	return r
}

// keepSecrets copies old's webhook secrets into r's endpoints that carry
// Redacted (a route read back and sent again), matching by URL.
func (r *Route) keepSecrets(old *Route) {
	for i := range r.Endpoints {
		e := &r.Endpoints[i]
		if e.Secret != Redacted {
			continue
		}
		e.Secret = ""
		for _, o := range old.Endpoints {
			if o.Kind == e.Kind && o.URL == e.URL {
				e.Secret = o.Secret
				break
			}
		}
	}
}
