package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// Twins answers the device side of device twins. The hub adapts
// twin.Service to it.
type Twins interface {
	// DeviceDocument returns the body of a twin GET response.
	DeviceDocument(ctx context.Context, deviceID, moduleID string) ([]byte, error)
	// PatchReported applies a reported-properties merge patch and returns
	// the new reported version.
	PatchReported(ctx context.Context, deviceID, moduleID string, patch []byte) (int64, error)
}

// twinRequest answers a device's twin GET or reported PATCH on
// $iothub/twin/res/{status}/?$rid={rid}. Answers go out in request order
// because the device's read loop waits for each.
func (b *Broker) twinRequest(c *conn, pk packets.Packet, t protocol.Topic) error {
	if pk.FixedHeader.Qos == 1 {
		_ = c.writePacket(puback(pk.PacketID, packets.CodeSuccess))
	}
	rid := string(append([]byte(nil), t.RID...)) // t.RID points into the reused read buffer
	var (
		status  int
		version int64
		body    []byte
	)
	if b.cfg.Twins == nil {
		status, body = 503, twinError(fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "twins are not available"))
	} else {
		patch := bytes.Clone(pk.Payload)
		// A short-lived goroutine does the work: its stack (JSON, SQLite)
		// dies with it, and unlike the worker pool it does not bound how
		// many patches can wait together for one group commit.
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			switch t.Kind {
			case protocol.TopicTwinGet:
				body, err = b.cfg.Twins.DeviceDocument(ctx, c.deviceID, c.moduleID)
				status = 200
			default:
				version, err = b.cfg.Twins.PatchReported(ctx, c.deviceID, c.moduleID, patch)
				status = 204
			}
			if err != nil {
				status, version, body = twinStatus(err), 0, twinError(err)
				if status >= 500 {
					b.log.Error("twin request failed", "client", c.clientID, "error", err)
				}
			}
		}()
		<-done
	}
	// Azure answers on the response topic whether or not the device
	// subscribed to it; Ferry delivers only to subscribers, as the SDKs do
	// subscribe first.
	_ = b.Deliver(c.clientID, protocol.TwinResponseTopic(status, rid, version), body, 0)
	return packets.ErrRejectPacket
}

func twinStatus(err error) int {
	switch fault.KindOf(err) {
	case fault.Invalid, fault.TooLarge:
		return 400
	case fault.NotFound:
		return 404
	case fault.Throttled:
		return 429
	default:
		return 500
	}
}

// twinError is the body of a failed twin request: Node's SDK looks for
// errorCode in it (PROTOCOL.md §0.7), Python reads the status.
func twinError(err error) []byte {
	num := 500001
	if e := fault.As(err); e != nil && e.Num != 0 {
		num = e.Num
	}
	b, _ := json.Marshal(map[string]any{"errorCode": num, "message": fault.Public(err)})
	return b
}
