package protocol

import (
	"strings"
	"unicode/utf8"
)

// maxTopicLen is MQTT's limit on a topic name or filter (a 16-bit length).
const maxTopicLen = 65535

// DeviceOwnsFilter reports whether a device (moduleID "") or module may
// subscribe to filter. The rule is the one of an Azure device, widened to
// whole namespaces:
//
//   - a device may use filters under devices/{deviceID}/, for example
//     devices/{d}/messages/devicebound/# or devices/{d}/#;
//   - a module may use filters under devices/{d}/modules/{m}/, for example
//     devices/{d}/modules/{m}/inputs/#, and nothing of its device's;
//   - both may use filters under $iothub/twin/ and $iothub/methods/
//     ($iothub/twin/res/#, $iothub/twin/PATCH/properties/desired/#,
//     $iothub/methods/POST/#): the hub delivers those topics to the one
//     session that asked, so they are private to it.
//
// Everything else is refused: #, +/..., devices/#, devices/+/..., another
// device's topics, $iothub/#, $dps/..., and any filter that is not valid
// MQTT (an empty level is fine, but '+' and '#' must fill a level, and '#'
// must be last). The device and module levels must equal the ids literally.
// An id that contains '+' or '#' can therefore never be matched (such a
// filter level is a wildcard or invalid), so those identities get only the
// $iothub filters and can never reach another device's topics.
//
// Note that a device's namespace contains the topics of its modules, as the
// filter devices/{d}/# does in MQTT.
func DeviceOwnsFilter(deviceID, moduleID, filter string) bool {
	if deviceID == "" || !validFilter(filter) {
		return false
	}
	first, rest, _ := strings.Cut(filter, "/")
	switch first {
	case "devices":
		if !literalID(deviceID) || (moduleID != "" && !literalID(moduleID)) {
			return false
		}
		d, rest, _ := strings.Cut(rest, "/")
		if d != deviceID {
			return false
		}
		if moduleID == "" {
			return true
		}
		m, rest, _ := strings.Cut(rest, "/")
		id, _, _ := strings.Cut(rest, "/")
		return m == "modules" && id == moduleID
	case "$iothub":
		second, _, _ := strings.Cut(rest, "/")
		return second == "twin" || second == "methods"
	}
	return false
}

// DeviceMayPublish reports whether a device (moduleID "") or module may
// publish to topic. A device publishes only what Azure's device protocol
// defines for it: telemetry on its own devices/{d}/messages/events/ topic
// (a module on devices/{d}/modules/{m}/messages/events/), twin GET and
// reported-patch requests, and method responses. Ids are compared
// literally. Topics of other kinds (C2D, twin responses, DPS, ordinary
// broker topics), malformed topics, and names that are not valid MQTT topic
// names (empty, or containing '+', '#' or NUL) are refused. The hub uses
// the same check for a CONNECT's Will topic.
func DeviceMayPublish(deviceID, moduleID, topic string) bool {
	if deviceID == "" || !validTopicName(topic) {
		return false
	}
	t, err := ParseTopic(topic)
	if err != nil {
		return false
	}
	switch t.Kind {
	case TopicTelemetry:
		return t.DeviceID == deviceID && t.ModuleID == moduleID
	case TopicTwinGet, TopicTwinPatchReported, TopicMethodResponse:
		return true
	}
	return false
}

// RegistrationOwnsFilter reports whether a DPS registration session may
// subscribe to filter: only filters under $dps/registrations/res/, such as
// $dps/registrations/res/#. DPS responses are per session, like $iothub.
func RegistrationOwnsFilter(filter string) bool {
	if !validFilter(filter) {
		return false
	}
	return filter == "$dps/registrations/res" || strings.HasPrefix(filter, "$dps/registrations/res/")
}

// RegistrationMayPublish reports whether a DPS registration session may
// publish to topic: only registration requests and operation status polls.
func RegistrationMayPublish(topic string) bool {
	if !validTopicName(topic) {
		return false
	}
	t, err := ParseTopic(topic)
	return err == nil && (t.Kind == TopicDPSRegister || t.Kind == TopicDPSPoll)
}

// literalID reports whether id can appear literally as a filter level: it
// is not empty and has no '/', '+', '#' or NUL.
func literalID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/+#\x00")
}

// validTopicName reports whether s is a valid MQTT 3.1.1 topic name
// (§4.7): 1 to 65535 bytes of UTF-8, with no wildcard and no NUL.
func validTopicName(s string) bool {
	return s != "" && len(s) <= maxTopicLen && utf8.ValidString(s) &&
		!strings.ContainsAny(s, "+#\x00")
}

// validFilter reports whether f is a valid MQTT 3.1.1 topic filter (§4.7):
// 1 to 65535 bytes of UTF-8 with no NUL, '+' filling a whole level, and
// '#' filling the last level.
func validFilter(f string) bool {
	if f == "" || len(f) > maxTopicLen || !utf8.ValidString(f) {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case 0:
			return false
		case '+':
			if (i > 0 && f[i-1] != '/') || (i+1 < len(f) && f[i+1] != '/') {
				return false
			}
		case '#':
			if (i > 0 && f[i-1] != '/') || i+1 != len(f) {
				return false
			}
		}
	}
	return true
}
