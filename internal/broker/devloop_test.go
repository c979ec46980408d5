package broker

import (
	"bytes"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func encoded(t testing.TB, pk packets.Packet) []byte {
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testConn(version byte) *conn {
	return &conn{b: &Broker{cfg: Config{MaxMessageBytes: 1024}}, version: version}
}

func TestParseFraming(t *testing.T) {
	pub := encoded(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7,
		TopicName: "devices/d/messages/events/a=b", Payload: []byte("hello"),
	})
	ping := encoded(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	stream := append(append([]byte{}, pub...), ping...)
	c := testConn(4)
	// Every prefix shorter than the first packet is incomplete, never an error.
	for i := 0; i < len(pub); i++ {
		used, pk, err := c.parse(stream[:i])
		if err != nil || pk != nil {
			t.Fatalf("prefix %d: used %d pk %v err %v", i, used, pk, err)
		}
		if used != 0 && used != len(pub) {
			t.Fatalf("prefix %d: needs %d, want %d", i, used, len(pub))
		}
	}
	used, pk, err := c.parse(stream)
	if err != nil || pk == nil || used != len(pub) || pk.TopicName != "devices/d/messages/events/a=b" || string(pk.Payload) != "hello" || pk.PacketID != 7 {
		t.Fatalf("publish: used %d pk %+v err %v", used, pk, err)
	}
	used, pk, err = c.parse(stream[len(pub):])
	if err != nil || pk == nil || pk.FixedHeader.Type != packets.Pingreq || used != len(ping) {
		t.Fatalf("pingreq: used %d pk %+v err %v", used, pk, err)
	}
	// Too large, malformed length, forbidden types.
	for name, in := range map[string][]byte{
		"too large":     {0x30, 0xff, 0xff, 0x7f},
		"bad length":    {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		"connect again": {0x10, 0x00},
		"pubrel":        {0x62, 0x02, 0x00, 0x01},
		"zero type":     {0x00, 0x00},
	} {
		if _, pk, err := c.parse(in); err == nil {
			t.Errorf("%s: parsed as %+v, want an error", name, pk)
		}
	}
}

// FuzzParsePacket feeds arbitrary bytes through the device loop's framing and
// decoding: it must return a packet, "need more", or an error, never panic,
// and never claim more bytes than it was given.
func FuzzParsePacket(f *testing.F) {
	f.Add([]byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}, byte(4))
	f.Add([]byte{0x32, 0x08, 0x00, 0x01, 'a', 0x00, 0x07, 0x00, 'x', 'y'}, byte(5))
	f.Add([]byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x01}, byte(4))
	f.Add([]byte{0xc0, 0x00}, byte(4))
	f.Add([]byte{0xe0, 0x00}, byte(5))
	f.Fuzz(func(t *testing.T, data []byte, version byte) {
		if version != 5 {
			version = 4
		}
		c := testConn(version)
		for len(data) > 0 {
			used, pk, err := c.parse(data)
			if err != nil || pk == nil {
				return
			}
			if used <= 0 || used > len(data) {
				t.Fatalf("parse used %d of %d bytes", used, len(data))
			}
			data = data[used:]
		}
	})
}

// FuzzReadConnect: the first packet of every connection, before any
// authentication, must never panic the hub.
func FuzzReadConnect(f *testing.F) {
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Keepalive: 60, ClientIdentifier: "dev1",
			UsernameFlag: true, Username: []byte("hub/dev1/?api-version=2021-04-12"), PasswordFlag: true, Password: []byte("SharedAccessSignature sr=x&sig=y&se=1")}}
	if err := pk.ConnectEncode(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = readConnect(bytes.NewReader(data), 1<<16)
	})
}
