package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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

	provDone chan struct{} // closed when the registration refresher has stopped

	// ctx is cancelled by Close: it stops the twin, method and inbox
	// goroutines and is the handlers' context.
	ctx     context.Context
	cancel  context.CancelFunc
	twin    *twinSync
	methods *methods
	inbox   *inbox

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
// (ErrStoreCorrupt, ErrStoreLocked, or a file system error).
//
// With Provisioning or DPS instead of a connection string, Start uses the
// credentials kept in the store (no network needed); on the very first
// start it gets them first, which needs the network and, with
// Provisioning, an operator's approval: ctx bounds that wait. Errors then
// include ErrProvisioningRejected and ErrProvisioningToken.
//
// Beyond that ctx only carries values; Close stops the Client.
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
	if cfg.MaxConcurrentMethods <= 0 {
		cfg.MaxConcurrentMethods = defaultMaxMethods
	}
	if cfg.MaxC2DDeliveries <= 0 {
		cfg.MaxC2DDeliveries = defaultMaxC2DDeliveries
	}
	if cfg.c2dRetry <= 0 {
		cfg.c2dRetry = time.Second
	}
	c := &Client{cfg: cfg, closed: make(chan struct{}), waiters: make(map[uint64]chan struct{}),
		ackedCh: make(chan struct{}), provDone: make(chan struct{})}
	prov, err := newProvisioner(&c.cfg)
	if err != nil {
		return nil, err
	}
	if prov == nil && cfg.ConnectionString == "" {
		return nil, errors.New("device: Config needs a ConnectionString, Provisioning or DPS")
	}
	if prov != nil && cfg.ConnectionString != "" {
		return nil, errors.New("device: set ConnectionString or Provisioning/DPS, not both")
	}
	if prov == nil { // fail on a bad connection string before touching the store
		if _, _, err := c.cfg.transportConfig(c.onStatus); err != nil {
			return nil, err
		}
	}
	q, err := queue.Open(cfg.StorePath, cfg.queueOptions())
	if err != nil {
		return nil, storeError("open store", err)
	}
	if prov != nil {
		// Stored credentials need no network; new ones may wait for an
		// operator, within ctx.
		prov.kv = q
		if c.cfg.ConnectionString, err = prov.credentials(ctx); err != nil {
			q.Close()
			return nil, err
		}
	}
	tc, cs, err := c.cfg.transportConfig(c.onStatus)
	if err != nil {
		q.Close()
		return nil, err
	}
	c.cs = cs
	tc.Subscriptions = c.subscriptions()
	tc.OnMessage = c.onMessage
	if prov != nil {
		tc.Refused = prov.refused(cs.DeviceID)
	}
	c.q = q
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if c.twin, err = newTwinSync(c); err == nil {
		c.inbox, err = newInbox(c)
	}
	if err != nil {
		c.cancel()
		q.Close()
		return nil, storeError("load store", err)
	}
	c.methods = newMethods(c)
	c.snd = newSender(c)
	c.tr = transport.Start(ctx, tc)
	go c.snd.run()
	go func() {
		defer close(c.provDone)
		if prov != nil {
			prov.refreshLoop(c.ctx)
		}
	}()
	c.twin.start()
	if cfg.OnC2D != nil {
		go c.inbox.run()
	} else {
		close(c.inbox.done)
	}
	return c, nil
}

// storeError maps the store's errors onto the package's.
func storeError(op string, err error) error {
	switch {
	case errors.Is(err, queue.ErrCorrupt):
		return fmt.Errorf("device: %s: %w (%w)", op, ErrStoreCorrupt, err)
	case errors.Is(err, queue.ErrLocked):
		return fmt.Errorf("device: %s: %w (%w)", op, ErrStoreLocked, err)
	default:
		return fmt.Errorf("device: %s: %w", op, err)
	}
}

// subscriptions are the topics subscribed on every connection: twin
// responses and desired-property notifications, direct methods, and
// cloud-to-device messages when there is a handler for them.
func (c *Client) subscriptions() []string {
	subs := []string{"$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#", "$iothub/methods/POST/#"}
	if c.cfg.OnC2D != nil && c.cs.ModuleID == "" {
		subs = append(subs, "devices/"+c.cs.DeviceID+"/messages/devicebound/#")
	}
	return subs
}

// onMessage routes what the hub publishes. It runs on the transport's read
// goroutine, so it only hands work over, except for cloud-to-device
// messages: those are stored (fsynced) before it returns and the transport
// acknowledges them.
func (c *Client) onMessage(topic string, props protocol.Properties, payload []byte) error {
	t, err := protocol.ParseTopic(topic)
	if err != nil {
		c.cfg.Logger.Warn("device: message on a malformed topic ignored", "topic", topic, "err", err)
		return nil
	}
	switch t.Kind {
	case protocol.TopicTwinResponse, protocol.TopicTwinDesiredPatch:
		c.twin.message(t, payload)
	case protocol.TopicMethodRequest:
		c.methods.request(t, payload)
	case protocol.TopicC2D:
		if c.cfg.OnC2D != nil {
			return c.inbox.receive(props, payload)
		}
	default:
		c.cfg.Logger.Debug("device: message on an unexpected topic ignored", "topic", topic)
	}
	return nil
}

// onStatus forwards transport statuses to Config.OnStatus and wakes the
// sender, which waits for a new connection after a failed publish.
func (c *Client) onStatus(s transport.Status, err error) {
	c.snd.signal()
	if c.cfg.OnStatus != nil {
		c.cfg.OnStatus(Status(s), err)
	}
}

// DeviceID returns the device's id: the connection string's, or the one
// provisioning assigned (an operator may choose another than the one
// asked for).
func (c *Client) DeviceID() string { return c.cs.DeviceID }

// Dropped returns how many messages Config.Full = DropOldest has deleted
// unsent since Start.
func (c *Client) Dropped() uint64 { return c.q.Dropped() }

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
		case len(recs) == 0,
			mark != 0 && recs[0].Seq > mark,
			mark == 0 && first != 0 && recs[0].Seq >= first: // only messages enqueued after the call are left
			c.q.Settle() // so that Pending agrees at once
			return nil
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
// the same StorePath, as do reported properties not yet acknowledged and
// cloud-to-device messages not yet completed, which are handed to the
// handler again. Close cancels the handlers' context and waits for running
// method, cloud-to-device and desired-property handlers to return. Close
// is idempotent; later calls return the first call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.cancel()
		// Handlers may still answer while the connection is up.
		c.methods.stop()
		<-c.inbox.done
		<-c.twin.done
		<-c.twin.ndone
		<-c.provDone
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
