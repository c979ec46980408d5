// Package method invokes direct methods on devices: the service side asks,
// the hub publishes $iothub/methods/POST/{name}/?$rid={rid} to the device,
// and the device's answer on $iothub/methods/res/{status}/?$rid={rid} is
// matched by $rid and returned. Many calls may be in flight to one device
// at once. Payloads are bytes: JSON by Azure's convention, anything else when
// the caller says so.
package method

import (
	"context"
	"crypto/rand"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// Azure IoT Hub's limits and defaults for direct methods.
const (
	DefaultResponseTimeout = 30 * time.Second
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	MaxConnectTimeout      = 300 * time.Second
	MaxPayloadBytes        = 128 * 1024
	maxNameBytes           = 128
)

// Request is one direct method call.
type Request struct {
	Name            string
	Payload         []byte        // sent as is; "null" when empty and JSON (Node's SDK cannot parse an empty body)
	ContentType     string        // "" or JSON: Azure's convention; anything else travels as $.ct in the topic
	ResponseTimeout time.Duration // 0 = DefaultResponseTimeout
	ConnectTimeout  time.Duration // how long to wait for the device to come online; 0 = it must be online now
}

// Response is the device's answer.
type Response struct {
	Status      int
	Payload     []byte
	ContentType string // what the device declared with $.ct in its response topic, if anything
}

// IsJSON reports whether a content type is JSON ("" counts: Azure's default).
func IsJSON(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "" || strings.HasPrefix(ct, "application/json") || strings.HasSuffix(strings.SplitN(ct, ";", 2)[0], "+json")
}

// Transport reaches devices. The MQTT broker implements it.
type Transport interface {
	// MethodsReady reports whether the client (device id, or deviceId/moduleId)
	// is connected and subscribed to direct methods.
	MethodsReady(clientID string) bool
	// PublishToDevice sends a message to the client on topic.
	PublishToDevice(clientID, topic string, payload []byte) error
}

// Service invokes direct methods. It is safe for concurrent use.
type Service struct {
	transport atomic.Pointer[Transport]
	nextRID   atomic.Uint64
	poll      time.Duration // how often to look for a device that should come online

	mu      sync.Mutex
	pending map[pendingKey]chan Response // guarded by mu: calls waiting for their answer
}

type pendingKey struct{ clientID, rid string }

// New returns a Service; SetTransport must be called before Invoke.
func New() *Service {
	return &Service{pending: make(map[pendingKey]chan Response), poll: 50 * time.Millisecond}
}

// SetTransport connects the service to the broker (which is built after it).
func (s *Service) SetTransport(t Transport) { s.transport.Store(&t) }

// Invoke calls a method on a device (or module) and waits for its answer.
func (s *Service) Invoke(ctx context.Context, deviceID, moduleID string, req Request) (Response, error) {
	if err := validate(&req); err != nil {
		return Response{}, err
	}
	tp := s.transport.Load()
	if tp == nil {
		return Response{}, fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "direct methods are not ready")
	}
	t := *tp
	clientID := deviceID
	if moduleID != "" {
		clientID += "/" + moduleID
	}
	if err := s.awaitOnline(ctx, t, clientID, req.ConnectTimeout); err != nil {
		return Response{}, err
	}

	key := pendingKey{clientID, strconv.FormatUint(s.nextRID.Add(1), 16)}
	answer := make(chan Response, 1)
	s.mu.Lock()
	s.pending[key] = answer
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, key)
		s.mu.Unlock()
	}()

	topic := protocol.MethodRequestTopic(req.Name, key.rid)
	if !IsJSON(req.ContentType) {
		// Beyond Azure: a binary payload says what it is, as telemetry does.
		topic += "&%24.ct=" + url.QueryEscape(req.ContentType)
	}
	if err := t.PublishToDevice(clientID, topic, req.Payload); err != nil {
		return Response{}, notOnline(clientID)
	}
	timer := time.NewTimer(req.ResponseTimeout)
	defer timer.Stop()
	select {
	case r := <-answer:
		return r, nil
	case <-timer.C:
		return Response{}, fault.New(fault.Timeout, "GatewayTimeout", 504101,
			"device %s did not answer method %s within %s", clientID, req.Name, req.ResponseTimeout)
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
}

// HandleResponse takes a device's answer; it reports whether a call was
// waiting for it (an answer to an unknown or expired $rid is dropped).
func (s *Service) HandleResponse(clientID, rid string, status int, payload []byte, contentType string) bool {
	s.mu.Lock()
	answer, ok := s.pending[pendingKey{clientID, rid}]
	if ok {
		delete(s.pending, pendingKey{clientID, rid})
	}
	s.mu.Unlock()
	if ok {
		answer <- Response{Status: status, Payload: payload, ContentType: contentType}
	}
	return ok
}

// awaitOnline returns when the device can take method calls, or a
// DeviceNotOnline error once the connect timeout has passed.
func (s *Service) awaitOnline(ctx context.Context, t Transport, clientID string, wait time.Duration) error {
	if t.MethodsReady(clientID) {
		return nil
	}
	if wait <= 0 {
		return notOnline(clientID)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if t.MethodsReady(clientID) {
				return nil
			}
		case <-deadline.C:
			return notOnline(clientID)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func notOnline(clientID string) error {
	return fault.New(fault.NotFound, "DeviceNotOnline", 404103,
		"device %s is not connected or has not subscribed to direct methods", clientID)
}

func validate(req *Request) error {
	if req.Name == "" || len(req.Name) > maxNameBytes {
		return fault.Invalidf("methodName must be 1 to %d bytes", maxNameBytes)
	}
	for _, r := range req.Name {
		// Characters that would break the topic, or that Azure forbids in names.
		if r <= ' ' || r == '/' || r == '?' || r == '#' || r == '+' || r == '$' || r == 0x7f {
			return fault.Invalidf("methodName %q holds a character not allowed in method names: %q", req.Name, r)
		}
	}
	switch {
	case req.ResponseTimeout == 0:
		req.ResponseTimeout = DefaultResponseTimeout
	case req.ResponseTimeout < MinResponseTimeout || req.ResponseTimeout > MaxResponseTimeout:
		return fault.Invalidf("responseTimeoutInSeconds must be from %d to %d", int(MinResponseTimeout.Seconds()), int(MaxResponseTimeout.Seconds()))
	}
	if req.ConnectTimeout < 0 || req.ConnectTimeout > MaxConnectTimeout {
		return fault.Invalidf("connectTimeoutInSeconds must be from 0 to %d", int(MaxConnectTimeout.Seconds()))
	}
	if len(req.Payload) > MaxPayloadBytes {
		return fault.New(fault.TooLarge, "MessageTooLarge", 413001, "method payload of %d bytes exceeds the limit of %d bytes", len(req.Payload), MaxPayloadBytes)
	}
	if len(req.Payload) == 0 && IsJSON(req.ContentType) {
		req.Payload = []byte("null")
	}
	return nil
}

var randRead = rand.Read
