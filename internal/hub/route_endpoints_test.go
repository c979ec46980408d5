package hub_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/schema"
)

// readStream returns every message of one stream.
func readStream(t testing.TB, h *hubtest.Hub, name string) []api.Message {
	t.Helper()
	page, err := h.Client.ReadStream(context.Background(), name, api.ReadQuery{From: "beginning", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Messages
}

// waitStream waits until a stream holds n messages and returns them.
func waitStream(t testing.TB, h *hubtest.Hub, name string, n int) []api.Message {
	t.Helper()
	var msgs []api.Message
	hubtest.Eventually(t, 20*time.Second, func() error {
		msgs = readStream(t, h, name)
		return countIs(len(msgs), n)
	})
	return msgs
}

// TestRouteToWebhookRetriesAndDeadLetters posts to a real HTTP server
// that fails the first attempts (retried, then delivered, signed), and to
// one that always fails (dead-lettered).
func TestRouteToWebhookRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "sensor")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()

	var attempts atomic.Int32
	type got struct {
		body  []byte
		sig   string
		props string
		dev   string
	}
	delivered := make(chan got, 4)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		delivered <- got{b, r.Header.Get(route.SignatureHeader), r.Header.Get(route.PropertiesHeader), r.Header.Get("Ferry-Device-Id")}
	}))
	defer flaky.Close()
	var failures atomic.Int32
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failures.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer broken.Close()

	addRoute(t, h, route.Route{Name: "hooks", Condition: "$body.temperature > 30",
		Endpoints: []route.Endpoint{
			{Kind: route.KindWebhook, URL: flaky.URL, Secret: "s3cret"},
			{Kind: route.KindWebhook, URL: broken.URL},
		},
		Enrichments: []route.Enrichment{{Key: "site", Value: "plant-7"}}})
	body := []byte(`{"temperature":31.5}`)
	publish(t, c, dev.ID, body, protocol.Properties{App: []protocol.Property{{Key: "level", Value: "hot"}}})
	publish(t, c, dev.ID, []byte(`{"temperature":20}`), protocol.Properties{})

	select {
	case g := <-delivered:
		if !bytes.Equal(g.body, body) || g.sig != route.Sign([]byte("s3cret"), body) || g.dev != "sensor" {
			t.Fatalf("webhook got body %s sig %s device %q", g.body, g.sig, g.dev)
		}
		for _, want := range []string{"level=hot", "site=plant-7", "ferry-route=hooks", "ferry-hops=1"} {
			if !strings.Contains(g.props, want) {
				t.Fatalf("properties header %q lacks %s", g.props, want)
			}
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("webhook not delivered after %d attempts", attempts.Load())
	}
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	dl := waitStream(t, h, route.DeadLetterStream, 1)
	if !bytes.Equal(dl[0].Body, body) || !strings.Contains(dl[0].Properties["ferry-error"], "500") ||
		!strings.Contains(dl[0].Properties["ferry-endpoint"], broken.URL) {
		t.Fatalf("dead letter %s %v", dl[0].Body, dl[0].Properties)
	}
	if n := failures.Load(); n != 5 {
		t.Fatalf("broken webhook tried %d times, want 5", n)
	}
	m := scrape(t, h)
	for _, want := range []string{`ferry_route_matched_total{route="hooks"} 1`, `ferry_route_dead_lettered_total{route="hooks"} 1`,
		`ferry_route_routed_total{route="hooks"} 1`, `ferry_route_failed_total{route="hooks"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(m, "ferry_route"))
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRouteToNATSStreamAndC2D routes one message to a NATS subject (a
// nats.go subscriber on the embedded server), a named stream (bytes
// untouched) and another device's C2D queue, with a twin-tag condition and
// a twin enrichment.
func TestRouteToNATSStreamAndC2D(t *testing.T) {
	t.Parallel()
	natsAddr := freeAddr(t)
	h := hubtest.Start(t, func(c *hubConfig) { c.NATSListen = natsAddr })
	ctx := context.Background()
	dev, lamp := h.CreateDevice(t, "sensor"), h.CreateDevice(t, "lamp")
	if _, err := h.Client.PatchTwin(ctx, dev.ID, []byte(`{"tags":{"site":"A","floor":2}}`), ""); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("plant.a.telemetry")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	lc := connect(t, h, lamp, 4)
	defer lc.Disconnect()
	if _, err := lc.Subscribe("devices/lamp/messages/devicebound/#"); err != nil {
		t.Fatal(err)
	}
	addRoute(t, h, route.Route{Name: "site-a", Condition: "$twin.tags.site = 'A' AND $twin.tags.floor >= 2",
		Endpoints: []route.Endpoint{
			{Kind: route.KindNATS, Name: "plant.a.telemetry"},
			{Kind: route.KindStream, Name: "site-a"},
			{Kind: route.KindC2D, Target: "lamp"},
		},
		Enrichments: []route.Enrichment{{Key: "site", Value: "$twin.tags.site"}}})

	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	body := []byte{0xde, 0xad, 0xbe, 0xef} // not JSON: only the twin decides
	publish(t, c, dev.ID, body, protocol.Properties{ContentType: "application/octet-stream", MessageID: "m-1"})

	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.Data, body) || msg.Header.Get("Ferry-Device-Id") != "sensor" || msg.Header.Get("Ferry-Prop-site") != "A" {
		t.Fatalf("nats got %x %v", msg.Data, msg.Header)
	}
	routed := waitStream(t, h, "site-a", 1)
	if !bytes.Equal(routed[0].Body, body) || routed[0].DeviceID != "sensor" || routed[0].SystemProperties.MessageID != "m-1" ||
		routed[0].Properties["site"] != "A" {
		t.Fatalf("routed copy %+v", routed[0])
	}
	pk, err := lc.Next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pk.Payload, body) || !strings.Contains(pk.TopicName, "ferry-hops=1") || !strings.Contains(pk.TopicName, "ferry-source=sensor") {
		t.Fatalf("c2d %s %x", pk.TopicName, pk.Payload)
	}
	// Another site's device does not match.
	other := h.CreateDevice(t, "other")
	oc := connect(t, h, other, 4)
	defer oc.Disconnect()
	publish(t, oc, other.ID, body, protocol.Properties{})
	if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("nats got a message of %s", m.Header.Get("Ferry-Device-Id"))
	}
}

// TestRouteBodies covers the body forms: gzip JSON is inflated for the
// condition; a non-JSON body makes body conditions false (and counted),
// not an error; protobuf is decoded with the registered schema; an unknown
// schema and undecodable bytes are stored, flagged, not routed on body
// fields.
func TestRouteBodies(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	dev := h.CreateDevice(t, "agent")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	if _, err := h.Client.AddSchema(ctx, schema.Schema{Name: "pb_AlarmStatus", Descriptor: alarmDescriptor(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.AddSchema(ctx, schema.Schema{Name: "bad", Descriptor: []byte("not a descriptor")}); !fault.Is(err, fault.Invalid) {
		t.Fatalf("bad descriptor: %v", err)
	}
	addRoute(t, h, route.Route{Name: "hot", Condition: "$body.temperature > 30",
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "hot"}}})
	addRoute(t, h, route.Route{Name: "alarms", Condition: "proto-type = 'pb_AlarmStatus' AND $body.alarm_active = true",
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "alarms"}}})
	addRoute(t, h, route.Route{Name: "quiet", Condition: "proto-type = 'pb_AlarmStatus' AND $body.alarm_active = false",
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "quiet"}}})

	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(`{"temperature":40}`))
	zw.Close()
	publish(t, c, dev.ID, zb.Bytes(), protocol.Properties{ContentType: "application/json", ContentEncoding: "gzip"})
	publish(t, c, dev.ID, []byte("temperature=40"), protocol.Properties{ContentType: "text/plain"})
	pb := protocol.Properties{ContentType: "application/x-protobuf", App: []protocol.Property{{Key: "proto-type", Value: "pb_AlarmStatus"}}}
	publish(t, c, dev.ID, alarmStatus(true, "12:44:14"), pb)
	publish(t, c, dev.ID, alarmStatus(false, "12:45:00"), pb)
	publish(t, c, dev.ID, []byte{0xff, 0xff, 0xff}, pb) // undecodable
	unknown := protocol.Properties{ContentType: "application/x-protobuf", App: []protocol.Property{{Key: "proto-type", Value: "pb_Nope"}}}
	publish(t, c, dev.ID, alarmStatus(true, "x"), unknown)

	hot := waitStream(t, h, "hot", 1)
	if !bytes.Equal(hot[0].Body, zb.Bytes()) || hot[0].SystemProperties.ContentEncoding != "gzip" {
		t.Fatalf("hot copy changed the bytes: %x", hot[0].Body)
	}
	alarms := waitStream(t, h, "alarms", 1)
	if !bytes.Equal(alarms[0].Body, alarmStatus(true, "12:44:14")) {
		t.Fatalf("alarms copy %x", alarms[0].Body)
	}
	waitStream(t, h, "quiet", 1)
	hubtest.Eventually(t, 20*time.Second, func() error {
		m := scrape(t, h)
		for _, want := range []string{`ferry_route_body_unreadable_total{reason="not_json"}`, `ferry_route_body_unreadable_total{reason="protobuf"}`} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("metrics lack %s: %s", want, grep(m, "unreadable"))
			}
		}
		return nil
	})
	// Every message is stored whatever its body.
	if n := len(readStream(t, h, "default")); n != 6 {
		t.Fatalf("default stream holds %d messages, want 6", n)
	}
	// route test explains the protobuf verdict.
	res, err := h.Client.TestRoutes(ctx, route.TestRequest{Message: route.Sample{DeviceID: "agent",
		BodyBytes: alarmStatus(true, "t"), System: map[string]string{"contentType": "application/x-protobuf"},
		Properties: map[string]string{"proto-type": "pb_AlarmStatus"}}})
	if err != nil {
		t.Fatal(err)
	}
	var matched []string
	for _, v := range res.Routes {
		if v.Matched {
			matched = append(matched, v.Route)
		}
	}
	if strings.Join(matched, ",") != "alarms" || !strings.Contains(res.Body, "alarm_active") {
		t.Fatalf("test: matched %v, body %s, verdicts %+v", matched, res.Body, res.Routes)
	}
}

// alarmDescriptor is seed 000's AlarmStatus message as a FileDescriptorSet,
// built by hand (the test has no protoc).
func alarmDescriptor(t testing.TB) []byte {
	t.Helper()
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	boolean := descriptorpb.FieldDescriptorProto_TYPE_BOOL
	fds := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{{
		Name: proto.String("pb_AlarmStatus.proto"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("pb_AlarmStatus"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("alarm_active"), Number: proto.Int32(1), Type: &boolean, Label: &opt, JsonName: proto.String("alarmActive")},
				{Name: proto.String("time_utc"), Number: proto.Int32(2), Type: &str, Label: &opt, JsonName: proto.String("timeUtc")},
				{Name: proto.String("date_utc"), Number: proto.Int32(3), Type: &str, Label: &opt, JsonName: proto.String("dateUtc")},
			},
		}},
	}}}
	b, err := proto.Marshal(fds)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// alarmStatus encodes a pb_AlarmStatus.
func alarmStatus(active bool, at string) []byte {
	var b []byte
	if active {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, at)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendString(b, "2022-02-14")
}

// TestRouteAllowListAndLoop refuses deliveries the allow-list forbids and
// bounds a C2D loop between two devices that forward what they receive.
func TestRouteAllowListAndLoop(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	a, b, x := h.CreateDevice(t, "dev-a"), h.CreateDevice(t, "dev-b"), h.CreateDevice(t, "dev-x")
	if _, err := h.Client.PatchTwin(ctx, b.ID, []byte(`{"tags":{"role":"peer"}}`), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.PatchTwin(ctx, a.ID, []byte(`{"tags":{"role":"peer"}}`), ""); err != nil {
		t.Fatal(err)
	}
	addRoute(t, h, route.Route{Name: "peers", Condition: "IS_DEFINED($to)",
		Endpoints: []route.Endpoint{{Kind: route.KindC2D, TargetFrom: "to"}},
		Allow:     route.Allow{Sources: []string{"dev-a", "dev-b"}, TargetTags: map[string]string{"role": "peer"}}})
	ca, cb, cx := connect(t, h, a, 4), connect(t, h, b, 4), connect(t, h, x, 4)
	defer ca.Disconnect()
	defer cb.Disconnect()
	defer cx.Disconnect()
	for i, c := range []*hubtest.Conn{ca, cb, cx} {
		if granted, err := c.Subscribe("devices/" + []string{"dev-a", "dev-b", "dev-x"}[i] + "/messages/devicebound/#"); err != nil || granted[0] > 1 {
			t.Fatal(granted, err)
		}
	}
	// dev-x is not an allowed source; dev-x is not an allowed target.
	publish(t, cx, x.ID, []byte(`{}`), protocol.Properties{To: "dev-a"})
	publish(t, ca, a.ID, []byte(`{}`), protocol.Properties{To: "dev-x"})
	publish(t, ca, a.ID, []byte(`{}`), protocol.Properties{To: "nobody"})
	hubtest.Eventually(t, 10*time.Second, func() error {
		m := scrape(t, h)
		for _, want := range []string{`reason="source_not_allowed",route="peers"} 1`, `reason="target_not_allowed",route="peers"} 1`,
			`reason="unknown_target",route="peers"} 1`} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("metrics lack %s:\n%s", want, grep(m, "refused"))
			}
		}
		return nil
	})
	if pk, err := cx.Next(200 * time.Millisecond); err == nil {
		t.Fatalf("dev-x received %s", pk.TopicName)
	}

	// A ping-pong: each device forwards what it gets back to the sender,
	// keeping the properties (as the hop count asks). It stops at MaxHops.
	var wg sync.WaitGroup
	var forwarded atomic.Int32
	forward := func(c *hubtest.Conn, self, peer string) {
		defer wg.Done()
		for {
			pk, err := c.Next(3 * time.Second)
			if err != nil {
				return
			}
			top, err := protocol.ParseTopic(pk.TopicName)
			if err != nil || top.Kind != protocol.TopicC2D {
				continue
			}
			props, _ := protocol.ParsePropertyBag(top.Bag)
			var app []protocol.Property
			for _, p := range props.App {
				if p.Key == route.HopsProperty {
					app = append(app, p)
				}
			}
			_ = c.Ack(pk.PacketID)
			forwarded.Add(1)
			publish(t, c, self, pk.Payload, protocol.Properties{To: peer, App: app})
		}
	}
	// Ping before the forwarders read: a reader would take the PUBACK.
	publish(t, ca, a.ID, []byte(`"ping"`), protocol.Properties{To: "dev-b"})
	wg.Add(2)
	go forward(ca, a.ID, b.ID)
	go forward(cb, b.ID, a.ID)
	wg.Wait()
	if n := forwarded.Load(); n != 8 {
		t.Fatalf("the loop went %d hops, want 8 (MaxHops)", n)
	}
	if m := scrape(t, h); !strings.Contains(m, `reason="loop",route="peers"} 1`) {
		t.Fatalf("no loop refusal counted:\n%s", grep(m, "refused"))
	}
}

// TestRoutesAndPositionSurviveRestart stops the hub between messages: the
// route is still there, nothing already routed is routed again, and what
// was stored while the router was down is routed after the restart.
func TestRoutesAndPositionSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h, stop, err := hubtest.Launch(dir)
	if err != nil {
		t.Fatal(err)
	}
	dev := h.CreateDevice(t, "sensor")
	addRoute(t, h, route.Route{Name: "copy", Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "copies"}}})
	c := connect(t, h, dev, 4)
	for i := range 3 {
		publish(t, c, dev.ID, fmt.Appendf(nil, `{"n":%d}`, i), protocol.Properties{})
	}
	waitStream(t, h, "copies", 3)
	c.Disconnect()
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	h2 := hubtest.StartDir(t, dir)
	if r, err := h2.Client.Route(context.Background(), "copy"); err != nil || !r.Enabled {
		t.Fatalf("route after restart: %+v %v", r, err)
	}
	c2 := connect(t, h2, dev, 4)
	defer c2.Disconnect()
	for i := 3; i < 5; i++ {
		publish(t, c2, dev.ID, fmt.Appendf(nil, `{"n":%d}`, i), protocol.Properties{})
	}
	msgs := waitStream(t, h2, "copies", 5)
	time.Sleep(300 * time.Millisecond) // a re-delivery would show up here
	if msgs = readStream(t, h2, "copies"); len(msgs) != 5 {
		t.Fatalf("%d copies after restart, want 5", len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(m.Body) != want {
			t.Fatalf("copy %d is %s, want %s", i, m.Body, want)
		}
	}
}

// TestRouteLifecycleAndTwinEvents routes connect/disconnect, created and
// twin change events.
func TestRouteLifecycleAndTwinEvents(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	addRoute(t, h, route.Route{Name: "life", Source: route.LifecycleEvents,
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "life"}}})
	addRoute(t, h, route.Route{Name: "twins", Source: route.TwinChanges, Condition: "$body.tags.site = 'B'",
		Endpoints: []route.Endpoint{{Kind: route.KindStream, Name: "twins"}}})
	dev := h.CreateDevice(t, "ev-1")
	c := connect(t, h, dev, 4)
	c.Disconnect()
	if _, err := h.Client.PatchTwin(ctx, dev.ID, []byte(`{"tags":{"site":"B"}}`), ""); err != nil {
		t.Fatal(err)
	}
	life := waitStream(t, h, "life", 3)
	var ops []string
	for _, m := range life {
		ops = append(ops, m.Properties["opType"])
	}
	if strings.Join(ops, ",") != "createDeviceIdentity,deviceConnected,deviceDisconnected" {
		t.Fatalf("lifecycle events %v", ops)
	}
	tw := waitStream(t, h, "twins", 1)
	if tw[0].DeviceID != "ev-1" || !strings.Contains(string(tw[0].Body), `"site":"B"`) {
		t.Fatalf("twin event %s %s", tw[0].DeviceID, tw[0].Body)
	}
}
