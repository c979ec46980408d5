package hub_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/c2d"
	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// nextPublish returns the next PUBLISH the hub sends to c.
func nextPublish(t *testing.T, c *hubtest.Conn, within time.Duration) packets.Packet {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		pk, err := c.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("no device-bound message: %v", err)
		}
		if pk.FixedHeader.Type == packets.Publish {
			return pk
		}
	}
	t.Fatal("no device-bound message")
	return packets.Packet{}
}

func TestC2DQueueDeliveryAndFeedback(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "c2d-1")
	ctx := context.Background()

	// Queued while the device is offline, delivered in order once it subscribes.
	first, err := h.Client.SendC2D(ctx, dev.ID, []byte("one"), api.C2DOptions{MessageID: "m-1", Ack: c2d.AckFull,
		ContentType: "text/plain", Properties: map[string]string{"kind": "greeting"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.MessageID != "m-1" {
		t.Fatalf("accepted %+v", first)
	}
	for _, body := range []string{"two", "three"} {
		if _, err := h.Client.SendC2D(ctx, dev.ID, []byte(body), api.C2DOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if pending, err := h.Client.PendingC2D(ctx, dev.ID); err != nil || len(pending) != 3 {
		t.Fatalf("pending: %d %v", len(pending), err)
	}
	c, code, err := hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), ManualAck: true})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	if _, err := c.Subscribe("devices/" + dev.ID + "/messages/devicebound/#"); err != nil {
		t.Fatal(err)
	}
	pk := nextPublish(t, c, 5*time.Second)
	top, err := protocol.ParseTopic(pk.TopicName)
	if err != nil || top.Kind != protocol.TopicC2D || string(pk.Payload) != "one" || pk.FixedHeader.Qos != 1 {
		t.Fatalf("first message: %q %q qos %d %v", pk.TopicName, pk.Payload, pk.FixedHeader.Qos, err)
	}
	props, err := protocol.ParsePropertyBag(top.Bag)
	if err != nil || props.MessageID != "m-1" || props.ContentType != "text/plain" {
		t.Fatalf("properties %+v %v", props, err)
	}
	if v, _ := props.Get("kind"); v != "greeting" {
		t.Fatalf("application properties %+v", props.App)
	}
	// Not acknowledged: nothing else comes (one in flight), and after a
	// reconnect the same message comes again.
	if pk2, err := c.Next(300 * time.Millisecond); err == nil && pk2.FixedHeader.Type == packets.Publish {
		t.Fatalf("a second message came while the first was unacknowledged: %q", pk2.Payload)
	}
	c.Close()
	c, code, err = hubtest.Dial(h.MQTTAddr("tls").String(), h.TLSConfig(), hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), ManualAck: true})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	defer c.Disconnect()
	// The persistent session brings the subscription back without SUBSCRIBE.
	for _, want := range []string{"one", "two", "three"} {
		pk := nextPublish(t, c, 5*time.Second)
		if string(pk.Payload) != want {
			t.Fatalf("got %q, want %q", pk.Payload, want)
		}
		if err := c.Ack(pk.PacketID); err != nil {
			t.Fatal(err)
		}
	}
	hubtest.Eventually(t, 20*time.Second, func() error {
		pending, err := h.Client.PendingC2D(ctx, dev.ID)
		if err != nil || len(pending) != 0 {
			return fault.Invalidf("%d still pending (%v)", len(pending), err)
		}
		return nil
	})
	var fb *api.FeedbackPage
	hubtest.Eventually(t, 20*time.Second, func() error {
		fb, err = h.Client.C2DFeedback(ctx, 0, 10)
		if err != nil || len(fb.Feedback) != 1 {
			return fault.Invalidf("feedback %+v %v", fb, err)
		}
		return nil
	})
	if f := fb.Feedback[0]; f.OriginalMessageID != "m-1" || f.StatusCode != c2d.StatusSuccess || f.DeviceID != dev.ID {
		t.Fatalf("feedback %+v", f)
	}
}

func TestC2DRefusalsExpiryAndPurge(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "c2d-2")
	ctx := context.Background()

	if _, err := h.Client.SendC2D(ctx, "ghost", []byte("x"), api.C2DOptions{}); !fault.Is(err, fault.NotFound) {
		t.Errorf("to an unknown device: %v, want not found", err)
	}
	if _, err := h.Client.SendC2D(ctx, dev.ID, bytes.Repeat([]byte("x"), 65*1024), api.C2DOptions{}); !fault.Is(err, fault.TooLarge) {
		t.Errorf("65 KiB message: %v, want too large", err)
	}
	if _, err := h.Client.SendC2D(ctx, dev.ID, []byte("x"), api.C2DOptions{Ack: "sometimes"}); !fault.Is(err, fault.Invalid) {
		t.Errorf("bad ack mode: %v, want invalid", err)
	}
	if _, err := h.Client.SendC2D(ctx, dev.ID, []byte("x"), api.C2DOptions{TTL: 72 * time.Hour}); !fault.Is(err, fault.Invalid) {
		t.Errorf("ttl beyond 48h: %v, want invalid", err)
	}

	// An expired message is not delivered; its sender hears of it.
	if _, err := h.Client.SendC2D(ctx, dev.ID, []byte("stale"), api.C2DOptions{MessageID: "old", TTL: 500 * time.Millisecond, Ack: c2d.AckNegative}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	c := connect(t, h, dev, 4)
	if _, err := c.Subscribe("devices/" + dev.ID + "/messages/devicebound/#"); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 20*time.Second, func() error {
		fb, err := h.Client.C2DFeedback(ctx, 0, 10)
		if err != nil || len(fb.Feedback) != 1 || fb.Feedback[0].StatusCode != c2d.StatusExpired {
			return fault.Invalidf("feedback %+v %v", fb, err)
		}
		return nil
	})
	if pk, err := c.Next(200 * time.Millisecond); err == nil && pk.FixedHeader.Type == packets.Publish {
		t.Fatalf("an expired message was delivered: %q", pk.Payload)
	}
	dl, err := h.Client.C2DDeadLetters(ctx, 0, 10)
	if err != nil || len(dl.DeadLetters) != 1 || dl.DeadLetters[0].Message.MessageID != "old" || dl.DeadLetters[0].Reason != c2d.StatusExpired {
		t.Fatalf("dead letters: %+v %v", dl, err)
	}
	c.Disconnect()

	// The queue holds 50 messages (Azure's default); the 51st is refused.
	for i := 0; i < 50; i++ {
		if _, err := h.Client.SendC2D(ctx, dev.ID, []byte("q"), api.C2DOptions{}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	_, err = h.Client.SendC2D(ctx, dev.ID, []byte("q"), api.C2DOptions{})
	if e := fault.As(err); e == nil || e.Kind != fault.Forbidden || e.Num != 403004 {
		t.Fatalf("51st message: %v, want 403004 DeviceMaximumQueueDepthExceeded", err)
	}
	res, err := h.Client.PurgeC2D(ctx, dev.ID)
	if err != nil || res.TotalMessagesPurged != 50 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	if _, err := h.Client.SendC2D(ctx, dev.ID, []byte("after purge"), api.C2DOptions{}); err != nil {
		t.Fatalf("send after purge: %v", err)
	}
}

func TestC2DCommands(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "c2d-cli")
	run := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := cli.Main(context.Background(), append(args, "--hub", h.OwnerConnectionString(), "--ca", h.CAFile()), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("c2d", "send", dev.ID, "--body", "hello", "--prop", "kind=greeting", "--ack", "full", "--message-id", "cli-1", "--json"); code != 0 || !strings.Contains(out, `"messageId": "cli-1"`) {
		t.Fatalf("c2d send: %d %s", code, out)
	}
	if code, out := run("c2d", "pending", dev.ID); code != 0 || !strings.Contains(out, "cli-1") {
		t.Fatalf("c2d pending: %d %s", code, out)
	}
	if code, out := run("c2d", "purge", dev.ID); code != 0 || !strings.Contains(out, "purged 1 messages") {
		t.Fatalf("c2d purge: %d %s", code, out)
	}
	if code, out := run("c2d", "feedback"); code != 0 || !strings.Contains(out, "Purged") {
		t.Fatalf("c2d feedback: %d %s", code, out)
	}
	if code, _ := run("c2d", "send", "nobody", "--body", "x"); code != 3 {
		t.Fatalf("c2d send to an unknown device: exit %d, want 3", code)
	}
}
