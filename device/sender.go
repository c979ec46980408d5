package device

import (
	"context"
	"errors"
	"sync"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

// sender moves records from the store to the hub. While connected it keeps
// up to Window records published and not yet acknowledged by the hub,
// reading the store ahead in pages after the last record it read. A PUBACK
// frees a window slot at once and hands the record to the acker, which
// removes acknowledged records from the store in batches, one commit for
// all that arrived during the previous commit; so the store's fsyncs are
// not in the path between a PUBACK and the next publish. A publish that
// failed (connection lost) makes the sender read again from the oldest
// record still in the store, skipping those in flight or waiting for
// their removal, so the lost ones are resent, in order, on the next
// connection with the same id.
//
// Neither goroutine polls: the sender sleeps until a signal (an Enqueue
// committed, a PUBACK or failure arrived, a removal committed, the status
// changed) or until the transport connects; the acker until a PUBACK.
type sender struct {
	c       *Client
	ctx     context.Context // cancelled by stop; bounds Publish
	cancel  context.CancelFunc
	done    chan struct{} // closed when run and the acker have returned
	wake    chan struct{} // capacity 1: a pending signal is never lost
	ackWake chan struct{} // capacity 1: wakes the acker

	mu sync.Mutex
	// inflight holds the records published and not yet removed from the
	// store: waiting for their PUBACK, or PUBACKed and waiting for the
	// acker's commit. A rewind skips them. Guarded by mu.
	inflight map[uint64]bool
	unacked  int      // published, no PUBACK or failure yet: what Window bounds; guarded by mu
	acked    []uint64 // PUBACKed, not yet removed from the store; guarded by mu
	rewind   bool     // a publish failed: read again from the oldest; guarded by mu
}

// maxUnremoved bounds the records PUBACKed and not yet removed from the
// store: if the disk stalls, publishing pauses instead of piling them up.
const maxUnremoved = 4096

// minPeek is the least number of records the sender reads from the store
// at a time (more with a larger Window), so that a small Window does not
// cost a store read per message.
const minPeek = 64

func newSender(c *Client) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	return &sender{c: c, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		wake: make(chan struct{}, 1), ackWake: make(chan struct{}, 1), inflight: make(map[uint64]bool)}
}

// signal wakes the sender without blocking.
func (s *sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop ends run and the acker and waits for them.
func (s *sender) stop() {
	s.cancel()
	<-s.done
}

func (s *sender) run() {
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		s.ackLoop()
	}()
	defer func() {
		<-ackerDone
		close(s.done)
	}()
	var (
		after  uint64          // the last Seq read from the store on this pass
		buf    []queue.Record  // read from the store, not yet published
		stale  <-chan struct{} // the Connected channel a publish last failed on
		tr     = s.c.tr
		log    = s.c.cfg.Logger
		window = s.c.cfg.Window
		page   = max(window, minPeek)
	)
	for {
		s.mu.Lock()
		if s.rewind {
			s.rewind, after, buf = false, 0, nil
		}
		free := min(window-s.unacked, maxUnremoved+window-len(s.inflight))
		s.mu.Unlock()

		connected := tr.Connected()
		online := connected != stale && isDone(connected)
		if online && free > 0 && len(buf) == 0 {
			recs, err := s.c.q.Peek(after, page)
			if err != nil {
				if errors.Is(err, queue.ErrClosed) || s.ctx.Err() != nil {
					return
				}
				log.Error("device: reading the store", "err", err)
			}
			if len(recs) > 0 {
				buf, after = recs, recs[len(recs)-1].Seq
			}
		}
		progressed := false
		for online && free > 0 && len(buf) > 0 {
			rec := buf[0]
			s.mu.Lock()
			busy := s.inflight[rec.Seq]
			if !busy {
				s.inflight[rec.Seq] = true
				s.unacked++
			}
			s.mu.Unlock()
			if busy { // still in flight from before a rewind
				buf, progressed = buf[1:], true
				continue
			}
			err := tr.Publish(s.ctx, topic(s.c.cs.DeviceID, s.c.cs.ModuleID, rec), rec.Body, s.doneFunc(rec.Seq))
			if err != nil {
				s.mu.Lock()
				delete(s.inflight, rec.Seq)
				s.unacked--
				s.mu.Unlock()
				if s.ctx.Err() != nil {
					return
				}
				log.Debug("device: publish failed; waiting for a connection", "err", err)
				stale = connected
				break
			}
			buf[0] = queue.Record{} // let the body go
			buf, progressed = buf[1:], true
			free--
		}
		if progressed {
			continue
		}
		var connCh <-chan struct{}
		if !online && connected != stale {
			connCh = connected // wake when the transport connects
		}
		select {
		case <-s.wake:
		case <-connCh:
		case <-s.ctx.Done():
			return
		}
		if tr.Connected() != stale {
			stale = nil
		}
	}
}

// doneFunc returns the Publish callback for seq. It runs on the transport's
// read goroutine, so it only records the outcome and wakes the sender (a
// window slot is free) and, after a PUBACK, the acker.
func (s *sender) doneFunc(seq uint64) func(error) {
	return func(err error) {
		s.mu.Lock()
		s.unacked--
		if err == nil {
			s.acked = append(s.acked, seq)
		} else {
			delete(s.inflight, seq)
			s.rewind = true
		}
		s.mu.Unlock()
		s.signal()
		if err == nil {
			select {
			case s.ackWake <- struct{}{}:
			default:
			}
		}
	}
}

// ackLoop removes PUBACKed records from the store until stop.
func (s *sender) ackLoop() {
	for {
		select {
		case <-s.ackWake:
		case <-s.ctx.Done():
			return
		}
		if !s.commitAcks() {
			return
		}
	}
}

// commitAcks removes the PUBACKed records from the store in one commit and
// then wakes their waiters. The records stay in inflight until the removal
// is committed, so a rewind does not resend them. It returns false when the
// store is closed.
func (s *sender) commitAcks() bool {
	s.mu.Lock()
	seqs := s.acked
	s.acked = nil
	s.mu.Unlock()
	if len(seqs) == 0 {
		return true
	}
	if err := s.c.q.Ack(seqs...); err != nil {
		// Not removed: they are sent again (after a rewind, or by the next
		// Start) and the hub drops the duplicates.
		s.c.cfg.Logger.Error("device: acknowledging in the store", "err", err)
		if errors.Is(err, queue.ErrClosed) {
			return false
		}
		s.mu.Lock()
		for _, seq := range seqs {
			delete(s.inflight, seq)
		}
		s.rewind = true
		s.mu.Unlock()
		s.signal()
		return true
	}
	s.mu.Lock()
	for _, seq := range seqs {
		delete(s.inflight, seq)
	}
	s.mu.Unlock()
	s.c.acknowledged(seqs)
	s.signal() // room under maxUnremoved
	return true
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
