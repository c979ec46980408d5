package c2d

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

var randRead = rand.Read

// Ready tells the service that a device is connected and subscribed to its
// device-bound topic: its queue is delivered.
func (s *Service) Ready(deviceID string) {
	s.kick(deviceID)
}

// Gone tells the service that a device's connection ended: the message in
// flight, if any, is delivered again on the next connection.
func (s *Service) Gone(deviceID string) {
	s.mu.Lock()
	if d := s.devices[deviceID]; d != nil && !d.busy {
		delete(s.devices, deviceID)
	} else if d != nil {
		d.inflight, d.pid = 0, 0
	}
	s.mu.Unlock()
}

// Acked takes a device's PUBACK: when it acknowledges the message in
// flight, that message is completed and the next one is delivered.
func (s *Service) Acked(deviceID string, packetID uint16) {
	s.mu.Lock()
	d := s.devices[deviceID]
	if d != nil && d.sending {
		// The PUBACK overtook the bookkeeping of the send: pass completes it.
		d.earlyAck, d.hasEarly = packetID, true
	}
	if d == nil || d.inflight == 0 || d.pid != packetID {
		s.mu.Unlock()
		return
	}
	seq := d.inflight
	d.pid = 0 // a second PUBACK for it changes nothing
	s.mu.Unlock()
	s.finish(deviceID, d, seq)
}

// finish completes the message in flight, then delivers the next one.
func (s *Service) finish(deviceID string, d *device, seq uint64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.complete(ctx, deviceID, seq)
		// Only now may the next message go: clearing inflight before the
		// delete would let a pass deliver this message again.
		s.mu.Lock()
		delete(s.counts, seq)
		if d.inflight == seq {
			d.inflight = 0
		}
		s.mu.Unlock()
		s.kick(deviceID)
	}()
}

// complete removes a delivered message and records positive feedback when asked.
func (s *Service) complete(ctx context.Context, deviceID string, seq uint64) {
	raw, err := s.queue.GetMsg(ctx, seq)
	if err != nil {
		return // purged or expired meanwhile
	}
	var m Message
	_ = json.Unmarshal(raw.Data, &m)
	if err := s.queue.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		s.cfg.Logger.Error("c2d: remove a completed message", "device", deviceID, "seq", seq, "error", err)
		return
	}
	if m.Ack == AckPositive || m.Ack == AckFull {
		s.record(ctx, deviceID, &m, StatusSuccess, "Success")
	}
}

// kick runs a delivery pass for a device unless one is running (then that
// pass runs once more). Passes run on a short-lived goroutine: nothing waits
// for an idle device.
func (s *Service) kick(deviceID string) {
	s.mu.Lock()
	d := s.devices[deviceID]
	if d == nil {
		d = &device{}
		s.devices[deviceID] = d
	}
	if d.busy {
		d.again = true
		s.mu.Unlock()
		return
	}
	d.busy = true
	s.mu.Unlock()
	go s.run(deviceID, d)
}

func (s *Service) run(deviceID string, d *device) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.pass(ctx, deviceID, d)
		cancel()
		s.mu.Lock()
		if !d.again {
			d.busy = false
			if d.inflight == 0 && s.devices[deviceID] == d {
				delete(s.devices, deviceID) // nothing in flight: no state to keep
			}
			s.mu.Unlock()
			return
		}
		d.again = false
		s.mu.Unlock()
	}
}

// pass delivers the device's next message, dropping expired and
// dead-lettered ones on the way.
func (s *Service) pass(ctx context.Context, deviceID string, d *device) {
	t := s.transportOrNil()
	if t == nil {
		return
	}
	subj := subject(deviceID)
	for {
		s.mu.Lock()
		busy := d.inflight != 0
		s.mu.Unlock()
		if busy || !t.C2DReady(deviceID) {
			return
		}
		raw, err := s.queue.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
		if err != nil {
			s.cfg.Logger.Error("c2d: read queue", "device", deviceID, "error", err)
			return
		}
		var m Message
		if err := json.Unmarshal(raw.Data, &m); err != nil {
			s.cfg.Logger.Error("c2d: undecodable message dropped", "device", deviceID, "seq", raw.Sequence, "error", err)
			_ = s.queue.DeleteMsg(ctx, raw.Sequence)
			continue
		}
		m.Sequence = raw.Sequence
		if !s.cfg.Now().Before(m.Expiry) {
			s.drop(ctx, deviceID, &m, StatusExpired, "the message expired before the device took it")
			continue
		}
		s.mu.Lock()
		n := s.counts[m.Sequence] + 1
		s.mu.Unlock()
		if n > s.cfg.MaxDeliveryCount {
			s.drop(ctx, deviceID, &m, StatusDeliveryCountExceeded, "delivered too many times without an acknowledgement")
			continue
		}
		s.mu.Lock()
		d.sending, d.hasEarly = true, false
		s.mu.Unlock()
		pid, err := t.SendC2D(deviceID, topic(deviceID, &m), m.Body)
		s.mu.Lock()
		d.sending = false
		if err != nil {
			s.mu.Unlock()
			return // the device went away; it gets the message next time
		}
		s.counts[m.Sequence] = n
		d.inflight, d.pid = m.Sequence, pid
		early := d.hasEarly && d.earlyAck == pid
		if early {
			d.pid = 0
		}
		s.mu.Unlock()
		if early {
			s.finish(deviceID, d, m.Sequence)
		}
		return
	}
}

// drop moves a message that will not be delivered to the dead-letter
// stream, with negative feedback when asked.
func (s *Service) drop(ctx context.Context, deviceID string, m *Message, status, why string) {
	dl, _ := json.Marshal(DeadLetter{DeviceID: deviceID, Reason: status, Message: *m})
	if _, err := s.js.Publish(ctx, deadLetterSubject, dl); err != nil {
		s.cfg.Logger.Error("c2d: dead-letter a message", "device", deviceID, "message", m.MessageID, "error", err)
		return // keep it queued rather than lose it
	}
	if err := s.queue.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		s.cfg.Logger.Error("c2d: remove a message", "device", deviceID, "seq", m.Sequence, "error", err)
		return
	}
	s.mu.Lock()
	delete(s.counts, m.Sequence)
	s.mu.Unlock()
	if m.Ack == AckNegative || m.Ack == AckFull {
		s.record(ctx, deviceID, m, status, why)
	}
}

func (s *Service) record(ctx context.Context, deviceID string, m *Message, status, why string) {
	fb, _ := json.Marshal(Feedback{OriginalMessageID: m.MessageID, DeviceID: deviceID, StatusCode: status,
		Description: why, EnqueuedTimeUTC: s.cfg.Now().UTC()})
	if _, err := s.js.Publish(ctx, feedbackSubject, fb); err != nil {
		s.cfg.Logger.Error("c2d: record feedback", "device", deviceID, "message", m.MessageID, "error", err)
	}
}
