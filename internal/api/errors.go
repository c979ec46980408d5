package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// ErrorBody is an error response: Azure IoT Hub's shape, which carries the
// code in Message as "ErrorCode:<Code>;<text>" (what azure-iothub parses),
// plus the newer numeric errorCode fields.
type ErrorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
	ErrorCode        int    `json:"errorCode,omitempty"`
	Text             string `json:"message"`
	TrackingID       string `json:"trackingId"`
	TimestampUTC     string `json:"timestampUtc"`
}

// statusOf is the one place that maps error kinds to HTTP statuses.
func statusOf(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.Unauthorized:
		return http.StatusUnauthorized
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.PreconditionFailed:
		return http.StatusPreconditionFailed
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.Throttled:
		return http.StatusTooManyRequests
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.Timeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

var defaultCodes = map[fault.Kind]struct {
	name string
	num  int
}{
	fault.Invalid:            {"ArgumentInvalid", 400004},
	fault.Unauthorized:       {"IotHubUnauthorizedAccess", 401002},
	fault.Forbidden:          {"IotHubUnauthorizedAccess", 403000},
	fault.NotFound:           {"NotFound", 404000},
	fault.Conflict:           {"Conflict", 409000},
	fault.PreconditionFailed: {"PreconditionFailed", 412002},
	fault.TooLarge:           {"MessageTooLarge", 413001},
	fault.Throttled:          {"ThrottlingException", 429001},
	fault.Unavailable:        {"ServiceUnavailable", 503000},
	fault.Timeout:            {"GatewayTimeout", 504101},
	fault.Internal:           {"ServerError", 500001},
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if fault.As(err) == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The client went away, or the hub is shutting down and ended the request.
		err = &fault.Error{Kind: fault.Unavailable, Msg: "the request was cancelled (client gone or hub shutting down)", Err: err}
	}
	kind := fault.KindOf(err)
	code := defaultCodes[kind]
	if e := fault.As(err); e != nil && e.Code != "" {
		code.name, code.num = e.Code, e.Num
	}
	msg := fault.Public(err)
	track := trackingID()
	if kind == fault.Internal {
		h.cfg.Logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "tracking", track, "error", err)
	}
	if kind == fault.Unauthorized {
		w.Header().Set("WWW-Authenticate", "SharedAccessSignature")
	}
	_ = writeJSON(w, statusOf(kind), ErrorBody{
		Message:          "ErrorCode:" + code.name + ";" + msg,
		ExceptionMessage: "Tracking ID:" + track + "-TimeStamp:" + h.cfg.Now().UTC().Format("01/02/2006 15:04:05"),
		ErrorCode:        code.num,
		Text:             msg,
		TrackingID:       track,
		TimestampUTC:     h.cfg.Now().UTC().Format(time.RFC3339),
	})
}

func trackingID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
