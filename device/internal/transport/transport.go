package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Transport is a device's self-healing MQTT connection. Its methods are safe
// for concurrent use.
type Transport struct {
	cfg    Config
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the run loop and status goroutine ended
	status *statusQueue

	mu        sync.Mutex
	cur       *conn         // the connection accepting publishes, or nil
	connected chan struct{} // closed while cur != nil; replaced when it goes
	changed   chan struct{} // closed and replaced whenever cur changes
	closed    bool
	closeOnce sync.Once
}

// Start returns a transport that connects in the background and keeps
// reconnecting until Close. It never fails for network reasons; an invalid
// Config is reported as status Closed with the error. ctx only carries
// values: cancelling it does not stop the transport, Close does, so that
// the owner decides when the in-flight publishes are given up.
func Start(ctx context.Context, cfg Config) *Transport {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t := &Transport{cfg: cfg, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		connected: make(chan struct{}), changed: make(chan struct{})}
	err := t.cfg.setDefaults()
	t.status = newStatusQueue(cfg.OnStatus)
	go func() {
		defer close(t.done)
		defer t.status.stop()
		if err != nil {
			t.markClosed()
			t.status.push(Closed, err)
			return
		}
		t.run()
	}()
	return t
}

// run owns every connection: it dials, waits for the connection to die or
// its token to near expiry, and backs off between failed attempts.
func (t *Transport) run() {
	cfg := &t.cfg
	attempt := 0
	renewal := false // the last connection ended for a token renewal
loop:
	for {
		if !renewal {
			t.status.push(Connecting, nil)
		}
		c, exp, err := t.dial(t.ctx)
		if t.ctx.Err() != nil {
			if c != nil {
				c.shutdown(ErrClosed)
			}
			break loop
		}
		if err != nil {
			cfg.Logger.Warn("transport: connect failed", "attempt", attempt, "err", err)
			t.status.push(Disconnected, err)
			renewal = false
			if t.credentialsRefused(err) {
				attempt = 0 // new credentials: retry soon, from the start of the backoff
			}
			if !t.sleep(cfg.Backoff.Delay(attempt)) {
				break loop
			}
			attempt++
			continue
		}
		up := time.Now()
		t.setConn(c)
		if !renewal {
			t.status.push(Connected, nil)
		}
		renewal = false
		// Renew when 90% of the token's life has passed, and at least a
		// drain and a reconnect before it ends: the hub closes a connection
		// when its token expires, and a renewal should never meet that.
		// Very short tokens renew at half their life.
		lead := max(cfg.TokenTTL/10, drainTimeout+5*time.Second)
		renew := time.NewTimer(max(time.Until(exp)-lead, cfg.TokenTTL/2))
		select {
		case <-t.ctx.Done():
		case <-c.dead:
		case <-renew.C:
			renewal = true
		}
		renew.Stop()
		t.setConn(nil)
		if time.Since(up) >= cfg.Backoff.StablePeriod {
			attempt = 0
		}
		switch {
		case t.ctx.Err() != nil:
			c.shutdown(ErrClosed)
		case renewal:
			cfg.Logger.Debug("transport: renewing the token")
			c.stopAccepting()
			c.drain(t.ctx, drainTimeout)
			if t.ctx.Err() != nil {
				c.shutdown(ErrClosed) // Close came during the drain
				break loop
			}
			// Whatever did not drain in time is failed: the caller resends.
			c.shutdown(ErrConnectionLost)
			if t.ctx.Err() != nil {
				break loop
			}
			continue // reconnect at once: this is not a failure
		default:
			lost := fmt.Errorf("%w: %v", ErrConnectionLost, c.err)
			c.shutdown(lost)
			t.status.push(Disconnected, c.err)
			if !t.sleep(cfg.Backoff.Delay(attempt)) {
				break loop
			}
			attempt++
			continue
		}
		break loop
	}
	t.markClosed()
	t.status.push(Closed, nil)
}

// credentialsRefused asks Config.Refused for a new key after the hub
// refused the credentials (CONNACK 4 or 5), and reports whether it got one.
// It runs on the run goroutine, the only reader of cfg.Key.
func (t *Transport) credentialsRefused(err error) bool {
	var ref *RefusedError
	if t.cfg.Refused == nil || !errors.As(err, &ref) || (ref.Code != 4 && ref.Code != 5) {
		return false
	}
	key, rerr := t.cfg.Refused(t.ctx, err)
	if rerr != nil || len(key) == 0 {
		if rerr != nil && t.ctx.Err() == nil {
			t.cfg.Logger.Warn("transport: no new credentials after a refusal", "err", rerr)
			t.status.push(Disconnected, rerr)
		}
		return false
	}
	t.cfg.Key = key
	return true
}

// sleep waits d, or returns false when the transport is closed first.
func (t *Transport) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// setConn publishes c (or no connection) to Publish and Connected.
func (t *Transport) setConn(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case c != nil && t.cur == nil:
		close(t.connected)
	case c == nil && t.cur != nil:
		t.connected = make(chan struct{})
	}
	if c != t.cur {
		close(t.changed)
		t.changed = make(chan struct{})
	}
	t.cur = c
}

func (t *Transport) markClosed() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// Connected returns a channel that is closed while a connection is up. A new
// channel is made each time the connection goes, so a sender waits on the
// channel it got and asks again after ErrOffline.
func (t *Transport) Connected() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.connected
}

// Session tells request/response users (twin requests, whose answers come
// only on the connection that carried the request) which connection is up.
// While one is, it returns a channel that is closed when that connection
// ends (failure, token renewal or Close) and true. Otherwise it returns a
// channel that is closed at the next change of connection, and false. Each
// connection has its own channel, also across a token renewal (which
// reports no status change), so comparing channels tells connections apart.
func (t *Transport) Session() (<-chan struct{}, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil {
		select {
		case <-t.cur.dead:
			// Dead but not yet replaced: the run loop is about to.
		default:
			return t.cur.dead, true
		}
	}
	return t.changed, false
}

// Done is closed once Close has finished (or Start was given a bad Config).
func (t *Transport) Done() <-chan struct{} { return t.done }

// current returns the connection accepting publishes, or the error to give.
func (t *Transport) current() (*conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if t.cur == nil {
		return nil, ErrOffline
	}
	return t.cur, nil
}

// Close sends DISCONNECT (in-flight publishes get ErrClosed), stops every
// goroutine and waits for them, including the final Closed status. It is
// idempotent and must not be called from a callback.
func (t *Transport) Close() error {
	t.closeOnce.Do(t.cancel)
	<-t.done
	return nil
}

// PublishQoS0 sends a fire-and-forget message (twin requests, method
// responses) on the current connection.
func (t *Transport) PublishQoS0(topic string, payload []byte) error {
	c, err := t.current()
	if err != nil {
		return err
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: payload}
	if err := c.write(pk); err != nil {
		c.fail(fmt.Errorf("transport: write: %w", err))
		return fmt.Errorf("transport: publish: %w", err)
	}
	return nil
}
