package protocol_test

import (
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// FuzzRegistrationACL checks what a DPS registration connection may do: it
// may publish only register requests and polls that carry a $rid, and a
// filter it may subscribe to never matches a device's, a module's or the
// $iothub topics.
func FuzzRegistrationACL(f *testing.F) {
	f.Fuzz(func(t *testing.T, topic, filter string) {
		if protocol.RegistrationMayPublish(topic) {
			tp, err := protocol.ParseTopic(topic)
			if err != nil || (tp.Kind != protocol.TopicDPSRegister && tp.Kind != protocol.TopicDPSPoll) || tp.RID == "" {
				t.Fatalf("publish to %q allowed; it parses as %+v, %v", topic, tp, err)
			}
			if tp.Kind == protocol.TopicDPSPoll && tp.OperationID == "" {
				t.Fatalf("poll %q allowed without an operationId", topic)
			}
		}
		if !protocol.RegistrationOwnsFilter(filter) {
			return
		}
		if !strings.HasPrefix(filter, "$dps/registrations/res") {
			t.Fatalf("filter %q granted outside $dps/registrations/res", filter)
		}
		for _, other := range []string{"devices/d/messages/devicebound/x", "$iothub/twin/res/200/?$rid=1",
			"$iothub/methods/POST/m/?$rid=1", "$dps/registrations/PUT/iotdps-register/?$rid=1", topic} {
			if strings.HasPrefix(other, "$dps/registrations/res/") {
				continue
			}
			if match(filter, other) {
				t.Fatalf("granted filter %q matches %q", filter, other)
			}
		}
	})
}

// match is MQTT topic matching ('+' one level, '#' the rest).
func match(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}
