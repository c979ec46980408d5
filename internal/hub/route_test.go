package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/route"
)

// methodCall is a direct method call a test device received.
type methodCall struct {
	name    string
	payload []byte
	ct      string
	at      time.Time
}

// serveMethods makes c answer every method with 200 and reports each call.
func serveMethods(t testing.TB, c *hubtest.Conn) <-chan methodCall {
	t.Helper()
	if granted, err := c.Subscribe("$iothub/methods/POST/#"); err != nil || granted[0] > 1 {
		t.Fatalf("subscribe to methods: %v %v", granted, err)
	}
	out := make(chan methodCall, 1024)
	go func() {
		for {
			pk, err := c.Next(time.Minute)
			if err != nil {
				return
			}
			if pk.FixedHeader.Type != packets.Publish {
				continue
			}
			top, err := protocol.ParseTopic(pk.TopicName)
			if err != nil || top.Kind != protocol.TopicMethodRequest {
				continue
			}
			out <- methodCall{name: top.Method, payload: pk.Payload, ct: bagContentType(top.Bag), at: time.Now()}
			if _, err := c.PublishAsync(protocol.MethodResponseTopic(200, top.RID), []byte(`{"result":true}`)); err != nil {
				return
			}
		}
	}()
	return out
}

// publish sends one telemetry message with a property bag.
func publish(t testing.TB, c *hubtest.Conn, deviceID string, body []byte, props protocol.Properties) {
	t.Helper()
	code, err := c.Publish(protocol.TelemetryTopic(deviceID, "", props), body, 1, false)
	if err != nil || code != 0 {
		t.Fatalf("publish: code %d, %v", code, err)
	}
}

func addRoute(t testing.TB, h *hubtest.Hub, r route.Route) {
	t.Helper()
	r.Enabled = true
	if _, err := h.Client.CreateRoute(context.Background(), r); err != nil {
		t.Fatalf("create route %s: %v", r.Name, err)
	}
}

func expectCall(t testing.TB, calls <-chan methodCall, within time.Duration) methodCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(within):
		t.Fatalf("no method call within %s", within)
	}
	return methodCall{}
}

func expectNoCall(t testing.TB, calls <-chan methodCall, during time.Duration) {
	t.Helper()
	select {
	case c := <-calls:
		t.Fatalf("unexpected method call %s %s", c.name, c.payload)
	case <-time.After(during):
	}
}

// TestRouteTelemetryToDeviceMethod routes a device's telemetry, by a body
// condition, to the direct method of the device its $.to names.
func TestRouteTelemetryToDeviceMethod(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	agent, monitor := h.CreateDevice(t, "agent"), h.CreateDevice(t, "monitor")
	mc := connect(t, h, monitor, 4)
	defer mc.Disconnect()
	calls := serveMethods(t, mc)
	ac := connect(t, h, agent, 4)
	defer ac.Disconnect()

	addRoute(t, h, route.Route{Name: "parcels", Condition: "$body.alarm = true AND $connectionDeviceId = 'agent'",
		Endpoints: []route.Endpoint{{Kind: route.KindMethod, Name: "ProcessMessage", TargetFrom: "to"}}})

	publish(t, ac, agent.ID, []byte(`{"alarm":false}`), protocol.Properties{To: "monitor", ContentType: "application/json"})
	publish(t, ac, agent.ID, []byte(`{"alarm":true,"n":1}`), protocol.Properties{To: "/devices/monitor/messages/devicebound", ContentType: "application/json"})
	got := expectCall(t, calls, 10*time.Second)
	if got.name != "ProcessMessage" || string(got.payload) != `{"alarm":true,"n":1}` {
		t.Fatalf("call %s %s, want ProcessMessage with the alarm body", got.name, got.payload)
	}
	expectNoCall(t, calls, 300*time.Millisecond)
	// The message itself stays in its stream: storage came first.
	hubtest.Eventually(t, 20*time.Second, func() error { return countIs(len(readAll(t, h)), 2) })
}

// TestRouteConditionSyntaxError refuses a route whose condition does not
// parse, naming the position, and saves nothing.
func TestRouteConditionSyntaxError(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	_, err := h.Client.CreateRoute(ctx, route.Route{Name: "bad", Condition: "$body.temperature >> 30",
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "hot"}}})
	if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "line 1, column 20") {
		t.Fatalf("create: %v, want an invalid-argument error at line 1, column 20", err)
	}
	_, err = h.Client.CreateRoute(ctx, route.Route{Name: "bad", Condition: "$nosuch = 1",
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "hot"}}})
	if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "unknown system property $nosuch") {
		t.Fatalf("create: %v, want unknown system property", err)
	}
	if _, err := h.Client.Route(ctx, "bad"); !fault.Is(err, fault.NotFound) {
		t.Fatalf("route after refused create: %v, want not found", err)
	}
}

func bagContentType(bag string) string {
	v, _ := url.ParseQuery(bag)
	return v.Get("$.ct")
}

var _ = fmt.Sprint
var _ = url.QueryEscape
var _ = json.Valid
