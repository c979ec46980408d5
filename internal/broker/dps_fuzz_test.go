package broker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// FuzzDPSRegisterRequest: a register request body from a registration
// connection, as the loop reads it, never panics; what it accepts has a
// registration id and a payload that is null or an object whose modelId is
// a DTMI; what it refuses is a 4xx with a message.
func FuzzDPSRegisterRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRegisterRequest(body)
		if err != nil {
			if !fault.Is(err, fault.Invalid) || fault.Public(err) == "" {
				t.Fatalf("refusal %v is not an invalid-input error with a message", err)
			}
			return
		}
		if req.RegistrationID == nil {
			t.Fatal("accepted a request without registrationId")
		}
		p, err := provision.ParseDPSPayload(req.Payload)
		if err != nil {
			if s := dpsStatus(fault.KindOf(err)); s != 400 && s != 413 {
				t.Fatalf("payload %q refused with status %d: %v", req.Payload, s, err)
			}
			return
		}
		if p.ModelID != "" && !strings.HasPrefix(p.ModelID, "dtmi:") {
			t.Fatalf("accepted modelId %q", p.ModelID)
		}
		if len(req.Payload) > 0 && string(req.Payload) != "null" && !json.Valid(req.Payload) {
			t.Fatalf("accepted a payload that is not JSON: %q", req.Payload)
		}
	})
}

// FuzzDPSPacket: the registration loop's packet reader never panics on
// any bytes and never returns a packet larger than the DPS bound; a
// PUBLISH it accepts is either a DPS request or refused by the ACL.
func FuzzDPSPacket(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, version byte) {
		if version != 5 {
			version = 4
		}
		r := bufio.NewReader(bytes.NewReader(data))
		for range 16 {
			pk, err := readDPSPacket(r, version)
			if err != nil {
				return
			}
			if pk.FixedHeader.Remaining > dpsMaxPacket {
				t.Fatalf("packet of %d bytes read", pk.FixedHeader.Remaining)
			}
			if pk.TopicName != "" && protocol.RegistrationMayPublish(pk.TopicName) {
				tp, err := protocol.ParseTopic(pk.TopicName)
				if err != nil || (tp.Kind != protocol.TopicDPSRegister && tp.Kind != protocol.TopicDPSPoll) || tp.RID == "" {
					t.Fatalf("topic %q allowed but parses as %+v, %v", pk.TopicName, tp, err)
				}
			}
		}
	})
}
