package c2d

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Pending returns the messages queued for a device, oldest first.
func (s *Service) Pending(ctx context.Context, deviceID string) ([]Message, error) {
	subj := subject(deviceID)
	var out []Message
	for seq := uint64(0); len(out) < s.cfg.MaxPending; {
		raw, err := s.queue.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("c2d: pending for %s: %w", deviceID, err)
		}
		var m Message
		if json.Unmarshal(raw.Data, &m) == nil {
			m.Sequence = raw.Sequence
			s.mu.Lock()
			m.DeliveryCount = s.counts[raw.Sequence]
			s.mu.Unlock()
			out = append(out, m)
		}
		seq = raw.Sequence + 1
	}
	return out, nil
}

// Purge removes every message queued for a device and returns how many.
// Senders that asked for negative feedback are told.
func (s *Service) Purge(ctx context.Context, deviceID string) (int, error) {
	msgs, err := s.Pending(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	if err := s.queue.Purge(ctx, jetstream.WithPurgeSubject(subject(deviceID))); err != nil {
		return 0, fmt.Errorf("c2d: purge %s: %w", deviceID, err)
	}
	s.mu.Lock()
	if d := s.devices[deviceID]; d != nil {
		d.inflight, d.pid = 0, 0
	}
	for _, m := range msgs {
		delete(s.counts, m.Sequence)
	}
	s.mu.Unlock()
	for i := range msgs {
		if msgs[i].Ack == AckNegative || msgs[i].Ack == AckFull {
			s.record(ctx, deviceID, &msgs[i], StatusPurged, "purged by the service")
		}
	}
	return len(msgs), nil
}

// ReadFeedback returns up to limit feedback records after sequence after.
func (s *Service) ReadFeedback(ctx context.Context, after uint64, limit int) ([]Feedback, uint64, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var out []Feedback
	next := after
	for len(out) < limit {
		raw, err := s.feedback.GetMsg(ctx, next+1, jetstream.WithGetMsgSubject(feedbackSubject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, after, fmt.Errorf("c2d: read feedback: %w", err)
		}
		var f Feedback
		if json.Unmarshal(raw.Data, &f) == nil {
			f.Sequence = raw.Sequence
			out = append(out, f)
		}
		next = raw.Sequence
	}
	return out, next, nil
}

// ReadDeadLetters returns up to limit dead letters after sequence after.
func (s *Service) ReadDeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetter, uint64, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	st, err := s.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		return nil, after, fmt.Errorf("c2d: dead letters: %w", err)
	}
	var out []DeadLetter
	next := after
	for len(out) < limit {
		raw, err := st.GetMsg(ctx, next+1, jetstream.WithGetMsgSubject(deadLetterSubject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, after, fmt.Errorf("c2d: read dead letters: %w", err)
		}
		var d DeadLetter
		if json.Unmarshal(raw.Data, &d) == nil {
			out = append(out, d)
		}
		next = raw.Sequence
	}
	return out, next, nil
}
