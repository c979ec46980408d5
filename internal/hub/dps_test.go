package hub_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// DPS over MQTT at the protocol level: the responses' topics and bodies as
// PROTOCOL.md §4 says Node and Python parse them, and what bad input gets.

type dpsFixture struct {
	h        *hubtest.Hub
	scope    string
	groupKey []byte
}

func newDPSFixture(t *testing.T) *dpsFixture {
	t.Helper()
	h := hubtest.Start(t)
	ctx := context.Background()
	info, err := h.Client.DPSInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Client.PutEnrollmentGroup(ctx, provision.EnrollmentGroup{EnrollmentGroupID: "raw"}, false)
	if err != nil {
		t.Fatal(err)
	}
	k, err := protocol.DecodeKey(g.Attestation.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	return &dpsFixture{h: h, scope: info.IDScope, groupKey: k}
}

// nodeToken signs as the Node SDK does: sr raw (and signed raw),
// skn=registration, in Node's field order.
func (f *dpsFixture) nodeToken(reg string) string {
	key, _ := protocol.DecodeKey(protocol.DeriveDeviceKey(f.groupKey, reg))
	sr := f.scope + "/registrations/" + reg
	se := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&skn=registration&se=" + se
}

// pythonToken signs as the Python SDK does: sr percent-encoded, no skn.
func (f *dpsFixture) pythonToken(reg string) string {
	key, _ := protocol.DecodeKey(protocol.DeriveDeviceKey(f.groupKey, reg))
	return protocol.SignSAS(key, protocol.RegistrationResource(f.scope, reg), time.Now().Add(time.Hour), "")
}

func (f *dpsFixture) dial(t *testing.T, reg, password string, version byte) *hubtest.Conn {
	t.Helper()
	c, code, err := hubtest.Dial(f.h.MQTTAddr("tls").String(), f.h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: reg, Clean: true, Version: version, Keepalive: 60,
		Username: f.scope + "/registrations/" + reg + "/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1",
		Password: password,
	})
	if err != nil || code != 0 {
		t.Fatalf("DPS CONNECT of %s: code %#x, %v", reg, code, err)
	}
	t.Cleanup(c.Close)
	codes, err := c.Subscribe("$dps/registrations/res/#")
	if err != nil || len(codes) != 1 || codes[0] != 1 {
		t.Fatalf("SUBSCRIBE: %v %v", codes, err)
	}
	return c
}

type dpsResponse struct {
	status int
	query  string
	body   map[string]any
}

// next reads the next response (skipping PUBACKs).
func nextResponse(t *testing.T, c *hubtest.Conn) dpsResponse {
	t.Helper()
	for {
		pk, err := c.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("waiting for a DPS response: %v", err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		tp, err := protocol.ParseTopic(pk.TopicName)
		if err != nil || tp.Kind != protocol.TopicDPSResponse {
			t.Fatalf("response topic %q: %v", pk.TopicName, err)
		}
		// As Node parses it: /^\$dps\/registrations\/res\/(.*)\/\?(.*)$/ and JSON.parse(payload).
		_, query, _ := strings.Cut(pk.TopicName, "/?")
		var body map[string]any
		if err := json.Unmarshal(pk.Payload, &body); err != nil {
			t.Fatalf("response body %q is not JSON: %v", pk.Payload, err)
		}
		return dpsResponse{status: tp.Status, query: query, body: body}
	}
}

func (r dpsResponse) errorCode() int {
	n, _ := r.body["errorCode"].(float64)
	return int(n)
}

// TestDPSProtocolFlow: register (Node's body) → 202 with an operation id →
// poll → 200 with the whole registration state; Python's token and body.
func TestDPSProtocolFlow(t *testing.T) {
	f := newDPSFixture(t)
	for _, tc := range []struct {
		name, reg, password, body string
		version                   byte
	}{
		{"node", "raw-node", "", `{"registrationId":"raw-node","payload":{"modelId":"dtmi:com:example:Thermostat;1"}}`, 4},
		{"python", "raw-py", "", `{"payload": null, "registrationId": "raw-py"}`, 4},
		{"mqtt5", "raw-v5", "", `{"registrationId":"raw-v5"}`, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pw := f.nodeToken(tc.reg)
			if tc.name == "python" {
				pw = f.pythonToken(tc.reg)
			}
			c := f.dial(t, tc.reg, pw, tc.version)
			if code, err := c.Publish(protocol.DPSRegisterTopic("1"), []byte(tc.body), 1, false); err != nil || code != 0 {
				t.Fatalf("register PUBACK %#x, %v", code, err)
			}
			r := nextResponse(t, c)
			opID, _ := r.body["operationId"].(string)
			if r.status != 202 || r.body["status"] != "assigning" || opID == "" || !strings.Contains(r.query, "$rid=1") ||
				!strings.Contains(r.query, "retry-after=") {
				t.Fatalf("register answer %d ?%s %v", r.status, r.query, r.body)
			}
			if _, err := c.Publish(protocol.DPSPollTopic("2", opID), []byte(" "), 1, false); err != nil {
				t.Fatal(err)
			}
			r = nextResponse(t, c)
			for r.status == 202 { // still assigning: poll again
				if _, err := c.Publish(protocol.DPSPollTopic("3", opID), []byte(" "), 1, false); err != nil {
					t.Fatal(err)
				}
				r = nextResponse(t, c)
			}
			st, _ := r.body["registrationState"].(map[string]any)
			if r.status != 200 || r.body["status"] != "assigned" || r.body["operationId"] != opID || st == nil {
				t.Fatalf("poll answer %d %v", r.status, r.body)
			}
			for k, want := range map[string]string{"registrationId": tc.reg, "deviceId": tc.reg, "assignedHub": f.h.DeviceHost(),
				"status": "assigned", "substatus": "initialAssignment"} {
				if st[k] != want {
					t.Errorf("registrationState.%s = %v, want %q", k, st[k], want)
				}
			}
			for _, k := range []string{"createdDateTimeUtc", "lastUpdatedDateTimeUtc", "etag"} {
				if s, _ := st[k].(string); s == "" {
					t.Errorf("registrationState.%s missing: %v", k, st)
				}
			}
		})
	}
}

// TestDPSBadInput: malformed requests get 4xx answers with errorCode and
// message and create nothing; a foreign topic ends the connection.
func TestDPSBadInput(t *testing.T) {
	f := newDPSFixture(t)
	c := f.dial(t, "bad-1", f.nodeToken("bad-1"), 4)
	big := `{"registrationId":"bad-1","payload":{"x":"` + strings.Repeat("a", 9<<10) + `"}}`
	bigPayload := `{"registrationId":"bad-1","payload":{"x":"` + strings.Repeat("a", 5<<10) + `"}}`
	for i, tc := range []struct {
		name, topic, body string
		status            int
	}{
		{"not JSON", protocol.DPSRegisterTopic("1"), `registrationId=bad-1`, 400},
		{"JSON array", protocol.DPSRegisterTopic("2"), `["bad-1"]`, 400},
		{"no registrationId", protocol.DPSRegisterTopic("3"), `{"payload":null}`, 400},
		{"other registrationId", protocol.DPSRegisterTopic("4"), `{"registrationId":"bad-2"}`, 400},
		{"payload not an object", protocol.DPSRegisterTopic("5"), `{"registrationId":"bad-1","payload":[1,2]}`, 400},
		{"modelId not a DTMI", protocol.DPSRegisterTopic("6"), `{"registrationId":"bad-1","payload":{"modelId":"thermostat"}}`, 400},
		{"oversize body", protocol.DPSRegisterTopic("7"), big, 413},
		{"oversize payload", protocol.DPSRegisterTopic("8"), bigPayload, 413},
		{"unknown operation", protocol.DPSPollTopic("9", "4.0000000000000000.00000000-0000-0000-0000-000000000000"), " ", 404},
	} {
		if i == 5 {
			time.Sleep(1500 * time.Millisecond) // stay under the request rate
		}
		if _, err := c.Publish(tc.topic, []byte(tc.body), 1, false); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := nextResponse(t, c)
		msg, _ := r.body["message"].(string)
		if r.status != tc.status || r.errorCode()/1000 != tc.status || msg == "" {
			t.Errorf("%s: %d %v, want %d with errorCode and message", tc.name, r.status, r.body, tc.status)
		} else {
			t.Logf("%s: %d %s", tc.name, r.status, msg)
		}
	}
	if _, err := f.h.Client.GetDevice(context.Background(), "bad-1"); err == nil {
		t.Error("malformed registrations created the device")
	}

	// A subscription outside $dps/registrations/res/ is refused.
	if codes, err := c.Subscribe("devices/bad-1/messages/devicebound/#"); err != nil || codes[0] != 0x80 {
		t.Errorf("foreign SUBSCRIBE: %v %v, want 0x80", codes, err)
	}
	// Publishing to a device topic ends the connection.
	_ = c.WriteRaw(mustEncodePublish(t, "devices/bad-1/messages/events/", []byte("x"), 4))
	if err := c.WaitClosed(5 * time.Second); err != nil {
		t.Errorf("telemetry on a DPS connection: %v", err)
	}

	// MQTT 5 learns why (DISCONNECT, not authorized).
	c5 := f.dial(t, "bad-5", f.nodeToken("bad-5"), 5)
	_ = c5.WriteRaw(mustEncodePublish(t, "$iothub/twin/GET/?$rid=1", nil, 5))
	pk, err := c5.Next(5 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Errorf("MQTT 5 foreign publish: %+v %v, want DISCONNECT 0x87", pk.FixedHeader, err)
	}
}

func mustEncodePublish(t *testing.T, topic string, payload []byte, version byte) []byte {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: payload, ProtocolVersion: version}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDPSRateAndRefusals: a flood of requests is answered 429, a disabled
// group 401, and a registration does not take over the connection of the
// device with the same id.
func TestDPSRateAndRefusals(t *testing.T) {
	f := newDPSFixture(t)
	ctx := context.Background()
	dev := f.h.CreateDevice(t, "shared-id")
	dc, code, err := hubtest.Dial(f.h.MQTTAddr("tls").String(), f.h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Keepalive: 60})
	if err != nil || code != 0 {
		t.Fatalf("device connect: %#x %v", code, err)
	}
	defer dc.Close()

	c := f.dial(t, "shared-id", f.nodeToken("shared-id"), 4)
	statuses := map[int]int{}
	for i := range 12 {
		if _, err := c.PublishAsync(protocol.DPSPollTopic(fmt.Sprint(i), "nope"), []byte(" ")); err != nil {
			t.Fatal(err)
		}
	}
	for range 12 {
		statuses[nextResponse(t, c).status]++
	}
	if statuses[429] == 0 || statuses[404] == 0 {
		t.Errorf("12 polls at once: statuses %v, want some 404 and some 429", statuses)
	}
	if code, err := dc.Publish("devices/shared-id/messages/events/", []byte("still here"), 1, false); err != nil || code != 0 {
		t.Errorf("the device's own connection after a registration of its id: %#x %v", code, err)
	}

	g, err := f.h.Client.EnrollmentGroup(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	g.ProvisioningStatus = provision.EnrollmentDisabled
	if _, err := f.h.Client.PutEnrollmentGroup(ctx, *g, true); err != nil {
		t.Fatal(err)
	}
	c2 := f.dial(t, "off-1", f.pythonToken("off-1"), 4)
	if _, err := c2.Publish(protocol.DPSRegisterTopic("1"), []byte(`{"registrationId":"off-1"}`), 1, false); err != nil {
		t.Fatal(err)
	}
	if r := nextResponse(t, c2); r.status != 401 || r.errorCode() != 401002 || !strings.Contains(fmt.Sprint(r.body["message"]), "disabled") {
		t.Errorf("disabled group: %d %v", r.status, r.body)
	}

	// Refused at CONNECT: wrong scope, client id not the registration id.
	for name, o := range map[string]hubtest.ConnectOptions{
		"wrong scope": {ClientID: "x-1", Username: "0ne00000000/registrations/x-1/api-version=2019-03-31", Password: f.nodeToken("x-1")},
		"client id":   {ClientID: "x-2", Username: f.scope + "/registrations/x-1/api-version=2019-03-31", Password: f.nodeToken("x-1")},
	} {
		o.Clean = true
		if _, code, err := hubtest.Dial(f.h.MQTTAddr("tls").String(), f.h.TLSConfig(), o); code != 4 {
			t.Errorf("%s: CONNACK %#x (%v), want 4", name, code, err)
		}
	}
}
