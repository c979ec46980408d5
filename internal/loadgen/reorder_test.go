package loadgen_test

import (
	"bufio"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/loadgen"
)

// startReorderingBroker runs a minimal MQTT responder that accepts every
// CONNECT and acknowledges each read's worth of QoS 1 PUBLISHes in reverse
// order, as a broker that acks from several goroutines might. It stops when
// the test ends.
func startReorderingBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// The loader closes every connection at the end of its run,
			// which ends serveReordering.
			wg.Go(func() { serveReordering(conn); conn.Close() })
		}
	})
	return ln.Addr().String()
}

func serveReordering(conn net.Conn) {
	br := bufio.NewReader(conn)
	var ids []uint16
	for {
		hb, err := br.ReadByte()
		if err != nil {
			return
		}
		n, _, err := packets.DecodeLength(br)
		if err != nil {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		switch hb >> 4 {
		case packets.Connect:
			conn.Write([]byte{packets.Connack << 4, 2, 0, 0})
		case packets.Publish:
			topicLen := int(body[0])<<8 | int(body[1])
			ids = append(ids, uint16(body[2+topicLen])<<8|uint16(body[3+topicLen]))
		case packets.Disconnect:
			return
		}
		if br.Buffered() > 0 || len(ids) == 0 {
			continue
		}
		var out []byte
		for _, id := range slices.Backward(ids) {
			out = append(out, packets.Puback<<4, 2, byte(id>>8), byte(id))
		}
		ids = ids[:0]
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func TestIngestOutOfOrderAcks(t *testing.T) {
	addr := startReorderingBroker(t)
	for _, tc := range []struct {
		name string
		rate float64
	}{{"unpaced", 0}, {"paced", 5000}} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := loadgen.Ingest(t.Context(), loadgen.IngestConfig{
				Addr: addr, Devices: devices(2), Window: 10, Rate: tc.rate,
				Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent == 0 || res.Acked != res.Sent || res.Errors != 0 {
				t.Fatalf("sent %d acked %d errors %d: want every message acked, no errors", res.Sent, res.Acked, res.Errors)
			}
		})
	}
}
