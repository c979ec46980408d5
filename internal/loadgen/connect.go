package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ConnectConfig describes a connection-storm run. Only Addr and Devices are
// required.
type ConnectConfig struct {
	Addr        string      // broker address, for example "127.0.0.1:1883"
	TLS         *tls.Config // nil means plain TCP
	AllowRemote bool        // permit an Addr outside the loopback range (off: load stays on this machine)
	Devices     []Device    // one connection per device
	Concurrency int         // connection attempts in progress at once (default 64)
	Hold        bool        // return the connections open in Conns instead of closing them
	// ServerPID, when > 0, has the broker's RSS read before the first
	// connection and again once all of them have been idle for a while.
	ServerPID int
	Progress  func(done int) // called about once a second with the attempts finished so far
}

// ConnectResult is what one Connect run measured.
type ConnectResult struct {
	Connected int           // sessions that got an accepted CONNACK
	Failed    int           // attempts that did not
	FirstErr  error         // the first failure, nil when none failed
	Elapsed   time.Duration // from the first dial to the last CONNACK or failure
	PerSec    float64       // Connected / Elapsed

	ServerRSSBefore, ServerRSSAfter int64 // broker RSS in bytes (ServerPID only)
	// PerConnBytes is (ServerRSSAfter-ServerRSSBefore)/Connected, sampled
	// after the connections sat idle for idleSettle, so that per-connection
	// buffers the broker releases when a client goes quiet are not counted.
	// Measure against a freshly started broker: allocators keep freed
	// memory, so a second run against the same process reads near zero.
	PerConnBytes float64
}

// idleSettle is how long connections sit idle before the RSS sample: long
// enough for the broker to finish its connect work and for the Go runtime's
// or libc's allocator to settle.
const idleSettle = 2 * time.Second

// Connect opens a session for every device (TCP, CONNECT, accepted CONNACK),
// Concurrency at a time, and measures connects per second and, with
// ServerPID, the broker's memory per idle connection. With Hold the
// connections come back open in Conns, which the caller must Close;
// otherwise they are closed before Connect returns and Conns is nil.
// A failed attempt is counted, not fatal; ctx ending stops the run.
func Connect(ctx context.Context, cfg ConnectConfig) (ConnectResult, *Conns, error) {
	if err := checkAddr(cfg.Addr, cfg.AllowRemote); err != nil {
		return ConnectResult{}, nil, err
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = dialConcurrency
	}
	if err := raiseNoFile(); err != nil {
		return ConnectResult{}, nil, err
	}
	var res ConnectResult
	if cfg.ServerPID > 0 {
		rss, err := procRSS(cfg.ServerPID)
		if err != nil {
			return res, nil, err
		}
		res.ServerRSSBefore = rss
	}

	conns := make([]net.Conn, len(cfg.Devices))
	var connected, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	stopProgress := reportEverySecond(cfg.Progress, func() int { return int(connected.Load() + failed.Load()) })
	start := time.Now()
	err := forEach(ctx, len(cfg.Devices), cfg.Concurrency, func(ctx context.Context, i int) error {
		conn, err := dialDevice(ctx, cfg.Addr, cfg.TLS, cfg.Devices[i], i)
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
			return nil
		}
		conns[i] = conn
		connected.Add(1)
		return nil
	})
	res.Elapsed = time.Since(start)
	stopProgress()
	res.Connected, res.Failed, res.FirstErr = int(connected.Load()), int(failed.Load()), firstErr
	res.PerSec = float64(res.Connected) / res.Elapsed.Seconds()

	held := newConns(conns)
	if err == nil && cfg.ServerPID > 0 && res.Connected > 0 {
		err = sleepCtx(ctx, idleSettle)
		if err == nil {
			res.ServerRSSAfter, err = procRSS(cfg.ServerPID)
			res.PerConnBytes = float64(res.ServerRSSAfter-res.ServerRSSBefore) / float64(res.Connected)
		}
	}
	if err != nil || !cfg.Hold {
		held.Close()
		held = nil
	}
	if err != nil {
		return res, nil, fmt.Errorf("loadgen: connect: %w", err)
	}
	return res, held, nil
}

// Conns are the open connections of a Connect run with Hold set.
type Conns struct {
	conns     []net.Conn
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// newConns keeps the open connections and starts one goroutine that pings
// them all within their keep-alive. One pinger for all rather than a
// goroutine per connection keeps the loader small at 19,000 connections.
// The PINGRESPs are never read: two bytes each stay in the socket buffer.
func newConns(all []net.Conn) *Conns {
	c := &Conns{stop: make(chan struct{})}
	for _, conn := range all {
		if conn != nil {
			c.conns = append(c.conns, conn)
		}
	}
	c.wg.Go(c.pingLoop)
	return c
}

// Len returns the number of connections held.
func (c *Conns) Len() int { return len(c.conns) }

func (c *Conns) pingLoop() {
	t := time.NewTicker(keepAlive * time.Second / 2)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			for _, conn := range c.conns {
				_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = conn.Write(pingreq) // a dead connection is the broker's call; nothing to do here
			}
		}
	}
}

// Close sends DISCONNECT on every connection and closes it. It is safe to
// call more than once.
func (c *Conns) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		for _, conn := range c.conns {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(disconnect)
			conn.Close()
		}
	})
	return nil
}

// forEach calls fn for 0..n-1 from at most workers goroutines and returns
// the first error, after which the remaining indexes are skipped.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	// Read before the deferred cancel: nil when every call succeeded.
	return context.Cause(ctx)
}

// reportEverySecond calls progress(count()) once a second until the returned
// stop function is called.
func reportEverySecond(progress func(int), count func() int) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(count())
			}
		}
	})
	return func() { close(done); wg.Wait(); progress(count()) }
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
