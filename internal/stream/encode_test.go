package stream

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// sample returns a message with every field set.
func sample(i int) Message {
	return Message{
		Group: "plant-a", Stream: "temps", DeviceID: "dev-1", ModuleID: "mod",
		EnqueuedTime: time.Unix(1_700_000_000, int64(i)).UTC(), AuthMethod: "sas",
		MessageID: "m1", CorrelationID: "c1", UserID: "u1", To: "/devices/dev-1/messages/events",
		ContentType: "application/json", ContentEncoding: "utf-8", Expiry: "2030-01-01T00:00:00Z",
		Component: "thermostat1", InterfaceID: "dtmi:x;1", OutputName: "out1",
		CreationTime: "2024-01-01T00:00:00Z", MessageType: "Will",
		Properties: []Property{{"a", "1"}, {"", ""}, {"k", "v"}},
		Body:       []byte(`{"t":21.5}`),
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := []Message{
		sample(1),
		{DeviceID: "d", Body: []byte("x")}, // defaults, zero time
		{Group: DefaultName, Stream: DefaultName, DeviceID: "d2", EnqueuedTime: time.Unix(0, 1).UTC()},
		{},
	}
	data := Encode(nil, in)
	if data[0] != batchVersion {
		t.Fatalf("version byte %d", data[0])
	}
	out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]Message, len(in))
	copy(want, in)
	for i := range want {
		want[i].Group, want[i].Stream = orDefault(want[i].Group), orDefault(want[i].Stream)
		want[i].Cursor.Index = uint32(i)
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, want)
	}
}

func TestRecordSizeMatches(t *testing.T) {
	for _, m := range []Message{sample(3), {}, {Body: bytes.Repeat([]byte("x"), 300)}, {EnqueuedTime: time.Unix(-5, 0)}} {
		got := len(appendRecord(nil, &m))
		if want := recordSize(&m); got != want {
			t.Errorf("recordSize = %d, appendRecord wrote %d", want, got)
		}
	}
}

func TestAppendRecordNoAlloc(t *testing.T) {
	m := sample(1)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() { buf = appendRecord(buf[:0], &m) })
	if allocs != 0 {
		t.Errorf("appendRecord allocates %v times", allocs)
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	good := Encode(nil, []Message{sample(1)})
	for name, data := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"truncated":   good[:len(good)-5],
		"unknownBits": {batchVersion, 3, 0, 0x80, 0x80},
		"hugeProps":   {batchVersion, 4, 0, 0, 0xff, 0x7f},
	} {
		if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(Encode(nil, []Message{sample(1), {DeviceID: "d"}}))
	f.Add([]byte{batchVersion})
	f.Add([]byte{batchVersion, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Decode(Encode(nil, msgs))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(msgs, again) {
			t.Fatalf("re-encode changed messages:\n%+v\n%+v", msgs, again)
		}
		for i := range msgs {
			rec := appendRecord(nil, &msgs[i])
			if len(rec) != recordSize(&msgs[i]) {
				t.Fatalf("recordSize mismatch")
			}
		}
	})
}
