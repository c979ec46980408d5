package protocol

import "strconv"

// The formatters below build topics for ParseTopic to read. Ids, names and
// $rid values are written as given, not percent-encoded: the SDKs match them
// literally (a $rid is echoed exactly as the device sent it). Callers must
// not pass a '/' in an id or name, or a '?' or '&' in a $rid.

// TelemetryTopic returns the topic a device (moduleID "") or module sends
// telemetry on: devices/{d}[/modules/{m}]/messages/events/{bag}. The slash
// before the bag is always written.
func TelemetryTopic(deviceID, moduleID string, p Properties) string {
	b := make([]byte, 0, 64)
	b = appendIdentity(b, deviceID, moduleID)
	b = append(b, "/messages/events/"...)
	return string(p.AppendBag(b))
}

// C2DTopic returns the topic a cloud-to-device message is delivered on:
// devices/{d}/messages/devicebound/{bag}. The slash before the bag is
// always written, even for an empty bag, because Node dispatches C2D only on
// topics matching ^devices/.*/messages/devicebound/.*$ (PROTOCOL.md §0.5).
func C2DTopic(deviceID string, p Properties) string {
	b := make([]byte, 0, 64)
	b = appendIdentity(b, deviceID, "")
	b = append(b, "/messages/devicebound/"...)
	return string(p.AppendBag(b))
}

// ModuleInputTopic returns the topic a module receives a message for one of
// its inputs on: devices/{d}/modules/{m}/inputs/{input}/{bag}.
func ModuleInputTopic(deviceID, moduleID, input string, p Properties) string {
	b := make([]byte, 0, 64)
	b = appendIdentity(b, deviceID, moduleID)
	b = append(b, "/inputs/"...)
	b = append(b, input...)
	b = append(b, '/')
	return string(p.AppendBag(b))
}

func appendIdentity(b []byte, deviceID, moduleID string) []byte {
	b = append(b, "devices/"...)
	b = append(b, deviceID...)
	if moduleID != "" {
		b = append(b, "/modules/"...)
		b = append(b, moduleID...)
	}
	return b
}

// MethodRequestTopic returns the topic of a direct method request:
// $iothub/methods/POST/{name}/?$rid={rid}. The slash after the name is
// required: Python reads the name as split('/')[3].
func MethodRequestTopic(name, rid string) string {
	return "$iothub/methods/POST/" + name + "/?$rid=" + rid
}

// MethodResponseTopic returns the topic a device answers a method on:
// $iothub/methods/res/{status}/?$rid={rid}.
func MethodResponseTopic(status int, rid string) string {
	return "$iothub/methods/res/" + strconv.Itoa(status) + "/?$rid=" + rid
}

// TwinGetTopic returns the topic of a twin GET request:
// $iothub/twin/GET/?$rid={rid}.
func TwinGetTopic(rid string) string {
	return "$iothub/twin/GET/?$rid=" + rid
}

// TwinPatchReportedTopic returns the topic of a reported-properties patch:
// $iothub/twin/PATCH/properties/reported/?$rid={rid}.
func TwinPatchReportedTopic(rid string) string {
	return "$iothub/twin/PATCH/properties/reported/?$rid=" + rid
}

// TwinResponseTopic returns the topic of a twin response:
// $iothub/twin/res/{status}/?$rid={rid}, followed by &$version={version}
// unless version is 0 (a reported patch's 204 carries the new reported
// version; a GET's 200 carries none).
func TwinResponseTopic(status int, rid string, version int64) string {
	s := "$iothub/twin/res/" + strconv.Itoa(status) + "/?$rid=" + rid
	if version != 0 {
		s += "&$version=" + strconv.FormatInt(version, 10)
	}
	return s
}

// DesiredPatchTopic returns the topic of a desired-properties notification:
// $iothub/twin/PATCH/properties/desired/?$version={version}. The body must
// carry "$version" as well; Python reads it from there.
func DesiredPatchTopic(version int64) string {
	return "$iothub/twin/PATCH/properties/desired/?$version=" + strconv.FormatInt(version, 10)
}

// DPSRegisterTopic returns the topic of a DPS registration request:
// $dps/registrations/PUT/iotdps-register/?$rid={rid}.
func DPSRegisterTopic(rid string) string {
	return "$dps/registrations/PUT/iotdps-register/?$rid=" + rid
}

// DPSPollTopic returns the topic of a DPS operation status poll:
// $dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}.
func DPSPollTopic(rid, operationID string) string {
	return "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=" + rid + "&operationId=" + operationID
}

// DPSResponseTopic returns the topic of a DPS response:
// $dps/registrations/res/{status}/?$rid={rid}, followed by
// &retry-after={seconds} when retryAfter is above 0 (with a 202 while the
// registration is assigning, or with a 429).
func DPSResponseTopic(status int, rid string, retryAfter int) string {
	s := "$dps/registrations/res/" + strconv.Itoa(status) + "/?$rid=" + rid
	if retryAfter > 0 {
		s += "&retry-after=" + strconv.Itoa(retryAfter)
	}
	return s
}
