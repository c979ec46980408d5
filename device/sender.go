package device

import (
	"context"
	"errors"
	"sync"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

// sender is the one goroutine that moves records from the store to the
// hub. While connected it keeps up to Window records published and not yet
// acknowledged, reading the store after the last record it sent. A PUBACK
// makes it Ack the record in the store; a publish that failed (connection
// lost) makes it read again from the oldest record not in flight, so the
// lost ones are resent, in order, on the next connection with the same id.
//
// It never polls: it sleeps until a signal (an Enqueue committed, a PUBACK
// or failure arrived, the status changed) or until the transport connects.
type sender struct {
	c      *Client
	ctx    context.Context // cancelled by stop; bounds Publish
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	wake   chan struct{} // capacity 1: a pending signal is never lost

	mu       sync.Mutex
	inflight map[uint64]bool // published, PUBACK not yet committed to the store; guarded by mu
	acked    []uint64        // PUBACKed, not yet Acked in the store; guarded by mu
	rewind   bool            // a publish failed: read again from the oldest; guarded by mu
}

func newSender(c *Client) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	return &sender{c: c, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		wake: make(chan struct{}, 1), inflight: make(map[uint64]bool)}
}

// signal wakes the sender without blocking.
func (s *sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop ends run and waits for it.
func (s *sender) stop() {
	s.cancel()
	<-s.done
}

func (s *sender) run() {
	defer close(s.done)
	var (
		after uint64          // the last Seq published (or skipped) on this pass
		stale <-chan struct{} // the Connected channel a publish last failed on
		tr    = s.c.tr
		log   = s.c.cfg.Logger
	)
	for {
		if !s.commitAcks() {
			return
		}
		s.mu.Lock()
		if s.rewind {
			s.rewind, after = false, 0
		}
		n := len(s.inflight)
		s.mu.Unlock()

		connected := tr.Connected()
		online := connected != stale && isDone(connected)
		if online && n < s.c.cfg.Window {
			recs, err := s.c.q.Peek(after, s.c.cfg.Window-n)
			if err != nil {
				if errors.Is(err, queue.ErrClosed) || s.ctx.Err() != nil {
					return
				}
				log.Error("device: reading the store", "err", err)
			}
			progressed := false
			for _, rec := range recs {
				s.mu.Lock()
				busy := s.inflight[rec.Seq]
				if !busy {
					s.inflight[rec.Seq] = true
				}
				s.mu.Unlock()
				if busy { // still in flight from before a rewind
					after, progressed = rec.Seq, true
					continue
				}
				err := tr.Publish(s.ctx, topic(s.c.cs.DeviceID, s.c.cs.ModuleID, rec), rec.Body, s.doneFunc(rec.Seq))
				if err != nil {
					s.mu.Lock()
					delete(s.inflight, rec.Seq)
					s.mu.Unlock()
					if s.ctx.Err() != nil {
						return
					}
					log.Debug("device: publish failed; waiting for a connection", "err", err)
					stale = connected
					break
				}
				after, progressed = rec.Seq, true
			}
			if progressed {
				continue
			}
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
// read goroutine, so it only records the outcome and wakes the sender.
func (s *sender) doneFunc(seq uint64) func(error) {
	return func(err error) {
		s.mu.Lock()
		if err == nil {
			s.acked = append(s.acked, seq)
		} else {
			delete(s.inflight, seq)
			s.rewind = true
		}
		s.mu.Unlock()
		s.signal()
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
		return true
	}
	s.mu.Lock()
	for _, seq := range seqs {
		delete(s.inflight, seq)
	}
	s.mu.Unlock()
	s.c.acknowledged(seqs)
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
