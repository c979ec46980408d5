package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/device/internal/transport"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// Client is a device's connection to the hub with its local store. Its
// methods are safe for concurrent use.
type Client struct {
	cfg Config
	cs  protocol.ConnectionString
	q   *queue.Queue
	tr  *transport.Transport
	snd *sender

	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	firstSeq uint64                   // Seq of the first message enqueued by this Client; guarded by mu
	lastSeq  uint64                   // highest Seq enqueued by this Client; guarded by mu
	waiters  map[uint64]chan struct{} // Send calls waiting for a Seq's acknowledgement; guarded by mu
	ackedCh  chan struct{}            // closed and replaced after each batch of acknowledgements; guarded by mu
}

// Start opens the store and starts connecting to the hub in the background.
// It does not wait for the connection and works without a network: messages
// are stored and sent once the hub is reachable. It returns an error for a
// bad Config or connection string, and when the store cannot be opened
// (ErrStoreCorrupt, ErrStoreLocked, or a file system error). ctx only
// carries values; Close stops the Client.
func Start(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.StorePath == "" {
		return nil, errors.New("device: Config.StorePath is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Window <= 0 {
		cfg.Window = 32
	}
	cfg.Window = min(cfg.Window, 65535)
	c := &Client{cfg: cfg, closed: make(chan struct{}), waiters: make(map[uint64]chan struct{}),
		ackedCh: make(chan struct{})}
	tc, cs, err := cfg.transportConfig(c.onStatus)
	if err != nil {
		return nil, err
	}
	c.cs = cs
	q, err := queue.Open(cfg.StorePath, cfg.queueOptions())
	switch {
	case errors.Is(err, queue.ErrCorrupt):
		return nil, fmt.Errorf("device: open store: %w (%w)", ErrStoreCorrupt, err)
	case errors.Is(err, queue.ErrLocked):
		return nil, fmt.Errorf("device: open store: %w (%w)", ErrStoreLocked, err)
	case err != nil:
		return nil, fmt.Errorf("device: open store: %w", err)
	}
	c.q = q
	c.snd = newSender(c)
	c.tr = transport.Start(ctx, tc)
	go c.snd.run()
	return c, nil
}

// onStatus forwards transport statuses to Config.OnStatus and wakes the
// sender, which waits for a new connection after a failed publish.
func (c *Client) onStatus(s transport.Status, err error) {
	c.snd.signal()
	if c.cfg.OnStatus != nil {
		c.cfg.OnStatus(Status(s), err)
	}
}

// Pending returns the number of stored messages the hub has not yet
// acknowledged, and their size in the store in bytes.
func (c *Client) Pending() (count int, bytes int64) { return c.q.Pending() }

// Flush waits until every message enqueued before the call (including
// those left in the store by earlier runs) has been acknowledged by the
// hub, or ctx ends, or the Client is closed (ErrClosed).
func (c *Client) Flush(ctx context.Context) error {
	c.mu.Lock()
	mark := c.lastSeq
	c.mu.Unlock()
	for {
		c.mu.Lock()
		acked, first := c.ackedCh, c.firstSeq
		c.mu.Unlock()
		recs, err := c.q.Peek(0, 1)
		switch {
		case errors.Is(err, queue.ErrClosed):
			return ErrClosed
		case err != nil:
			return fmt.Errorf("device: flush: %w", err)
		case len(recs) == 0:
			return nil
		case mark != 0 && recs[0].Seq > mark:
			return nil
		case mark == 0 && first != 0 && recs[0].Seq >= first:
			return nil // only messages enqueued after the call are left
		}
		select {
		case <-acked:
		case <-c.closed:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("device: flush: %w", ctx.Err())
		}
	}
}

// Close stops sending, closes the connection and the store. Messages not
// yet acknowledged stay in the store and are sent by the next Start with
// the same StorePath. Close is idempotent; later calls return the first
// call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.snd.stop()
		_ = c.tr.Close()
		c.snd.commitAcks() // PUBACKs that came before the transport closed
		if err := c.q.Close(); err != nil {
			c.closeErr = fmt.Errorf("device: close: %w", err)
		}
	})
	return c.closeErr
}

func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// enqueued records the Seqs (first to last) of messages this Client stored
// and wakes the sender.
func (c *Client) enqueued(first, last uint64) {
	c.mu.Lock()
	if c.firstSeq == 0 {
		c.firstSeq = first
	}
	c.lastSeq = max(c.lastSeq, last)
	c.mu.Unlock()
	c.snd.signal()
}

// acknowledged is called by the sender after the store removed seqs: it
// wakes their Send calls and every Flush.
func (c *Client) acknowledged(seqs []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range seqs {
		if ch, ok := c.waiters[s]; ok {
			close(ch)
			delete(c.waiters, s)
		}
	}
	close(c.ackedCh)
	c.ackedCh = make(chan struct{})
}

// waitAcked waits until the message with seq has left the store.
func (c *Client) waitAcked(ctx context.Context, seq uint64) error {
	ch := make(chan struct{})
	c.mu.Lock()
	c.waiters[seq] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, seq)
		c.mu.Unlock()
	}()
	// Registered first, so an acknowledgement that comes after this check
	// closes ch; one that came before it shows here.
	recs, err := c.q.Peek(seq-1, 1)
	switch {
	case errors.Is(err, queue.ErrClosed):
		return ErrClosed
	case err != nil:
		return fmt.Errorf("device: send: %w", err)
	case len(recs) == 0 || recs[0].Seq != seq:
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-c.closed:
		return fmt.Errorf("device: send: %w (the message stays stored)", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("device: send: %w (the message stays stored)", ctx.Err())
	}
}
