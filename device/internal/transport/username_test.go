package transport

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// TestUsernameModelID: the model id travels in the username in a form the
// hub's parser (and Azure's) reads back unchanged.
func TestUsernameModelID(t *testing.T) {
	for _, c := range []Config{
		{Host: "hub.example:8883", DeviceID: "d1"},
		{Host: "hub.example", DeviceID: "d1", ModuleID: "m1", ModelID: "dtmi:com:example:Thermostat;1"},
	} {
		u, err := protocol.ParseUsername(c.username())
		if err != nil {
			t.Fatalf("ParseUsername(%q): %v", c.username(), err)
		}
		if u.ModelID != c.ModelID || u.DeviceID != c.DeviceID || u.ModuleID != c.ModuleID || u.APIVersion != "2021-04-12" {
			t.Fatalf("%q parsed as %+v", c.username(), u)
		}
	}
}
