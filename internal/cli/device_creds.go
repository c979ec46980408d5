package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

func deviceConnectionString() *command {
	return &command{
		path: "device connection-string", args: "ID", nargs: 1,
		summary: "print the connection string a device connects with",
		help: `The host name is the one the hub tells devices to use (it carries the MQTT
TLS port when that is not 8883). Any Azure IoT device SDK accepts the string;
the device must also trust the hub's CA (ferry-data/pki/ca.pem).

Example:
  ferry device connection-string thermostat-1
  export DEVICE_CONNECTION_STRING="$(ferry device connection-string thermostat-1)"`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			which := fs.String("key", "primary", "which `KEY` to put in the string: primary or secondary")
			asJSON := fs.Bool("json", false, `print {"connectionString": ...}`)
			return func(ctx context.Context, e *env, args []string) error {
				if err := checkWhichKey(*which); err != nil {
					return err
				}
				d, info, err := e.deviceAndHub(ctx, &hf, args[0])
				if err != nil {
					return err
				}
				cs := protocol.ConnectionString{HostName: info.DeviceHostName, DeviceID: d.DeviceID}
				if d.Authentication.Type == registry.AuthSAS {
					if cs.SharedAccessKey, err = deviceKey(d, *which); err != nil {
						return err
					}
				} else {
					cs.X509 = true // the device brings its certificate, as az prints it
				}
				if *asJSON {
					return writeJSON(e.stdout, map[string]string{"connectionString": cs.String()})
				}
				_, err = fmt.Fprintln(e.stdout, cs.String())
				return err
			}
		},
	}
}

func deviceSASToken() *command {
	return &command{
		path: "device sas-token", args: "ID", nargs: 1,
		summary: "print a SAS token a device can connect with",
		help: `The token is signed here with the device's key, read from the hub; it is what
an MQTT client sends as its password (user name: <host>/<ID>/?api-version=2021-04-12).

Example:
  ferry device sas-token thermostat-1
  ferry device sas-token thermostat-1 --ttl 720h --key secondary --json`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var hf hubFlags
			hf.register(fs)
			ttl := fs.Duration("ttl", time.Hour, "how long the token stays valid, a `DURATION` such as 1h or 720h")
			which := fs.String("key", "primary", "which `KEY` signs the token: primary or secondary")
			asJSON := fs.Bool("json", false, `print {"sas": ..., "expiry": ...}`)
			return func(ctx context.Context, e *env, args []string) error {
				if err := checkWhichKey(*which); err != nil {
					return err
				}
				if *ttl <= 0 {
					return usagef("--ttl must be positive")
				}
				d, info, err := e.deviceAndHub(ctx, &hf, args[0])
				if err != nil {
					return err
				}
				if d.Authentication.Type != registry.AuthSAS {
					return fault.Invalidf("device %s authenticates with %s, not with a SAS token", d.DeviceID, d.Authentication.Type)
				}
				b64, err := deviceKey(d, *which)
				if err != nil {
					return err
				}
				key, err := protocol.DecodeKey(b64)
				if err != nil {
					return fmt.Errorf("device %s: %s key: %w", d.DeviceID, *which, err)
				}
				expiry := e.now().Add(*ttl)
				token := protocol.SignSAS(key, protocol.DeviceResource(info.DeviceHostName, d.DeviceID, ""), expiry, "")
				if *asJSON {
					return writeJSON(e.stdout, struct {
						SAS    string    `json:"sas"`
						Expiry time.Time `json:"expiry"`
					}{token, expiry.UTC().Truncate(time.Second)})
				}
				_, err = fmt.Fprintln(e.stdout, token)
				return err
			}
		},
	}
}

// deviceAndHub reads a device and the hub's facts.
func (e *env) deviceAndHub(ctx context.Context, hf *hubFlags, id string) (*registry.Device, *api.HubInfo, error) {
	c, err := e.client(hf)
	if err != nil {
		return nil, nil, err
	}
	d, err := c.GetDevice(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	info, err := c.Hub(ctx)
	if err != nil {
		return nil, nil, err
	}
	if info.DeviceHostName == "" {
		return nil, nil, fmt.Errorf("the hub did not say which host name devices use")
	}
	return d, info, nil
}

// checkWhichKey checks a --key value.
func checkWhichKey(which string) error {
	if which != "primary" && which != "secondary" {
		return usagef("--key must be primary or secondary, not %q", which)
	}
	return nil
}

// deviceKey returns the device's primary or secondary key.
func deviceKey(d *registry.Device, which string) (string, error) {
	var k string
	if sk := d.Authentication.SymmetricKey; sk != nil {
		k = sk.PrimaryKey
		if which == "secondary" {
			k = sk.SecondaryKey
		}
	}
	if k == "" {
		return "", fault.Invalidf("device %s has no %s key", d.DeviceID, which)
	}
	return k, nil
}
