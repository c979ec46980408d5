package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadTopic is wrapped by the errors of ParseTopic: a topic in a device
// or hub namespace whose parts are missing or malformed.
var ErrBadTopic = errors.New("protocol: bad topic")

// TopicKind says what a topic is for.
type TopicKind int

// The topic kinds. The first group is what devices publish; the second is
// what the hub (or DPS) publishes to devices.
const (
	TopicUnknown           TopicKind = iota // not a device protocol topic: an ordinary broker topic
	TopicTelemetry                          // devices/{d}[/modules/{m}]/messages/events/{bag}
	TopicTwinGet                            // $iothub/twin/GET/?$rid={rid}
	TopicTwinPatchReported                  // $iothub/twin/PATCH/properties/reported/?$rid={rid}
	TopicMethodResponse                     // $iothub/methods/res/{status}/?$rid={rid}
	TopicDPSRegister                        // $dps/registrations/PUT/iotdps-register/?$rid={rid}
	TopicDPSPoll                            // $dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}

	TopicC2D              // devices/{d}/messages/devicebound/{bag}
	TopicModuleInput      // devices/{d}/modules/{m}/inputs/{input}/{bag}
	TopicTwinResponse     // $iothub/twin/res/{status}/?$rid={rid}[&$version={v}]
	TopicTwinDesiredPatch // $iothub/twin/PATCH/properties/desired/?$version={v}
	TopicMethodRequest    // $iothub/methods/POST/{name}/?$rid={rid}
	TopicDPSResponse      // $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]
)

var topicKindNames = [...]string{"unknown", "telemetry", "twin-get", "twin-patch-reported",
	"method-response", "dps-register", "dps-poll", "c2d", "module-input", "twin-response",
	"twin-desired-patch", "method-request", "dps-response"}

// String returns a short name for the kind, for logs and metrics.
func (k TopicKind) String() string {
	if k >= 0 && int(k) < len(topicKindNames) {
		return topicKindNames[k]
	}
	return fmt.Sprintf("TopicKind(%d)", int(k))
}

// Topic is a parsed device protocol topic. Every string is a substring of
// the parsed topic, taken literally (not percent-decoded).
type Topic struct {
	Kind     TopicKind
	DeviceID string // device id (telemetry, C2D, module input)
	ModuleID string // module id, "" for a device
	// Bag is the raw property bag of a devices/... topic, or the raw query
	// after '?' of a $iothub/... or $dps/... topic.
	Bag    string
	RID    string // $rid of a request or response, exactly as sent: echo it unchanged
	Status int    // status of a method, twin or DPS response
	Method string // method name of a method request, as sent (not decoded)

	Input       string // input name of a module input message
	Version     int64  // $version of a twin response or desired patch; 0 when absent
	OperationID string // operationId of a DPS poll, as sent
	RetryAfter  int    // retry-after of a DPS response, in seconds; 0 when absent
}

// ParseTopic parses an MQTT topic name of the device protocol. Topics
// outside the "devices/", "$iothub/" and "$dps/" namespaces, and
// devices/... topics of no known shape, are ordinary broker topics: they
// give TopicUnknown and a nil error. A topic of a known shape with a bad
// part (an empty device id, a status that is not a number, a request with
// no $rid), and any unrecognised $iothub/ or $dps/ topic, gives an error
// wrapping ErrBadTopic.
//
// The telemetry topic is accepted with or without the slash before an empty
// bag ("devices/d/messages/events"). Everything after "messages/events/" is
// the bag, slashes included. Device and module ids are taken literally, so
// an id with '%', ':' or '@' needs no decoding. Request topics are accepted
// with or without the slash before '?'.
func ParseTopic(topic string) (Topic, error) {
	switch {
	case strings.HasPrefix(topic, "devices/"):
		return parseDeviceTopic(topic)
	case strings.HasPrefix(topic, "$iothub/"):
		return parseIoTHubTopic(topic)
	case strings.HasPrefix(topic, "$dps/"):
		return parseDPSTopic(topic)
	}
	return Topic{}, nil
}

func topicError(topic, problem string) error {
	return fmt.Errorf("%w: %s: %s", ErrBadTopic, quoteShort(topic), problem)
}

// parseDeviceTopic parses the devices/{d}/... namespace.
func parseDeviceTopic(topic string) (Topic, error) {
	var t Topic
	id, rest, ok := strings.Cut(topic[len("devices/"):], "/")
	if !ok {
		return Topic{}, nil
	}
	t.DeviceID = id
	module := false
	if r, ok := strings.CutPrefix(rest, "modules/"); ok {
		if t.ModuleID, rest, ok = strings.Cut(r, "/"); !ok {
			return Topic{}, nil
		}
		module = true
	}
	switch {
	case rest == "messages/events":
		t.Kind = TopicTelemetry
	case strings.HasPrefix(rest, "messages/events/"):
		t.Kind, t.Bag = TopicTelemetry, rest[len("messages/events/"):]
	case !module && rest == "messages/devicebound":
		t.Kind = TopicC2D
	case !module && strings.HasPrefix(rest, "messages/devicebound/"):
		t.Kind, t.Bag = TopicC2D, rest[len("messages/devicebound/"):]
	case module && strings.HasPrefix(rest, "inputs/"):
		t.Kind = TopicModuleInput
		t.Input, t.Bag, _ = strings.Cut(rest[len("inputs/"):], "/")
		if t.Input == "" {
			return Topic{}, topicError(topic, "empty input name")
		}
	default:
		return Topic{}, nil
	}
	if t.DeviceID == "" {
		return Topic{}, topicError(topic, "empty device id")
	}
	if module && t.ModuleID == "" {
		return Topic{}, topicError(topic, "empty module id")
	}
	return t, nil
}

// splitRequest splits "path/?query" (or "path?query") after a namespace
// prefix into the path without its trailing slash and the query.
func splitRequest(rest string) (path, query string) {
	path, query, _ = strings.Cut(rest, "?")
	return strings.TrimSuffix(path, "/"), query
}

// parseIoTHubTopic parses the $iothub/ namespace: twin and method traffic.
func parseIoTHubTopic(topic string) (Topic, error) {
	path, query := splitRequest(topic[len("$iothub/"):])
	t := Topic{Bag: query}
	needRID := true
	switch {
	case path == "twin/GET":
		t.Kind = TopicTwinGet
	case path == "twin/PATCH/properties/reported":
		t.Kind = TopicTwinPatchReported // its $version, if any, is ignored
	case path == "twin/PATCH/properties/desired":
		t.Kind, needRID = TopicTwinDesiredPatch, false
	case strings.HasPrefix(path, "twin/res/"):
		t.Kind = TopicTwinResponse
		if !parseStatus(path[len("twin/res/"):], &t.Status) {
			return Topic{}, topicError(topic, "status is not a number")
		}
	case strings.HasPrefix(path, "methods/res/"):
		t.Kind = TopicMethodResponse
		if !parseStatus(path[len("methods/res/"):], &t.Status) {
			return Topic{}, topicError(topic, "status is not a number")
		}
	case strings.HasPrefix(path, "methods/POST/"):
		t.Kind, t.Method = TopicMethodRequest, path[len("methods/POST/"):]
		if t.Method == "" || strings.IndexByte(t.Method, '/') >= 0 {
			return Topic{}, topicError(topic, "bad method name")
		}
	default:
		return Topic{}, topicError(topic, "not a twin or method topic")
	}
	if needRID {
		if t.RID = queryParam(query, "$rid", "%24rid"); t.RID == "" {
			return Topic{}, topicError(topic, "missing $rid")
		}
	}
	if t.Kind == TopicTwinResponse || t.Kind == TopicTwinDesiredPatch {
		if v := queryParam(query, "$version", "%24version"); v != "" && !parseInt64(v, &t.Version) {
			return Topic{}, topicError(topic, "$version is not a number")
		}
	}
	return t, nil
}

// parseDPSTopic parses the $dps/ namespace: device provisioning.
func parseDPSTopic(topic string) (Topic, error) {
	path, query := splitRequest(topic[len("$dps/"):])
	t := Topic{Bag: query}
	switch {
	case path == "registrations/PUT/iotdps-register":
		t.Kind = TopicDPSRegister
	case path == "registrations/GET/iotdps-get-operationstatus":
		t.Kind = TopicDPSPoll
		if t.OperationID = queryParam(query, "operationId", ""); t.OperationID == "" {
			return Topic{}, topicError(topic, "missing operationId")
		}
	case strings.HasPrefix(path, "registrations/res/"):
		t.Kind = TopicDPSResponse
		if !parseStatus(path[len("registrations/res/"):], &t.Status) {
			return Topic{}, topicError(topic, "status is not a number")
		}
		if v := queryParam(query, "retry-after", ""); v != "" && !parseStatus(v, &t.RetryAfter) {
			return Topic{}, topicError(topic, "retry-after is not a number")
		}
	default:
		return Topic{}, topicError(topic, "not a provisioning topic")
	}
	if t.RID = queryParam(query, "$rid", "%24rid"); t.RID == "" {
		return Topic{}, topicError(topic, "missing $rid")
	}
	return t, nil
}

// queryParam returns the raw value of the first item of query named name
// (or alt, its percent-encoded spelling, when alt is not empty).
func queryParam(query, name, alt string) string {
	for query != "" {
		var item string
		item, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(item, "=")
		if k == name || (alt != "" && k == alt) {
			return v
		}
	}
	return ""
}

// parseStatus parses a status code: 1 to 9 decimal digits, no sign, no
// leading zero (so that formatting it again gives the same text).
func parseStatus(s string, dst *int) bool {
	var v int64
	if len(s) > 9 || !parseInt64(s, &v) {
		return false
	}
	*dst = int(v)
	return true
}

// parseInt64 parses a canonical non-negative decimal: digits only, no sign,
// no leading zero, at most 18 digits (so it cannot overflow).
func parseInt64(s string, dst *int64) bool {
	if s == "" || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		v = v*10 + int64(c-'0')
	}
	*dst = v
	return true
}
