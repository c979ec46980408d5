package device_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
)

func TestChunkingReassembles(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	body := make([]byte, 600_000)
	rand.Read(body)
	s := c.Stream("", "files")
	ctx := context.Background()
	info, err := s.Enqueue(ctx, device.Message{Body: body, ID: "file-1", BatchID: "night",
		Properties: map[string]string{"name": "dump.bin"}})
	if err != nil {
		t.Fatalf("Enqueue of %d bytes: %v", len(body), err)
	}
	if info.ID != "file-1" {
		t.Fatalf("MessageInfo.ID = %q, want the logical id", info.ID)
	}
	if err := s.Send(ctx, device.Message{Body: body[:300_000]}); err != nil {
		t.Fatalf("Send of a chunked message: %v", err)
	}
	flush(t, c)

	var chunks []api.Message
	for _, m := range e.read(t) {
		if m.Properties["message-id"] == "file-1" {
			chunks = append(chunks, m)
		}
	}
	if len(chunks) != 3 {
		t.Fatalf("hub holds %d chunks of file-1, want 3", len(chunks))
	}
	sort.Slice(chunks, func(i, j int) bool {
		a, _ := strconv.Atoi(chunks[i].Properties["chunk-id"])
		b, _ := strconv.Atoi(chunks[j].Properties["chunk-id"])
		return a < b
	})
	var joined []byte
	for i, m := range chunks {
		want := "file-1#" + strconv.Itoa(i)
		if m.SystemProperties.MessageID != want || m.Properties["chunk-count"] != "3" ||
			m.Properties["batch-id"] != "night" || m.Properties["name"] != "dump.bin" {
			t.Fatalf("chunk %d stored as id %q, properties %v", i, m.SystemProperties.MessageID, m.Properties)
		}
		if len(m.Body) > device.DefaultChunkSize {
			t.Fatalf("chunk %d holds %d bytes, over the chunk size", i, len(m.Body))
		}
		joined = append(joined, m.Body...)
	}
	if !bytes.Equal(joined, body) {
		t.Fatal("reassembled chunks differ from the enqueued body")
	}
}

func TestChunkingOffRefusesLargeBodies(t *testing.T) {
	e := newEnv(t, false)
	c := e.start(t)
	s := c.Stream("", "x", device.WithChunkSize(0))
	_, err := s.Enqueue(context.Background(), device.Message{Body: make([]byte, device.MaxBodyBytes+1)})
	if !errors.Is(err, device.ErrInvalidMessage) || !strings.Contains(err.Error(), "chunking is off") {
		t.Fatalf("Enqueue over the limit with chunking off: %v", err)
	}
	small := c.Stream("", "x", device.WithMaxMessageBytes(1000))
	if _, err := small.Enqueue(context.Background(), device.Message{Body: make([]byte, 1001)}); !errors.Is(err, device.ErrInvalidMessage) {
		t.Fatalf("Enqueue over WithMaxMessageBytes: %v", err)
	}
	if n, _ := c.Pending(); n != 0 {
		t.Fatalf("refused messages left %d records in the store", n)
	}
}

func TestCompression(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	ctx := context.Background()
	text := []byte(strings.Repeat(`{"temperature":21.5,"humidity":40}`, 200))
	noise := make([]byte, 2000)
	rand.Read(noise)
	for _, level := range []device.Compression{device.Fastest, device.SmallestSize} {
		s := c.Stream("", "z", device.WithCompression(level))
		if err := s.Send(ctx, device.Message{Body: text, ID: "text-" + strconv.Itoa(int(level)),
			ContentType: "application/json", ContentEncoding: "utf-8"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Send(ctx, device.Message{Body: noise, ID: "noise-" + strconv.Itoa(int(level))}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.read(t)
	if len(msgs) != 4 {
		t.Fatalf("hub holds %d messages, want 4", len(msgs))
	}
	for _, m := range msgs {
		switch {
		case strings.HasPrefix(m.SystemProperties.MessageID, "text-"):
			if m.SystemProperties.ContentEncoding != "gzip" || len(m.Body) >= len(text)/4 {
				t.Fatalf("compressible body stored with encoding %q, %d bytes", m.SystemProperties.ContentEncoding, len(m.Body))
			}
			zr, err := gzip.NewReader(bytes.NewReader(m.Body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, text) {
				t.Fatalf("gunzipped body differs (err %v)", err)
			}
			if m.SystemProperties.ContentType != "application/json" {
				t.Fatalf("content type %q lost", m.SystemProperties.ContentType)
			}
		default:
			if m.SystemProperties.ContentEncoding != "" || !bytes.Equal(m.Body, noise) {
				t.Fatalf("incompressible body was changed: encoding %q, %d bytes", m.SystemProperties.ContentEncoding, len(m.Body))
			}
		}
	}
}

func TestBatchesAndCompletions(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	ctx := context.Background()
	s := c.Stream("", "recordings")
	for i := range 3 {
		if _, err := s.Enqueue(ctx, device.Message{Body: []byte{byte(i)}, BatchID: "rec-7", BatchSliceID: "mic-a"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, part := range []string{"he", "llo"} {
		if _, err := s.Enqueue(ctx, device.Message{Body: []byte(part), ID: "greeting", ChunkID: strconv.Itoa(i), BatchID: "rec-7"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CompleteMessage(ctx, "rec-7", "greeting"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompleteBatch(ctx, "rec-7"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []device.Message{
		{ChunkID: "0"}, // a chunk needs its message's id
		{Properties: map[string]string{"batch-id": "x"}},
		{Properties: map[string]string{"chunk-count": "2"}},
	} {
		if _, err := s.Enqueue(ctx, bad); !errors.Is(err, device.ErrInvalidMessage) {
			t.Fatalf("Enqueue(%+v) = %v, want ErrInvalidMessage", bad, err)
		}
	}
	if _, err := s.CompleteBatch(ctx, ""); !errors.Is(err, device.ErrInvalidMessage) {
		t.Fatalf("CompleteBatch(\"\") = %v", err)
	}
	flush(t, c)
	msgs := e.read(t)
	if len(msgs) != 7 {
		t.Fatalf("hub holds %d messages, want 7", len(msgs))
	}
	for _, m := range msgs[:3] {
		if m.Properties["batch-id"] != "rec-7" || m.Properties["batch-slice-id"] != "mic-a" {
			t.Fatalf("batch message properties %v", m.Properties)
		}
	}
	for i, m := range msgs[3:5] {
		if m.SystemProperties.MessageID != "greeting#"+strconv.Itoa(i) || m.Properties["chunk-id"] != strconv.Itoa(i) ||
			m.Properties["message-id"] != "greeting" {
			t.Fatalf("hand-made chunk %d stored as %q %v", i, m.SystemProperties.MessageID, m.Properties)
		}
	}
	if p := msgs[5].Properties; p["complete-message"] != "true" || p["message-id"] != "greeting" || len(msgs[5].Body) != 0 {
		t.Fatalf("message completion stored as %v", p)
	}
	if p := msgs[6].Properties; p["complete-batch"] != "true" || p["batch-id"] != "rec-7" {
		t.Fatalf("batch completion stored as %v", p)
	}
}

func TestStreamGroups(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	ctx := context.Background()
	if err := c.Stream("logs", "pump-3").Send(ctx, device.Message{Body: []byte("started"), ID: "g1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Stream("", "").Send(ctx, device.Message{Body: []byte("plain"), ID: "g2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream("bad group", "x").Enqueue(ctx, device.Message{}); !errors.Is(err, device.ErrInvalidMessage) {
		t.Fatalf("Enqueue to a bad group name: %v", err)
	}
	msgs := e.read(t)
	if len(msgs) != 2 {
		t.Fatalf("hub holds %d messages, want 2", len(msgs))
	}
	if m := msgs[0]; m.Group != "logs" || m.Stream != "pump-3" {
		t.Fatalf("grouped message stored in %q/%q", m.Group, m.Stream)
	}
	if m := msgs[1]; m.Group != "default" || m.Stream != "default" {
		t.Fatalf("default message stored in %q/%q", m.Group, m.Stream)
	}
}

func TestComponentTelemetry(t *testing.T) {
	e := newEnv(t, true)
	c := e.start(t)
	if err := c.Stream("", "").Send(context.Background(), device.Message{Body: []byte(`{"temperature":21}`),
		Component: "thermostat1", ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	msgs := e.read(t)
	if len(msgs) != 1 || msgs[0].SystemProperties.Component != "thermostat1" {
		t.Fatalf("hub holds %+v, want component thermostat1", msgs)
	}
}
