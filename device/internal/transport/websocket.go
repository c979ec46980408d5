package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
)

// webSocketPath is where Azure IoT Hub (and Ferry) serve MQTT over
// WebSockets.
const webSocketPath = "/$iothub/websocket"

// upgrade runs the WebSocket handshake (subprotocol "mqtt") over nc, which
// is already TLS when TLS is on, and returns a net.Conn that carries MQTT
// in binary frames.
func upgrade(ctx context.Context, nc net.Conn, host string) (net.Conn, error) {
	d := websocket.Dialer{
		NetDialContext:   func(context.Context, string, string) (net.Conn, error) { return nc, nil },
		Subprotocols:     []string{"mqtt"},
		HandshakeTimeout: connectTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	// The scheme is ws: TLS, if any, is already under nc.
	u := url.URL{Scheme: "ws", Host: host, Path: webSocketPath}
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("transport: websocket upgrade: HTTP %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("transport: websocket upgrade: %w", err)
	}
	if ws.Subprotocol() != "mqtt" {
		ws.Close()
		return nil, fmt.Errorf("transport: websocket upgrade: the hub chose subprotocol %q, not mqtt", ws.Subprotocol())
	}
	return &wsConn{Conn: ws}, nil
}

// wsConn adapts a WebSocket to net.Conn: reads run across frame boundaries
// (an MQTT packet may span frames, a frame may hold several packets), and
// each Write is one binary frame.
type wsConn struct {
	*websocket.Conn
	r io.Reader // the current frame's reader, nil between frames
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("transport: websocket: the hub sent a text frame")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
