package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
)

// invoke calls a JSON method through Azure's service API, waiting up to
// 10s for the device to come online.
func (e *env) invoke(t *testing.T, name, payload string) *api.MethodResponse {
	t.Helper()
	resp, err := e.hub.Client.InvokeMethod(context.Background(), e.id, "", api.MethodRequest{
		MethodName: name, Payload: json.RawMessage(payload), ResponseTimeoutInSeconds: 10, ConnectTimeoutInSeconds: 10})
	if err != nil {
		t.Fatalf("InvokeMethod(%s): %v", name, err)
	}
	return resp
}

func TestMethodHandlers(t *testing.T) {
	e := newEnv(t, true)
	var seen sync.Map
	e.cfg.Methods = map[string]device.MethodHandler{
		"reboot": func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
			seen.Store(req.Name, req)
			return device.MethodResponse{Status: 201, Payload: []byte(`{"rebooting":true}`)}
		},
	}
	c := e.start(t)

	resp := e.invoke(t, "reboot", `{"delay":5}`)
	if resp.Status != 201 || !sameJSON(resp.Payload, []byte(`{"rebooting":true}`)) {
		t.Fatalf("reboot answered %d %s", resp.Status, resp.Payload)
	}
	if v, ok := seen.Load("reboot"); !ok || !sameJSON(v.(device.MethodRequest).Payload, []byte(`{"delay":5}`)) ||
		v.(device.MethodRequest).ContentType != "" || v.(device.MethodRequest).RequestID == "" {
		t.Fatalf("handler got %+v", v)
	}

	// No handler: 404 with a JSON error body.
	resp = e.invoke(t, "selfDestruct", ``)
	var body struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}
	if resp.Status != 404 || json.Unmarshal(resp.Payload, &body) != nil || body.ErrorCode != 404 || body.Message == "" {
		t.Fatalf("unknown method answered %d %s", resp.Status, resp.Payload)
	}

	// A panicking handler: 500, and the device keeps answering.
	c.HandleMethod("crash", func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
		panic("boom")
	})
	if resp := e.invoke(t, "crash", `null`); resp.Status != 500 {
		t.Fatalf("panicking handler answered %d %s", resp.Status, resp.Payload)
	}

	// The default handler answers the rest; a zero status is 200.
	c.HandleMethod("", func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
		return device.MethodResponse{Payload: []byte(`"default:` + req.Name + `"`)}
	})
	if resp := e.invoke(t, "selfDestruct", `1`); resp.Status != 200 || string(resp.Payload) != `"default:selfDestruct"` {
		t.Fatalf("default handler answered %d %s", resp.Status, resp.Payload)
	}
	c.HandleMethod("reboot", nil) // removed: the default handler takes it
	if resp := e.invoke(t, "reboot", `1`); string(resp.Payload) != `"default:reboot"` {
		t.Fatalf("removed handler: answered %d %s", resp.Status, resp.Payload)
	}
}

// TestMethodBytes sends a binary payload with a content type through the
// hub's byte-payload endpoint and gets bytes back.
func TestMethodBytes(t *testing.T) {
	e := newEnv(t, true)
	e.cfg.Methods = map[string]device.MethodHandler{
		"reverse": func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
			out := slices.Clone(req.Payload)
			slices.Reverse(out)
			return device.MethodResponse{Status: 200, Payload: out, ContentType: "application/x-" + req.ContentType[len("application/"):]}
		},
	}
	e.start(t)
	in := []byte{0, 1, 2, 0xff, '\n', 0x80}
	resp, err := e.hub.Client.InvokeRaw(context.Background(), e.id, "", "reverse", in, "application/octet-stream",
		10*time.Second, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x80, '\n', 0xff, 2, 1, 0}
	if resp.Status != 200 || !bytes.Equal(resp.Payload, want) || resp.ContentType != "application/x-octet-stream" {
		t.Fatalf("reverse answered %d %q %q", resp.Status, resp.Payload, resp.ContentType)
	}
}

// TestMethodConcurrency invokes 20 calls at once: 16 handlers run at the
// same time, never more, and every call is answered.
func TestMethodConcurrency(t *testing.T) {
	e := newEnv(t, true)
	var running, most atomic.Int32
	full := make(chan struct{}) // closed when 16 handlers run at once
	var fullOnce sync.Once
	e.cfg.Methods = map[string]device.MethodHandler{
		"slow": func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			if n == 16 {
				fullOnce.Do(func() { close(full) })
			}
			select { // hold the slot until 16 run, so a 17th would show
			case <-full:
			case <-time.After(10 * time.Second):
			}
			time.Sleep(100 * time.Millisecond)
			return device.MethodResponse{Payload: req.Payload}
		},
	}
	e.start(t)
	if resp := e.invoke(t, "ping", `0`); resp.Status != 404 { // online and subscribed
		t.Fatalf("ping answered %d", resp.Status)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload, _ := json.Marshal(i)
			resp := e.invoke(t, "slow", string(payload))
			if resp.Status != 200 || string(resp.Payload) != string(payload) {
				t.Errorf("call %d answered %d %s", i, resp.Status, resp.Payload)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if m := most.Load(); m != 16 {
		t.Errorf("at most %d handlers ran at once, want 16", m)
	}
	// No bound on the time: that 16 handlers ran at once is what shows
	// they run concurrently, however slowly a loaded machine runs them.
	t.Logf("20 calls took %s", took)
}
