package hub

import (
	"context"

	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/twin"
)

// deviceTwins adapts twin.Service to the broker's device-side needs.
type deviceTwins struct{ svc *twin.Service }

func (d deviceTwins) DeviceDocument(ctx context.Context, deviceID, moduleID string) ([]byte, error) {
	t, err := d.svc.Get(ctx, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return twin.RenderDevice(t), nil
}

func (d deviceTwins) PatchReported(ctx context.Context, deviceID, moduleID string, patch []byte) (int64, error) {
	return d.svc.PatchReported(twin.WithSource(ctx, "device"), deviceID, moduleID, patch)
}

// pushDesired sends a desired-properties change to the device when it is
// connected and subscribed; a device that is not gets the whole document
// with its next twin GET, which the SDKs do on every connect.
func (h *Hub) pushDesired(clientID string, ch twin.DesiredChange) {
	_ = h.broker.Deliver(clientID, protocol.DesiredPatchTopic(ch.Version), ch.Body(), 0)
}

// queries runs the query language against the hub's database.
type queries struct{ db query.Querier }

func (q queries) Run(ctx context.Context, text string, page query.Page) (query.Result, error) {
	return query.Run(ctx, q.db, text, page)
}
