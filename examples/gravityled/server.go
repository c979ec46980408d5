package main

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// MaxControllersLimit is the highest connection limit that can be set.
const MaxControllersLimit = 100

// maxBadFrames is how many malformed frames in a row a controller may send
// before it is disconnected (1007, invalid payload data).
const maxBadFrames = 20

const writeWait = 2 * time.Second

//go:embed web
var webFS embed.FS

// Server is the WebSocket server that controllers (phones) connect to.
// It accepts at most a number of controllers at once, changeable while it
// runs; the LEDs follow the newest frame of any of them.
type Server struct {
	LEDs *leds
	// OnControllers hears the number of connected controllers after each
	// change. It must not block.
	OnControllers func(n int)
	Logf          func(format string, args ...any)

	upgrader websocket.Upgrader
	http     *http.Server
	wg       sync.WaitGroup // one per connection handler

	mu       sync.Mutex
	max      int                          // guarded by mu
	conns    map[*websocket.Conn]struct{} // guarded by mu: the accepted controllers
	shutdown bool                         // guarded by mu
}

// NewServer returns a server that drives l and accepts max controllers.
func NewServer(l *leds, max int) *Server {
	s := &Server{LEDs: l, max: max, conns: map[*websocket.Conn]struct{}{}, Logf: log.Printf}
	s.upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	return s
}

// Handler serves the controller page at / and the WebSocket at /ws.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /ws", s.serveWS)
	return mux
}

// Start listens on addr and serves in the background; a port in use is
// an error here.
// With tlsCfg it serves HTTPS.
func (s *Server) Start(addr string, tlsCfg *tls.Config) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gravityled: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return ln.Addr(), nil
}

// MaxControllers returns the connection limit.
func (s *Server) MaxControllers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// SetMaxControllers changes the connection limit. Controllers already
// connected stay; new ones are refused while the limit is reached.
func (s *Server) SetMaxControllers(n int) error {
	if n < 0 || n > MaxControllersLimit {
		return fmt.Errorf("maxControllers must be between 0 and %d, got %d", MaxControllersLimit, n)
	}
	s.mu.Lock()
	old := s.max
	s.max = n
	s.mu.Unlock()
	if old != n {
		s.Logf("connection limit: %d controllers (was %d)", n, old)
	}
	return nil
}

// Controllers returns the number of connected controllers.
func (s *Server) Controllers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting, closes every controller's connection with
// 1001 (going away) and waits for their handlers until ctx ends, then
// drops the connections that did not answer.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var err error
	if s.http != nil {
		err = s.http.Shutdown(ctx) // does not wait for WebSockets (hijacked)
	}
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "the LED server is shutting down")
	for _, c := range conns {
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.Close()
		}
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// admit registers c as a controller, or says why it is refused.
func (s *Server) admit(c *websocket.Conn) (code int, reason string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return websocket.CloseGoingAway, "the LED server is shutting down", 0
	case len(s.conns) >= s.max:
		return websocket.CloseTryAgainLater, fmt.Sprintf("too many controllers: %d of %d connected, try again later", len(s.conns), s.max), 0
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return 0, "", len(s.conns)
}

func (s *Server) leave(c *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	n := len(s.conns)
	s.mu.Unlock()
	if n == 0 {
		if err := s.LEDs.Set(Duty{}); err != nil { // nobody steers: dark
			s.Logf("LEDs: %v", err)
		}
	}
	s.controllers(n)
	s.wg.Done()
}

func (s *Server) controllers(n int) {
	if s.OnControllers != nil {
		s.OnControllers(n)
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered the HTTP error
	}
	code, reason, n := s.admit(c)
	if code != 0 {
		s.Logf("refused controller %s: %s", r.RemoteAddr, reason)
		closeConn(c, code, reason)
		return
	}
	s.Logf("controller %s connected (%d connected)", r.RemoteAddr, n)
	s.controllers(n)
	defer s.leave(c)
	err = s.read(c)
	s.Logf("controller %s left: %v", r.RemoteAddr, err)
	_ = c.Close()
}

// closeConn sends a close frame and waits briefly for the peer's, so the
// reason is read before the TCP connection goes.
func closeConn(c *websocket.Conn, code int, reason string) {
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(writeWait))
	_ = c.SetReadDeadline(time.Now().Add(writeWait))
	for {
		if _, _, err := c.NextReader(); err != nil {
			break
		}
	}
	_ = c.Close()
}

// read handles one controller's frames until it leaves. Each good frame
// sets the LEDs and is answered with the duty cycles ({"left","right"});
// a malformed one is answered {"error": ...}.
func (s *Server) read(c *websocket.Conn) error {
	c.SetReadLimit(MaxFrameBytes)
	bad := 0
	for {
		kind, data, err := c.ReadMessage()
		if err != nil {
			return err // a close from the client, the read limit (1009 sent), a broken connection
		}
		var reply any
		t, err := parseFrame(kind, data)
		if err != nil {
			if bad++; bad >= maxBadFrames {
				reason := fmt.Sprintf("%d malformed frames in a row; last: %v", bad, err)
				closeConn(c, websocket.CloseInvalidFramePayloadData, truncate(reason, 120))
				return errors.New(reason)
			}
			reply = map[string]string{"error": err.Error()}
		} else {
			bad = 0
			d := dutyFor(t)
			if err := s.LEDs.Set(d); err != nil {
				s.Logf("LEDs: %v", err)
				reply = map[string]string{"error": "the LEDs could not be set"}
			} else {
				reply = d
			}
		}
		_ = c.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.WriteJSON(reply); err != nil {
			return err
		}
	}
}

// truncate keeps a close reason within the 123 bytes a close frame allows.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
