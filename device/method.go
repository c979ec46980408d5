package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/protocol"
)

// MethodRequest is a direct method call from the hub.
type MethodRequest struct {
	// Name is the method's name, as the caller wrote it.
	Name string
	// Payload is the request body as sent: JSON by Azure's convention
	// ("null" when the caller gave none), any bytes when ContentType says
	// so.
	Payload []byte
	// ContentType is the payload's content type when the caller declared a
	// non-JSON one (Ferry's extension, $.ct in the request topic); "" means
	// JSON.
	ContentType string
	// RequestID is the hub's $rid for this call.
	RequestID string
}

// MethodResponse is a device's answer to a direct method call.
type MethodResponse struct {
	// Status is the status the caller sees; 0 means 200.
	Status int
	// Payload is the response body. Azure's callers expect JSON; Ferry's
	// byte-payload endpoint passes any bytes on with ContentType.
	Payload []byte
	// ContentType declares a non-JSON payload ("" means JSON).
	ContentType string
}

// MethodHandler answers direct method calls. It runs on a goroutine of its
// own; up to Config.MaxConcurrentMethods handlers run at once. ctx is
// cancelled when the Client closes, and Close waits for running handlers,
// so a handler must return once ctx is done. A handler that panics is
// answered with status 500.
type MethodHandler func(ctx context.Context, req MethodRequest) MethodResponse

// defaultMaxMethods is the default of Config.MaxConcurrentMethods.
const defaultMaxMethods = 16

// maxWaitingMethods bounds the calls waiting for a free handler slot;
// beyond it the device answers 503 at once instead of piling up.
const maxWaitingMethods = 1024

// methodResponseWait is how long an answer waits for a connection when the
// one its call came on is gone: the hub's longest response timeout.
const methodResponseWait = 300 * time.Second

// methods dispatches direct method calls to their handlers.
type methods struct {
	c   *Client
	sem chan struct{} // a token per running handler

	mu       sync.Mutex
	handlers map[string]MethodHandler // by name; "" is the default; guarded by mu
	waiting  int                      // calls waiting for a slot; guarded by mu
	closing  bool                     // Close has begun: no new calls; guarded by mu
	wg       sync.WaitGroup           // one per call goroutine
}

func newMethods(c *Client) *methods {
	m := &methods{c: c, sem: make(chan struct{}, c.cfg.MaxConcurrentMethods),
		handlers: make(map[string]MethodHandler, len(c.cfg.Methods))}
	for name, h := range c.cfg.Methods {
		if h != nil {
			m.handlers[name] = h
		}
	}
	return m
}

// HandleMethod makes h answer the direct method called name, replacing any
// handler it had; a nil h removes it. The handler registered under the
// empty name answers every method without a handler of its own. A call to
// a method with no handler is answered with status 404 and a JSON error
// body. Handlers set in Config.Methods are in place before the first
// connection; HandleMethod changes them while the Client runs.
func (c *Client) HandleMethod(name string, h MethodHandler) {
	m := c.methods
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		delete(m.handlers, name)
	} else {
		m.handlers[name] = h
	}
}

// request takes a method call from the read goroutine and starts its
// goroutine; it never blocks.
func (m *methods) request(t protocol.Topic, payload []byte) {
	req := MethodRequest{Name: t.Method, Payload: bytes.Clone(payload), RequestID: t.RID}
	if q, err := url.ParseQuery(t.Bag); err == nil {
		req.ContentType = q.Get("$.ct")
	}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return // the hub times the call out
	}
	h := m.handlers[req.Name]
	if h == nil {
		h = m.handlers[""]
	}
	busy := m.waiting >= maxWaitingMethods
	if !busy {
		m.waiting++
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		if busy {
			m.c.cfg.Logger.Warn("device: too many method calls waiting; answered 503", "method", req.Name)
			m.respond(req, errorResponse(503, "the device has too many method calls in progress"))
			return
		}
		resp, ok := m.run(h, req)
		if ok {
			m.respond(req, resp)
		}
	}()
}

// run waits for a handler slot and calls h; false means the Client closed
// first.
func (m *methods) run(h MethodHandler, req MethodRequest) (resp MethodResponse, ok bool) {
	ctx := m.c.ctx
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.waiting--
	m.mu.Unlock()
	if ctx.Err() != nil {
		return MethodResponse{}, false
	}
	defer func() { <-m.sem }()
	if h == nil {
		return errorResponse(404, fmt.Sprintf("method %q is not implemented by this device", req.Name)), true
	}
	defer func() {
		if p := recover(); p != nil {
			m.c.cfg.Logger.Error("device: method handler panicked", "method", req.Name, "panic", p)
			resp, ok = errorResponse(500, fmt.Sprintf("method %q failed on the device", req.Name)), true
		}
	}()
	return h(ctx, req), true
}

// respond publishes the answer on the current connection. When there is
// none, it waits for the next one (the hub matches answers by $rid, on any
// connection) for as long as the hub could still be waiting.
func (m *methods) respond(req MethodRequest, resp MethodResponse) {
	if resp.Status == 0 {
		resp.Status = 200
	}
	topic := protocol.MethodResponseTopic(resp.Status, req.RequestID)
	if resp.ContentType != "" {
		topic += "&%24.ct=" + url.QueryEscape(resp.ContentType)
	}
	give := time.NewTimer(methodResponseWait)
	defer give.Stop()
	for {
		sess, up := m.c.tr.Session()
		if up {
			err := m.c.tr.PublishQoS0(topic, resp.Payload)
			if err == nil {
				return
			}
			m.c.cfg.Logger.Debug("device: method answer not sent; waiting for a connection", "method", req.Name, "err", err)
		}
		select {
		case <-sess:
		case <-give.C:
			m.c.cfg.Logger.Warn("device: method answer dropped: no connection", "method", req.Name)
			return
		case <-m.c.ctx.Done():
			return
		}
	}
}

// stop refuses new calls and waits for the running ones.
func (m *methods) stop() {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.wg.Wait()
}

// errorResponse is a status with Azure's JSON error shape.
func errorResponse(status int, msg string) MethodResponse {
	b, _ := json.Marshal(map[string]any{"errorCode": status, "message": msg})
	return MethodResponse{Status: status, Payload: b}
}
