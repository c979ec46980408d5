package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// netListener serves MQTT on a net.Listener that is bound before the broker
// starts, so that a port conflict is a start-up error and tests can listen on
// port 0 and ask for the bound address.
type netListener struct {
	id     string
	serve  func(listener string, c net.Conn, establish listeners.EstablishFn)
	ln     net.Listener
	log    *slog.Logger
	closed atomic.Bool
	wg     sync.WaitGroup
}

var _ listeners.Listener = (*netListener)(nil)

func listen(id, addr string, tlsConfig *tls.Config, serve func(string, net.Conn, listeners.EstablishFn)) (*netListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return &netListener{id: id, ln: ln, serve: serve}, nil
}

func (l *netListener) Init(log *slog.Logger) error { l.log = log; return nil }
func (l *netListener) ID() string                  { return l.id }
func (l *netListener) Address() string             { return l.ln.Addr().String() }
func (l *netListener) Protocol() string            { return l.id }

func (l *netListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond) // out of file descriptors: back off instead of spinning
				continue
			}
			l.log.Error("mqtt accept failed", "listener", l.id, "error", err)
			return
		}
		l.wg.Add(1)
		go l.handshake(c, establish)
	}
}

// handshake completes a TLS handshake and reads the CONNECT; the connection
// is then served on a new goroutine, so that the deep stacks of the TLS
// handshake and the authentication die with this one instead of staying
// with the connection for its whole life.
func (l *netListener) handshake(c net.Conn, establish listeners.EstablishFn) {
	defer l.wg.Done()
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			l.log.Debug("tls handshake failed", "listener", l.id, "remote", c.RemoteAddr().String(), "error", err)
			_ = c.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	l.serve(l.id, c, establish)
}

func (l *netListener) Close(closeClients listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		_ = l.ln.Close()
		closeClients(l.id)
	}
}

// quietClose reports errors that are the ordinary end of a connection.
func quietClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, packets.ErrServerShuttingDown)
}

// wsListener accepts MQTT over WebSockets from the hub's HTTP server
// (paths /$iothub/websocket and /mqtt), so that WebSockets share the HTTPS
// port with the REST API as on Azure IoT Hub.
type wsListener struct {
	id        string
	serve     func(listener string, c net.Conn, establish listeners.EstablishFn)
	log       *slog.Logger
	establish atomic.Pointer[listeners.EstablishFn]
	upgrader  websocket.Upgrader
	closed    atomic.Bool
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, serve func(string, net.Conn, listeners.EstablishFn)) *wsListener {
	return &wsListener{
		id:    id,
		serve: serve,
		upgrader: websocket.Upgrader{
			Subprotocols:    []string{"mqtt"},
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			// Devices are not browsers; the console authenticates its own way.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
}

func (l *wsListener) Init(log *slog.Logger) error { l.log = log; return nil }
func (l *wsListener) ID() string                  { return l.id }
func (l *wsListener) Address() string             { return "/$iothub/websocket" }
func (l *wsListener) Protocol() string            { return "ws" }
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish.Store(&establish)
}
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	if l.closed.CompareAndSwap(false, true) {
		closeClients(l.id)
	}
}

// ServeHTTP upgrades the request and runs the MQTT connection on it until it ends.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	est := l.establish.Load()
	if est == nil || l.closed.Load() {
		http.Error(w, "mqtt over websockets is not available", http.StatusServiceUnavailable)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered already
	}
	// The HTTP server's goroutine serves the connection until it ends.
	done := make(chan struct{})
	wc := &wsConn{Conn: c.UnderlyingConn(), c: c, done: done}
	l.serve(l.id, wc, *est)
	<-done
}

// wsConn presents a WebSocket as a byte stream. MQTT packets may span frames.
type wsConn struct {
	net.Conn
	c    *websocket.Conn
	r    io.Reader // reader of the current frame, nil between frames
	done chan struct{}
	once sync.Once
}

// Close closes the WebSocket and releases the HTTP handler that waits for it.
func (ws *wsConn) Close() error {
	err := ws.c.Close()
	ws.once.Do(func() { close(ws.done) })
	return err
}

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("mqtt over websockets needs binary frames")
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) SetDeadline(t time.Time) error {
	if err := ws.c.SetReadDeadline(t); err != nil {
		return err
	}
	return ws.c.SetWriteDeadline(t)
}
func (ws *wsConn) SetReadDeadline(t time.Time) error  { return ws.c.SetReadDeadline(t) }
func (ws *wsConn) SetWriteDeadline(t time.Time) error { return ws.c.SetWriteDeadline(t) }
