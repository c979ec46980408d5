package protocol_test

import (
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

func TestDeviceOwnsFilter(t *testing.T) {
	tests := []struct {
		device, module, filter string
		want                   bool
	}{
		// What the SDKs subscribe to.
		{"dev1", "", "devices/dev1/messages/devicebound/#", true},
		{"dev1", "", "$iothub/twin/res/#", true},
		{"dev1", "", "$iothub/twin/PATCH/properties/desired/#", true},
		{"dev1", "", "$iothub/methods/POST/#", true},
		{"dev1", "m1", "devices/dev1/modules/m1/inputs/#", true},
		{"dev1", "m1", "devices/dev1/modules/m1/#", true},
		{"dev1", "m1", "$iothub/methods/POST/#", true},
		{"dev1", "m1", "$iothub/twin/res/#", true},
		// The device's own namespace, wildcards inside it.
		{"dev1", "", "devices/dev1/#", true},
		{"dev1", "", "devices/dev1/+/devicebound/#", true},
		{"dev1", "", "devices/dev1", true},
		{"dev1", "", "$iothub/twin/#", true},
		{"dev1", "", "$iothub/methods/+/#", true},
		{"a:b@c%d", "", "devices/a:b@c%d/messages/devicebound/#", true},
		// Other devices, broad and invalid filters.
		{"dev1", "", "#", false},
		{"dev1", "", "+", false},
		{"dev1", "", "+/dev1/messages/devicebound/#", false},
		{"dev1", "", "devices/#", false},
		{"dev1", "", "devices/+/messages/devicebound/#", false},
		{"dev1", "", "devices/+", false},
		{"dev1", "", "devices/dev2/messages/devicebound/#", false},
		{"dev1", "", "devices/dev10/#", false},
		{"dev1", "", "devices/dev/#", false},
		{"dev1", "", "devices/dev1+/#", false},
		{"dev1", "", "devices/dev1#", false},
		{"dev1", "", "devices/dev1/#/x", false},
		{"dev1", "", "devices/dev1/a+/x", false},
		{"dev1", "", "devices/Dev1/#", false},
		{"dev1", "", "", false},
		{"dev1", "", "devices/dev1/\x00", false},
		{"dev1", "", "devices/dev1/\xff", false},
		{"", "", "devices//#", false},
		{"", "", "$iothub/twin/res/#", false},
		{"dev1", "", "$iothub/#", false},
		{"dev1", "", "$iothub/+/res/#", false},
		{"dev1", "", "$iothub/other/#", false},
		{"dev1", "", "$dps/registrations/res/#", false},
		{"dev1", "", "$SYS/#", false},
		{"dev1", "", "$share/g/devices/dev1/#", false},
		{"dev1", "", "sensors/#", false},
		// Modules stay in their own namespace.
		{"dev1", "m1", "devices/dev1/messages/devicebound/#", false},
		{"dev1", "m1", "devices/dev1/#", false},
		{"dev1", "m1", "devices/dev1/modules/#", false},
		{"dev1", "m1", "devices/dev1/modules/+/inputs/#", false},
		{"dev1", "m1", "devices/dev1/modules/m2/inputs/#", false},
		{"dev1", "m1", "devices/dev1/modules/m10/#", false},
		{"dev1", "m1", "devices/dev1/modules", false},
		{"dev1", "m1", "devices/dev2/modules/m1/#", false},
		// Ids containing wildcards or slashes are never matched in devices/.
		{"+", "", "devices/+/messages/devicebound/#", false},
		{"#", "", "devices/#", false},
		{"a+b", "", "devices/a+b/messages/devicebound/#", false},
		{"a#", "", "devices/a#", false},
		{"a/b", "", "devices/a/b/#", false},
		{"a/b", "", "devices/a/#", false},
		{"dev1", "+", "devices/dev1/modules/+/inputs/#", false},
		{"dev1", "m/x", "devices/dev1/modules/m/x/#", false},
		{"+", "", "$iothub/methods/POST/#", true}, // the session's own topics still work
	}
	for _, tt := range tests {
		if got := protocol.DeviceOwnsFilter(tt.device, tt.module, tt.filter); got != tt.want {
			t.Errorf("DeviceOwnsFilter(%q, %q, %q) = %v, want %v", tt.device, tt.module, tt.filter, got, tt.want)
		}
	}
}

func TestDeviceMayPublish(t *testing.T) {
	tests := []struct {
		device, module, topic string
		want                  bool
	}{
		{"dev1", "", "devices/dev1/messages/events/" + nodeBag, true},
		{"dev1", "", "devices/dev1/messages/events/", true},
		{"dev1", "", "devices/dev1/messages/events", true},
		{"dev1", "", "$iothub/twin/GET/?$rid=1", true},
		{"dev1", "", "$iothub/twin/PATCH/properties/reported/?$rid=1", true},
		{"dev1", "", "$iothub/methods/res/200/?$rid=1", true},
		{"dev1", "m1", "devices/dev1/modules/m1/messages/events/%24.on=out1", true},
		{"dev1", "m1", "$iothub/twin/GET/?$rid=1", true},
		{"a:b@c%d", "", "devices/a:b@c%d/messages/events/", true},

		{"dev1", "", "devices/dev2/messages/events/", false},
		{"dev1", "", "devices/dev10/messages/events/", false},
		{"dev1", "", "devices/dev1/modules/m1/messages/events/", false},
		{"dev1", "m1", "devices/dev1/messages/events/", false},
		{"dev1", "m1", "devices/dev1/modules/m2/messages/events/", false},
		{"dev1", "", "devices/dev1/messages/devicebound/", false},
		{"dev1", "m1", "devices/dev1/modules/m1/inputs/in/", false},
		{"dev1", "", "devices/dev1/other", false},
		{"dev1", "", "devices//messages/events/", false},
		{"dev1", "", "$iothub/twin/res/200/?$rid=1", false},
		{"dev1", "", "$iothub/twin/PATCH/properties/desired/?$version=2", false},
		{"dev1", "", "$iothub/methods/POST/reboot/?$rid=1", false},
		{"dev1", "", "$iothub/methods/res/abc/?$rid=1", false},
		{"dev1", "", "$iothub/twin/GET/", false},
		{"dev1", "", "$dps/registrations/PUT/iotdps-register/?$rid=1", false},
		{"dev1", "", "sensors/temp", false},
		{"dev1", "", "", false},
		{"dev1", "", "devices/dev1/messages/events/#", false},
		{"dev1", "", "devices/dev1/messages/events/a+b", false},
		{"dev1", "", "devices/dev1/messages/events/\x00", false},
		{"dev1", "", "devices/dev1/messages/events/\xff", false},
		{"", "", "devices//messages/events/", false},
		{"", "", "$iothub/twin/GET/?$rid=1", false},
		{"a+b", "", "devices/a+b/messages/events/", false}, // not a valid MQTT topic name
		{"a+b", "", "$iothub/twin/GET/?$rid=1", true},
	}
	for _, tt := range tests {
		if got := protocol.DeviceMayPublish(tt.device, tt.module, tt.topic); got != tt.want {
			t.Errorf("DeviceMayPublish(%q, %q, %q) = %v, want %v", tt.device, tt.module, tt.topic, got, tt.want)
		}
	}
	long := "devices/dev1/messages/events/k=" + strings.Repeat("v", 65536)
	if protocol.DeviceMayPublish("dev1", "", long) {
		t.Error("DeviceMayPublish accepts a topic longer than 65535 bytes")
	}
}

func TestRegistrationACL(t *testing.T) {
	for _, tt := range []struct {
		filter string
		want   bool
	}{
		{"$dps/registrations/res/#", true},
		{"$dps/registrations/res/+/#", true},
		{"$dps/registrations/res", true},
		{"$dps/registrations/#", false},
		{"$dps/#", false},
		{"#", false},
		{"$dps/registrations/resX/#", false},
		{"$dps/registrations/res/a#", false},
		{"$iothub/twin/res/#", false},
	} {
		if got := protocol.RegistrationOwnsFilter(tt.filter); got != tt.want {
			t.Errorf("RegistrationOwnsFilter(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
	for _, tt := range []struct {
		topic string
		want  bool
	}{
		{"$dps/registrations/PUT/iotdps-register/?$rid=1", true},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=op", true},
		{"$dps/registrations/res/200/?$rid=1", false},
		{"$dps/registrations/PUT/iotdps-register/", false},
		{"$iothub/twin/GET/?$rid=1", false},
		{"devices/reg1/messages/events/", false},
		{"$dps/registrations/PUT/iotdps-register/?$rid=#", false},
	} {
		if got := protocol.RegistrationMayPublish(tt.topic); got != tt.want {
			t.Errorf("RegistrationMayPublish(%q) = %v, want %v", tt.topic, got, tt.want)
		}
	}
}
