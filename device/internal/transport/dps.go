package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// DPSConfig describes one registration with a Device Provisioning Service
// (Ferry's, or Azure's) over MQTT.
type DPSConfig struct {
	// Host is the provisioning endpoint with an optional port (default 8883;
	// 443 with WebSocket).
	Host           string
	IDScope        string
	RegistrationID string
	// Key signs the registration's SAS token: an individual enrollment's
	// key, or a group's key derived for this registration
	// (protocol.DeriveDeviceKey).
	// Without a Key the certificate in TLS authenticates (X.509).
	Key []byte
	// Payload is the custom data sent with the registration, such as
	// {"modelId": "dtmi:..."}; nil sends none.
	Payload     json.RawMessage
	TLS         *tls.Config
	InsecureTCP bool
	WebSocket   bool
	Dial        func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Assignment is the outcome of a successful registration.
type Assignment struct {
	AssignedHub string          `json:"assignedHub"`
	DeviceID    string          `json:"deviceId"`
	Status      string          `json:"status"`
	Substatus   string          `json:"substatus"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	// ErrorCode and ErrorMessage explain a failed registration state.
	ErrorCode    int    `json:"errorCode,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// DPSError is a registration the service answered with an error status or
// a "failed"/"disabled" registration state.
type DPSError struct {
	Status  int    // MQTT response status (HTTP-like), 0 when the state said it
	State   string // registration status, e.g. "failed", "disabled"
	Code    int
	Message string
}

func (e *DPSError) Error() string {
	var b strings.Builder
	b.WriteString("dps: registration refused")
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d)", e.Status)
	}
	if e.State != "" {
		fmt.Fprintf(&b, ", state %s", e.State)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ", error %d", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Permanent reports whether retrying the same registration cannot succeed
// (anything but throttling and server errors).
func (e *DPSError) Permanent() bool {
	return e.Status != 429 && e.Status < 500
}

// dpsAPIVersion is the DPS device API version Azure's SDKs send.
const dpsAPIVersion = "2019-03-31"

// Register runs one DPS registration: CONNECT as the registration,
// subscribe to the responses, PUT the registration, then poll the
// operation as long as it is "assigning", waiting what retry-after says.
// ctx bounds the whole exchange.
func Register(ctx context.Context, cfg DPSConfig) (*Assignment, error) {
	if cfg.Host == "" || cfg.IDScope == "" || cfg.RegistrationID == "" {
		return nil, errors.New("dps: Host, IDScope and RegistrationID are required")
	}
	tc := Config{Host: cfg.Host, DeviceID: cfg.RegistrationID, Key: cfg.Key, TLS: cfg.TLS,
		InsecureTCP: cfg.InsecureTCP, WebSocket: cfg.WebSocket, Dial: cfg.Dial}
	if err := tc.setDefaults(); err != nil {
		return nil, fmt.Errorf("dps: %w", err)
	}
	nc, err := tc.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("dps: %w", err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	s := &dpsSession{nc: nc, r: bufio.NewReader(nc)}

	var password string
	if len(cfg.Key) > 0 {
		password = protocol.SignSAS(cfg.Key, protocol.RegistrationResource(cfg.IDScope, cfg.RegistrationID),
			time.Now().Add(time.Hour), "registration")
	}
	connect := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60,
			ClientIdentifier: cfg.RegistrationID,
			UsernameFlag:     true,
			Username:         []byte(cfg.IDScope + "/registrations/" + cfg.RegistrationID + "/api-version=" + dpsAPIVersion),
			PasswordFlag:     password != "",
			Password:         []byte(password),
		},
	}
	if err := s.write(connect); err != nil {
		return nil, fmt.Errorf("dps: send CONNECT: %w", err)
	}
	ack, err := readPacket(s.r)
	if err != nil {
		return nil, fmt.Errorf("dps: read CONNACK: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack {
		return nil, fmt.Errorf("dps: expected CONNACK, got packet type %d", ack.FixedHeader.Type)
	}
	if ack.ReasonCode != 0 {
		return nil, fmt.Errorf("dps: %w", &RefusedError{Code: ack.ReasonCode})
	}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "$dps/registrations/res/#", Qos: 1}}}
	if err := s.write(sub); err != nil {
		return nil, fmt.Errorf("dps: send SUBSCRIBE: %w", err)
	}

	body, err := json.Marshal(struct {
		RegistrationID string          `json:"registrationId"`
		Payload        json.RawMessage `json:"payload,omitempty"`
	}{cfg.RegistrationID, cfg.Payload})
	if err != nil {
		return nil, fmt.Errorf("dps: payload: %w", err)
	}
	rid := 1
	topic := protocol.DPSRegisterTopic(strconv.Itoa(rid))
	for {
		if err := s.publish(topic, body); err != nil {
			return nil, fmt.Errorf("dps: send request: %w", err)
		}
		status, retry, res, err := s.response(strconv.Itoa(rid))
		if err != nil {
			return nil, err
		}
		switch {
		case status == 429 || status >= 500:
			// Throttled or unavailable: the same request again, later.
		case status >= 300:
			return nil, res.err(status)
		case strings.EqualFold(res.Status, "assigned"):
			if res.State == nil || res.State.AssignedHub == "" || res.State.DeviceID == "" {
				return nil, fmt.Errorf("dps: assigned without a hub and device id: %+v", res.State)
			}
			return res.State, nil
		case strings.EqualFold(res.Status, "assigning"), strings.EqualFold(res.Status, "unassigned"):
			if res.OperationID == "" {
				return nil, errors.New("dps: the service is assigning but sent no operation id")
			}
			rid++
			topic = protocol.DPSPollTopic(strconv.Itoa(rid), res.OperationID)
			body = []byte(" ") // as Azure's Node SDK sends
		default:
			return nil, res.err(0)
		}
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("dps: %w", ctx.Err())
		}
		rid++
		if strings.HasPrefix(topic, "$dps/registrations/PUT/") {
			topic = protocol.DPSRegisterTopic(strconv.Itoa(rid))
		} else {
			topic = protocol.DPSPollTopic(strconv.Itoa(rid), res.OperationID)
		}
	}
}

// dpsResult is a response body of the service.
type dpsResult struct {
	OperationID string      `json:"operationId"`
	Status      string      `json:"status"`
	State       *Assignment `json:"registrationState"`
	ErrorCode   int         `json:"errorCode"`
	Message     string      `json:"message"`
}

func (r *dpsResult) err(status int) error {
	e := &DPSError{Status: status, State: r.Status, Code: r.ErrorCode, Message: r.Message}
	if st := r.State; st != nil {
		if e.State == "" {
			e.State = st.Status
		}
		if e.Code == 0 {
			e.Code = st.ErrorCode
		}
		if e.Message == "" {
			e.Message = st.ErrorMessage
		}
	}
	return e
}

// dpsSession is the request/response exchange on one connection: a
// single goroutine writes a request and reads until its response.
type dpsSession struct {
	nc     net.Conn
	r      *bufio.Reader
	nextID uint16
}

func (s *dpsSession) write(pk packets.Packet) error {
	b, err := encode(pk)
	if err != nil {
		return err
	}
	_, err = s.nc.Write(b)
	return err
}

func (s *dpsSession) publish(topic string, body []byte) error {
	s.nextID++
	if s.nextID == 0 {
		s.nextID = 1
	}
	return s.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName: topic, Payload: body, PacketID: s.nextID})
}

// maxRetryAfter bounds the wait the service may ask for between polls.
const maxRetryAfter = 30 * time.Second

// response reads until the response to request rid arrives, acking QoS 1
// deliveries, and returns its status, the wait before the next request
// and its body.
func (s *dpsSession) response(rid string) (int, time.Duration, *dpsResult, error) {
	for {
		pk, err := readPacket(s.r)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("dps: read: %w", err)
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue // SUBACK, PUBACK
		}
		if pk.FixedHeader.Qos > 0 {
			if err := s.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}); err != nil {
				return 0, 0, nil, fmt.Errorf("dps: send PUBACK: %w", err)
			}
		}
		rest, ok := strings.CutPrefix(pk.TopicName, "$dps/registrations/res/")
		if !ok {
			continue
		}
		code, query, ok := strings.Cut(rest, "/?")
		if !ok {
			continue
		}
		status, err := strconv.Atoi(code)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("dps: bad response topic %q", pk.TopicName)
		}
		q, err := url.ParseQuery(query)
		if err != nil || q.Get("$rid") != rid {
			continue // a response to an earlier request
		}
		retry := 3 * time.Second
		if ra, err := strconv.Atoi(q.Get("retry-after")); err == nil && ra >= 0 {
			retry = min(time.Duration(ra)*time.Second, maxRetryAfter)
		}
		var res dpsResult
		if len(strings.TrimSpace(string(pk.Payload))) > 0 {
			if err := json.Unmarshal(pk.Payload, &res); err != nil {
				return 0, 0, nil, fmt.Errorf("dps: response %d is not JSON: %w", status, err)
			}
		}
		return status, retry, &res, nil
	}
}
