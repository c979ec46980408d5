package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/model"
)

// APIVersion is the api-version query parameter every request carries. It is
// the version Azure's Node service SDK sends, so Azure clients work unchanged.
const APIVersion = "2021-04-12"

// ContinuationHeader carries the paging token of device lists, in both
// directions: the hub sets it on a page that has a successor, and the client
// sends it back to get that successor.
const ContinuationHeader = "x-ms-continuation"

// HubInfo is the body of GET /api/v1/hub: what a client needs to know about
// the hub it talks to.
type HubInfo struct {
	HostName       string      `json:"hostName"`       // host[:port] of the service REST API
	DeviceHostName string      `json:"deviceHostName"` // host[:port] that goes into device connection strings
	Version        string      `json:"version"`        // Ferry's version
	StartedAt      time.Time   `json:"startedAt"`
	UptimeSeconds  float64     `json:"uptimeSeconds"`
	Devices        DeviceCount `json:"devices"`
	MQTT           MQTTInfo    `json:"mqtt"`
}

// DeviceCount counts the hub's registered and connected devices.
type DeviceCount struct {
	Total     int `json:"total"`
	Connected int `json:"connected"`
}

// MQTTInfo lists the hub's MQTT listeners; an empty field means the listener
// is off.
type MQTTInfo struct {
	TCP       string `json:"tcp"`       // plain TCP address
	TLS       string `json:"tls"`       // TLS address
	WebSocket string `json:"websocket"` // WebSocket path on the HTTPS listener
}

// StreamInfo describes one telemetry stream, an element of GET /api/v1/streams.
type StreamInfo struct {
	Group    string    `json:"group"`
	Name     string    `json:"name"`
	Messages uint64    `json:"messages"`
	First    time.Time `json:"first,omitzero"` // enqueued time of the oldest message kept
	Last     time.Time `json:"last,omitzero"`  // enqueued time of the newest message
}

// SystemProperties are a message's Azure system properties. Empty ones are
// omitted from the JSON.
type SystemProperties struct {
	MessageID       string `json:"messageId,omitempty"`
	CorrelationID   string `json:"correlationId,omitempty"`
	UserID          string `json:"userId,omitempty"`
	To              string `json:"to,omitempty"`
	ContentType     string `json:"contentType,omitempty"`
	ContentEncoding string `json:"contentEncoding,omitempty"`
	Expiry          string `json:"expiry,omitempty"`
	Component       string `json:"component,omitempty"` // PnP component ($.sub)
	InterfaceID     string `json:"interfaceId,omitempty"`
	OutputName      string `json:"outputName,omitempty"` // module output ($.on)
	CreationTime    string `json:"creationTime,omitempty"`
	MessageType     string `json:"messageType,omitempty"` // e.g. "Will"
	AuthMethod      string `json:"authMethod,omitempty"`  // how the sender authenticated: sas, x509
}

// Message is one device-to-cloud message as read from a stream.
type Message struct {
	Stream           string            `json:"stream"`
	Group            string            `json:"group"`
	DeviceID         string            `json:"deviceId"`
	ModuleID         string            `json:"moduleId"`
	EnqueuedTime     time.Time         `json:"enqueuedTime"`
	Cursor           string            `json:"cursor"` // this message's position; reading after it yields its successors
	SystemProperties SystemProperties  `json:"systemProperties"`
	Properties       map[string]string `json:"properties"` // application properties
	Body             []byte            `json:"body"`       // base64 in JSON
	// PnPMismatch lists how the message breaks its device's Plug and Play
	// model; absent when it fits or the device has none.
	PnPMismatch []model.Problem `json:"pnpMismatch,omitempty"`
}

// MessagePage is one page of a stream read. Next is the position to pass as
// after (or to commit) for the following page; it is set even when Messages
// is empty, so a live reader can long-poll from it.
type MessagePage struct {
	Messages []Message `json:"messages"`
	Next     string    `json:"next"`
}

// Position is a consumer group's committed position in a stream, the body of
// GET and PUT /api/v1/consumergroups/{cg}/streams/{stream}/position.
type Position struct {
	Cursor string `json:"cursor"`
}

// maxErrorBody bounds how much of an error response is read: the body is
// informative only, and a misbehaving peer must not make the client buffer
// an unbounded stream.
const maxErrorBody = 64 << 10

// ErrorFromResponse turns an error response (status >= 300) into a
// *fault.Error whose Kind follows the status and whose Code, Num and Msg come
// from the Azure-shaped [ErrorBody]. It reads, but does not close, resp.Body.
func ErrorFromResponse(resp *http.Response) error {
	e := &fault.Error{Kind: KindOfStatus(resp.StatusCode)}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body ErrorBody
	if json.Unmarshal(raw, &body) == nil {
		e.Num = body.ErrorCode
		e.Code, e.Msg = splitAzureMessage(body.Message)
		if body.Text != "" {
			e.Msg = body.Text
		}
		if e.Msg == "" {
			e.Msg = body.ExceptionMessage
		}
	}
	if e.Msg == "" {
		e.Msg = statusMessage(resp, raw)
	}
	return e
}

// splitAzureMessage splits "ErrorCode:<Code>;<text>" into code and text. A
// message without the prefix is all text.
func splitAzureMessage(m string) (code, text string) {
	rest, ok := strings.CutPrefix(m, "ErrorCode:")
	if !ok {
		return "", m
	}
	code, text, _ = strings.Cut(rest, ";")
	return code, text
}

// statusMessage describes a response whose body carried no usable message:
// a proxy's plain-text page, or nothing at all.
func statusMessage(resp *http.Response, raw []byte) string {
	msg := resp.Status
	if resp.Request != nil {
		msg = fmt.Sprintf("%s %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
	}
	if text := strings.TrimSpace(string(raw)); text != "" && len(text) < 200 &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		msg += ": " + text
	}
	return msg
}

// KindOfStatus classifies an HTTP status for fault.
func KindOfStatus(status int) fault.Kind {
	switch status {
	case http.StatusBadRequest:
		return fault.Invalid
	case http.StatusUnauthorized:
		return fault.Unauthorized
	case http.StatusForbidden:
		return fault.Forbidden
	case http.StatusNotFound:
		return fault.NotFound
	case http.StatusConflict:
		return fault.Conflict
	case http.StatusPreconditionFailed:
		return fault.PreconditionFailed
	case http.StatusRequestEntityTooLarge:
		return fault.TooLarge
	case http.StatusTooManyRequests:
		return fault.Throttled
	case http.StatusServiceUnavailable:
		return fault.Unavailable
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return fault.Timeout
	default:
		return fault.Internal
	}
}
