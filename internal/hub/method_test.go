package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/method"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// answerMethods makes c answer every method call: status 200 and the
// request's payload echoed inside {"method":..., "echo":...}; the method
// "slow" is never answered.
func answerMethods(t testing.TB, c *hubtest.Conn) {
	t.Helper()
	if granted, err := c.Subscribe("$iothub/methods/POST/#"); err != nil || granted[0] > 1 {
		t.Fatalf("subscribe to methods: %v %v", granted, err)
	}
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
			if err != nil || top.Kind != protocol.TopicMethodRequest || top.Method == "slow" {
				continue
			}
			body := fmt.Sprintf(`{"method":%q,"echo":%s}`, top.Method, pk.Payload)
			if _, err := c.PublishAsync(protocol.MethodResponseTopic(200, top.RID), []byte(body)); err != nil {
				return
			}
		}
	}()
}

func TestDirectMethods(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "monitor-1")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	answerMethods(t, c)
	ctx := context.Background()

	// Many calls in flight to one device, each matched by its $rid.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.Client.InvokeMethod(ctx, dev.ID, "", api.MethodRequest{
				MethodName: "ProcessMessage", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), ResponseTimeoutInSeconds: 10})
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			want := fmt.Sprintf(`{"method":"ProcessMessage","echo":{"n":%d}}`, i)
			if resp.Status != 200 || string(resp.Payload) != want {
				t.Errorf("call %d: status %d payload %s, want 200 %s", i, resp.Status, resp.Payload, want)
			}
		}()
	}
	wg.Wait()

	// No payload is sent as null (Node's SDK cannot parse an empty body).
	resp, err := h.Client.InvokeMethod(ctx, dev.ID, "", api.MethodRequest{MethodName: "reboot"})
	if err != nil || string(resp.Payload) != `{"method":"reboot","echo":null}` {
		t.Fatalf("call without payload: %+v %v", resp, err)
	}

	// Refusals, each with Azure's status.
	cases := []struct {
		name string
		dev  string
		req  api.MethodRequest
		kind fault.Kind
	}{
		{"offline device", "ghost", api.MethodRequest{MethodName: "x"}, fault.NotFound},
		{"no method name", dev.ID, api.MethodRequest{}, fault.Invalid},
		{"name with a slash", dev.ID, api.MethodRequest{MethodName: "a/b"}, fault.Invalid},
		{"timeout too short", dev.ID, api.MethodRequest{MethodName: "x", ResponseTimeoutInSeconds: 2}, fault.Invalid},
		{"timeout too long", dev.ID, api.MethodRequest{MethodName: "x", ResponseTimeoutInSeconds: 301}, fault.Invalid},
		{"payload too large", dev.ID, api.MethodRequest{MethodName: "x", Payload: json.RawMessage(`"` + strings.Repeat("a", 130*1024) + `"`)}, fault.TooLarge},
	}
	for _, tc := range cases {
		_, err := h.Client.InvokeMethod(ctx, tc.dev, "", tc.req)
		if !fault.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.kind)
		}
	}
	if _, err := h.Client.InvokeMethod(ctx, "ghost", "", api.MethodRequest{MethodName: "x"}); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("offline device: %v", err)
	} else if e := fault.As(err); e == nil || e.Num != 404103 {
		t.Errorf("offline device error code: %+v, want 404103", e)
	}
}

func TestDirectMethodTimeoutAndConnectWait(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "late-1")
	ctx := context.Background()

	// The device comes online after the call was made; the connect timeout waits for it.
	done := make(chan error, 1)
	go func() {
		resp, err := h.Client.InvokeMethod(ctx, dev.ID, "", api.MethodRequest{MethodName: "hello", ConnectTimeoutInSeconds: 20, ResponseTimeoutInSeconds: 10})
		if err == nil && resp.Status != 200 {
			err = fmt.Errorf("status %d", resp.Status)
		}
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	answerMethods(t, c)
	if err := <-done; err != nil {
		t.Fatalf("call waiting for the device: %v", err)
	}

	// A device that never answers: 504 after the response timeout.
	start := time.Now()
	_, err := h.Client.InvokeMethod(ctx, dev.ID, "", api.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: 5})
	if e := fault.As(err); e == nil || e.Kind != fault.Timeout || e.Num != 504101 {
		t.Fatalf("unanswered call: %v, want a 504101 timeout", err)
	}
	// Well before the 30s default, however late a loaded machine answers.
	if d := time.Since(start); d < 5*time.Second || d > 20*time.Second {
		t.Fatalf("unanswered call ended after %s, want about 5s", d)
	}
	// An answer for no waiting call is dropped without harm.
	if _, err := c.PublishAsync(protocol.MethodResponseTopic(200, "no-such-rid"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if resp, err := h.Client.InvokeMethod(ctx, dev.ID, "", api.MethodRequest{MethodName: "after", ResponseTimeoutInSeconds: 5}); err != nil || resp.Status != 200 {
		t.Fatalf("call after a stray answer: %+v %v", resp, err)
	}
}

func TestInvokeCommand(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "cli-1")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	answerMethods(t, c)
	run := func(args ...string) (int, string, string) {
		var out, errb strings.Builder
		args = append(args, "--hub", h.OwnerConnectionString(), "--ca", h.CAFile())
		code := cli.Main(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, stderr := run("invoke", dev.ID, "ping", "--payload", `{"k":1}`, "--json")
	var got api.MethodResponse
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Status != 200 {
		t.Fatalf("invoke --json: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	var echo map[string]any
	if err := json.Unmarshal(got.Payload, &echo); err != nil || echo["method"] != "ping" {
		t.Fatalf("invoke --json payload %s", got.Payload)
	}
	if code, _, stderr := run("invoke", "nobody", "ping"); code != 3 || !strings.Contains(stderr, "not connected") {
		t.Fatalf("invoke on an offline device: exit %d, stderr %q, want 3", code, stderr)
	}
	if code, _, _ := run("invoke", dev.ID, "ping", "--payload", "{not json"); code != 2 {
		t.Fatalf("invoke with a bad payload: exit %d, want 2", code)
	}
}

// TestBinaryMethodPayloads: beyond Azure, a method's payload may be any
// bytes; the content type travels in the topics ($.ct) both ways.
func TestBinaryMethodPayloads(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "proto-1")
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	if _, err := c.Subscribe("$iothub/methods/POST/#"); err != nil {
		t.Fatal(err)
	}
	go func() {
		pk, err := c.Next(10 * time.Second)
		if err != nil {
			return
		}
		top, err := protocol.ParseTopic(pk.TopicName)
		if err != nil || !strings.Contains(top.Bag, "%24.ct=application%2Fx-protobuf") {
			_, _ = c.PublishAsync(protocol.MethodResponseTopic(400, top.RID), []byte(`"no content type"`))
			return
		}
		reply := append([]byte{0x00, 0xff}, pk.Payload...)
		_, _ = c.PublishAsync(protocol.MethodResponseTopic(200, top.RID)+"&%24.ct=application%2Fx-protobuf", reply)
	}()
	parcel := []byte{0x0a, 0x05, 'a', 'l', 'a', 'r', 'm', 0x10, 0x01}
	resp, err := h.Client.InvokeRaw(context.Background(), dev.ID, "", "ProcessMessage", parcel, "application/x-protobuf", 10*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || resp.ContentType != "application/x-protobuf" || !bytes.Equal(resp.Payload, append([]byte{0x00, 0xff}, parcel...)) {
		t.Fatalf("answer: status %d, %s, % x", resp.Status, resp.ContentType, resp.Payload)
	}
}

// TestQueuedCommands: a call for an offline device with a queue TTL is kept
// (durably: across a hub restart) and invoked when the device connects; its
// lifecycle is readable; one that waits past its TTL expires.
func TestQueuedCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := hubtest.StartDir(t, dir)
	dev := h.CreateDevice(t, "sleepy-1")
	ctx := context.Background()

	resp, cmd, err := h.Client.InvokeOrQueue(ctx, dev.ID, "", api.MethodRequest{MethodName: "wake", Payload: json.RawMessage(`{"n":1}`), ResponseTimeoutInSeconds: 10, QueueTTLInSeconds: 600})
	if err != nil || resp != nil || cmd == nil || cmd.State != method.StateQueued {
		t.Fatalf("queue a call: %+v %+v %v", resp, cmd, err)
	}
	_, stale, err := h.Client.InvokeOrQueue(ctx, dev.ID, "", api.MethodRequest{MethodName: "late", ResponseTimeoutInSeconds: 10, QueueTTLInSeconds: 1})
	if err != nil || stale == nil {
		t.Fatalf("queue a short-lived call: %+v %v", stale, err)
	}
	if _, _, err := h.Client.InvokeOrQueue(ctx, "ghost", "", api.MethodRequest{MethodName: "x", QueueTTLInSeconds: 60}); !fault.Is(err, fault.NotFound) {
		t.Fatalf("queue for an unknown device: %v", err)
	}
	// The hub restarts; the calls are still there.
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the short-lived call's TTL passes
	h = hubtest.StartDir(t, dir)
	dev.Host = h.DeviceHost()
	if got, err := h.Client.Command(ctx, cmd.ID); err != nil || got.State != method.StateQueued {
		t.Fatalf("after the restart: %+v %v", got, err)
	}
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	answerMethods(t, c)
	hubtest.Eventually(t, 10*time.Second, func() error {
		got, err := h.Client.Command(ctx, cmd.ID)
		if err != nil || got.State != method.StateCompleted {
			return fault.Invalidf("command %+v %v", got, err)
		}
		if got.ResultStatus != 200 || string(got.ResultPayload) != `{"method":"wake","echo":{"n":1}}` {
			return fault.Invalidf("result %d %s", got.ResultStatus, got.ResultPayload)
		}
		return nil
	})
	hubtest.Eventually(t, 10*time.Second, func() error {
		got, err := h.Client.Command(ctx, stale.ID)
		if err != nil || got.State != method.StateExpired {
			return fault.Invalidf("short-lived command %+v %v", got, err)
		}
		return nil
	})
	// An online device is called at once, queue TTL or not.
	resp, cmd, err = h.Client.InvokeOrQueue(ctx, dev.ID, "", api.MethodRequest{MethodName: "now", QueueTTLInSeconds: 600})
	if err != nil || cmd != nil || resp == nil || resp.Status != 200 {
		t.Fatalf("call an online device: %+v %+v %v", resp, cmd, err)
	}
}
