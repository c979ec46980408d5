package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadUsername is wrapped by the errors of ParseUsername.
var ErrBadUsername = errors.New("protocol: bad username")

// Username is a parsed MQTT CONNECT username (PROTOCOL.md §1.2, §4).
type Username struct {
	Host     string // hub host name as the device wrote it, port included ("localhost:8884")
	DeviceID string // device id, taken literally; "" for DPS
	ModuleID string // module id, "" for a device

	APIVersion string // api-version parameter
	ModelID    string // model-id parameter (PnP), decoded
	ClientType string // DeviceClientType parameter, or DPS's ClientVersion

	// Params holds every query parameter, keys and values percent-decoded;
	// nil when there are none. The first of repeated keys wins.
	Params map[string]string

	DPS            bool   // a DPS username: {idScope}/registrations/{registrationId}/...
	IDScope        string // DPS id scope
	RegistrationID string // DPS registration id
}

// ParseUsername parses a CONNECT username in any of the forms the SDKs and
// the docs use:
//
//	{host}/{deviceId}/?api-version=2021-04-12&model-id=dtmi:...;1&DeviceClientType=...   (Node: model-id raw)
//	{host}/{deviceId}/?api-version=2020-09-30&DeviceClientType=...&model-id=dtmi%3A...   (Python: model-id encoded)
//	{host}/{deviceId}/{moduleId}/?api-version=...                                        (module)
//	{host}/{deviceId}/api-version=2016-11-14                                             (old form, no '?')
//	{idScope}/registrations/{registrationId}/api-version=2019-03-31&ClientVersion=...    (DPS, with or without '?')
//
// The path is split on '/': the host, the device id, then either the query
// (after "?" or starting with "api-version") or a module id followed by the
// query. Reading the path level by level, instead of cutting at the first
// "/?", keeps a device id that starts with '?' (Azure allows it) intact. A
// username whose device level is "registrations" and that has a third level
// is read as DPS; a device named "registrations" can still connect, but not
// its modules. Ids are taken literally. Query parameters are split on '&'
// and '=' and percent-decoded ('+' stays '+'); a parameter with bad
// percent-encoding keeps its raw text, so an odd user agent cannot stop a
// device from connecting. Unknown parameters are kept in Params.
//
// Errors wrap ErrBadUsername: no query part, an empty host or id, or extra
// path levels.
func ParseUsername(u string) (Username, error) {
	host, rest, ok := strings.Cut(u, "/")
	if !ok || host == "" {
		return Username{}, usernameError("no host")
	}
	dev, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Username{}, usernameError(errNoQuery)
	}
	if dev == "" {
		return Username{}, usernameError("empty device id")
	}
	var mod string
	query, ok := usernameQuery(rest)
	if !ok {
		mod, rest, ok = strings.Cut(rest, "/")
		if !ok {
			return Username{}, usernameError(errNoQuery)
		}
		if mod == "" {
			return Username{}, usernameError("empty module id")
		}
		if query, ok = usernameQuery(rest); !ok {
			if rest == "" {
				return Username{}, usernameError(errNoQuery)
			}
			return Username{}, usernameError("too many path levels before the query")
		}
	}
	var n Username
	if dev == "registrations" && mod != "" {
		n.DPS, n.IDScope, n.RegistrationID = true, host, mod
	} else {
		n.Host, n.DeviceID, n.ModuleID = host, dev, mod
	}
	n.Params = parseQuery(query)
	n.APIVersion = n.Params["api-version"]
	n.ModelID = n.Params["model-id"]
	n.ClientType = n.Params["DeviceClientType"]
	if n.ClientType == "" {
		n.ClientType = n.Params["ClientVersion"]
	}
	return n, nil
}

const errNoQuery = "no query (expected {host}/{deviceId}/?api-version=...)"

func usernameError(problem string) error {
	return fmt.Errorf("%w: %s", ErrBadUsername, problem)
}

// usernameQuery returns the query of rest when rest starts one: "?..." or
// the old form without '?', "api-version...".
func usernameQuery(rest string) (string, bool) {
	if q, ok := strings.CutPrefix(rest, "?"); ok {
		return q, true
	}
	if strings.HasPrefix(rest, "api-version") {
		return rest, true
	}
	return "", false
}

// parseQuery splits a username query into decoded parameters; see
// ParseUsername. It returns nil for a query without parameters.
func parseQuery(q string) map[string]string {
	var m map[string]string
	for q != "" {
		var item string
		item, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(item, "=")
		if dk, ok := unescape(k); ok {
			k = dk
		}
		if k == "" {
			continue
		}
		if dv, ok := unescape(v); ok {
			v = dv
		}
		if m == nil {
			m = make(map[string]string, 4)
		}
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}
