package protocol_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// nodeUsername is the username the Node SDK sent in PROTOCOL.md §1.2.
const nodeUsername = "localhost:8884/dev1/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1" +
	"&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)"

func TestParseUsername(t *testing.T) {
	type U = protocol.Username
	type M = map[string]string
	const thermostat = "dtmi:com:example:Thermostat;1"
	tests := []struct {
		name, in string
		want     U
	}{
		{"node", nodeUsername, U{
			Host: "localhost:8884", DeviceID: "dev1", APIVersion: "2021-04-12", ModelID: thermostat,
			ClientType: "azure-iot-device/1.18.4 (node v20.20.2; Debian 12; x64)",
			Params: M{"api-version": "2021-04-12", "model-id": thermostat,
				"DeviceClientType": "azure-iot-device/1.18.4 (node v20.20.2; Debian 12; x64)"},
		}},
		{"python pnp", "myhub.azure-devices.net/dev1/?api-version=2020-09-30&DeviceClientType=py-azure-iot-device%2F2.14.0" +
			"&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1", U{
			Host: "myhub.azure-devices.net", DeviceID: "dev1", APIVersion: "2020-09-30", ModelID: thermostat,
			ClientType: "py-azure-iot-device/2.14.0",
			Params:     M{"api-version": "2020-09-30", "DeviceClientType": "py-azure-iot-device/2.14.0", "model-id": thermostat},
		}},
		{"python plain", "myhub.azure-devices.net/dev1/?api-version=2019-10-01&DeviceClientType=py%2B%20x", U{
			Host: "myhub.azure-devices.net", DeviceID: "dev1", APIVersion: "2019-10-01", ClientType: "py+ x",
			Params: M{"api-version": "2019-10-01", "DeviceClientType": "py+ x"},
		}},
		{"docs module", "myhub/dev1/m1/?api-version=2021-04-12", U{
			Host: "myhub", DeviceID: "dev1", ModuleID: "m1", APIVersion: "2021-04-12",
			Params: M{"api-version": "2021-04-12"},
		}},
		{"old form without ?", "myhub.azure-devices.net/dev1/api-version=2016-11-14", U{
			Host: "myhub.azure-devices.net", DeviceID: "dev1", APIVersion: "2016-11-14",
			Params: M{"api-version": "2016-11-14"},
		}},
		{"old form module", "h/dev1/m1/api-version=2016-11-14&x=a/b", U{
			Host: "h", DeviceID: "dev1", ModuleID: "m1", APIVersion: "2016-11-14",
			Params: M{"api-version": "2016-11-14", "x": "a/b"},
		}},
		{"empty query", "h/dev1/?", U{Host: "h", DeviceID: "dev1"}},
		{"device id taken literally", "h/a%3Ab@c:d?/?api-version=1", U{
			Host: "h", DeviceID: "a%3Ab@c:d?", APIVersion: "1", Params: M{"api-version": "1"},
		}},
		{"device id starting with ?", "h/?x/?api-version=1", U{
			Host: "h", DeviceID: "?x", APIVersion: "1", Params: M{"api-version": "1"},
		}},
		{"gateway: host is HostName", "myhub.azure-devices.net/dev1/?api-version=2021-04-12", U{
			Host: "myhub.azure-devices.net", DeviceID: "dev1", APIVersion: "2021-04-12", Params: M{"api-version": "2021-04-12"},
		}},
		{"odd params", "h/d/?api-version=1&api-version=2&flag&=x&bad=%zz&&%24k=v", U{
			Host: "h", DeviceID: "d", APIVersion: "1",
			Params: M{"api-version": "1", "flag": "", "bad": "%zz", "$k": "v"},
		}},
		{"dps node", "0ne00000000/registrations/reg1/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1", U{
			DPS: true, IDScope: "0ne00000000", RegistrationID: "reg1", APIVersion: "2019-03-31",
			ClientType: "azure-iot-provisioning-device/1.9.1",
			Params:     M{"api-version": "2019-03-31", "ClientVersion": "azure-iot-provisioning-device/1.9.1"},
		}},
		{"dps docs", "0ne00000000/registrations/reg1/api-version=2019-03-31", U{
			DPS: true, IDScope: "0ne00000000", RegistrationID: "reg1", APIVersion: "2019-03-31",
			Params: M{"api-version": "2019-03-31"},
		}},
		{"dps with ?", "0ne00000000/registrations/reg1/?api-version=2019-03-31&ClientVersion=py", U{
			DPS: true, IDScope: "0ne00000000", RegistrationID: "reg1", APIVersion: "2019-03-31", ClientType: "py",
			Params: M{"api-version": "2019-03-31", "ClientVersion": "py"},
		}},
		{"device named registrations", "h/registrations/?api-version=1", U{
			Host: "h", DeviceID: "registrations", APIVersion: "1", Params: M{"api-version": "1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.ParseUsername(tt.in)
			if err != nil {
				t.Fatalf("ParseUsername(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseUsername(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseUsernameErrors(t *testing.T) {
	tests := []struct{ in, wantText string }{
		{"", "no host"},
		{"dev1", "no host"},
		{"/dev1/?api-version=1", "no host"},
		{"h//?api-version=1", "empty device id"},
		{"h/dev1", "no query"},
		{"h/dev1/", "no query"},
		{"h/dev1/m1", "no query"},
		{"h/dev1//?api-version=1", "empty module id"},
		{"h/dev1/m1/x/?api-version=1", "too many path levels"},
		{"h/dev1/m1/", "no query"},
		{"h/dev1/DeviceClientType=x&api-version=1", "no query"},
	}
	for _, tt := range tests {
		got, err := protocol.ParseUsername(tt.in)
		if !errors.Is(err, protocol.ErrBadUsername) {
			t.Errorf("ParseUsername(%q) = %+v, %v; want an error wrapping ErrBadUsername", tt.in, got, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantText) || !strings.HasPrefix(err.Error(), "protocol: bad username: ") {
			t.Errorf("ParseUsername(%q) error %q lacks %q", tt.in, err, tt.wantText)
		}
	}
}
