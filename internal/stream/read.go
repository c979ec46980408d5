package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/nats-io/nats.go/jetstream"
)

// Read limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query selects messages for Store.Read. Empty fields match everything.
type Query struct {
	Group, Stream string        // "" = any
	DeviceID      string        // "" = any
	From, To      time.Time     // EnqueuedTime range, inclusive; zero = unbounded
	After         Cursor        // read strictly after this position; zero = from the start (or From)
	Limit         int           // default DefaultLimit, at most MaxLimit
	Wait          time.Duration // when > 0 and nothing matches up to the newest message, wait this long for more
}

// scanState is the progress of one Read.
type scanState struct {
	q       Query
	from    int64 // q.From in Unix ns, or minimum
	to      int64 // q.To in Unix ns, or maximum
	msgs    []Message
	next    Cursor // last examined position
	atEnd   bool   // reached the newest batch
	pastTo  bool   // met a message too late for q.To: nothing more can match
	scanned int    // batch bytes examined
}

// Read returns up to q.Limit messages matching q, in stream order, and the
// cursor to pass as After for the next page. The cursor advances over
// examined messages that did not match, so a page may be empty while more
// remains; an empty page with next equal to After means there is nothing
// newer yet. With q.Wait, Read waits for a new batch instead of returning
// that empty page, until q.Wait passes or ctx ends.
func (s *Store) Read(ctx context.Context, q Query) ([]Message, Cursor, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return nil, q.After, fault.Invalidf("stream: time range ends before it starts")
	}
	var deadline <-chan time.Time
	if q.Wait > 0 {
		t := time.NewTimer(q.Wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		changed := s.changedChan()
		ss, err := s.scan(ctx, q)
		if err != nil || len(ss.msgs) > 0 || q.Wait <= 0 || !ss.atEnd || ss.pastTo || changed == nil {
			return ss.msgs, ss.next, err
		}
		q.After = ss.next
		select {
		case <-changed:
		case <-deadline:
			return nil, ss.next, nil
		case <-ctx.Done():
			return nil, ss.next, fmt.Errorf("stream: read: %w", ctx.Err())
		}
	}
}

// scan examines batches from q's start position until the page is full,
// the scan budget is spent, the newest batch was read, or q.To is passed.
func (s *Store) scan(ctx context.Context, q Query) (*scanState, error) {
	ss := &scanState{q: q, from: minInt64, to: maxInt64, next: q.After}
	if !q.From.IsZero() {
		ss.from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		ss.to = q.To.UnixNano()
	}
	seq := q.After.Seq
	if q.After.IsZero() {
		var err error
		if seq, err = s.startSeq(ctx, q.From); err != nil {
			return ss, err
		}
	}
	for len(ss.msgs) < q.Limit && ss.scanned < s.cfg.ScanBytes && !ss.pastTo {
		raw, err := s.st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(IngestSubject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			ss.atEnd = true
			break
		}
		if err != nil {
			return ss, fmt.Errorf("stream: read batch %d: %w", seq, err)
		}
		ss.scanned += len(raw.Data)
		if err := s.scanBatch(ss, raw.Sequence, raw.Data); err != nil {
			return ss, err
		}
		seq = raw.Sequence + 1
	}
	return ss, nil
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)

// scanBatch adds the matching messages of one batch to ss.
func (s *Store) scanBatch(ss *scanState, seq uint64, data []byte) error {
	skew := int64(s.cfg.ClockSkew)
	err := eachRecord(data, func(i uint32, rec []byte) error {
		pos := Cursor{Seq: seq, Index: i}
		if !ss.q.After.Less(pos) || len(ss.msgs) >= ss.q.Limit || ss.pastTo {
			return nil
		}
		h, err := peek(rec)
		if err != nil {
			return err
		}
		if h.enqueued > ss.to && h.enqueued-skew > ss.to {
			ss.pastTo = true // batches are in time order, give or take the skew
			return nil
		}
		ss.next = pos
		if !ss.match(&h) {
			return nil
		}
		m, err := decodeRecord(rec)
		if err != nil {
			return err
		}
		m.Cursor = pos
		ss.msgs = append(ss.msgs, m)
		return nil
	})
	if err != nil {
		// One bad batch must not make the rest unreadable: report it.
		return fmt.Errorf("stream: batch %d: %w", seq, err)
	}
	return nil
}

func (ss *scanState) match(h *header) bool {
	q := &ss.q
	return h.enqueued >= ss.from && h.enqueued <= ss.to &&
		(q.Group == "" || matchName(h.f[fieldGroup], q.Group)) &&
		(q.Stream == "" || matchName(h.f[fieldStream], q.Stream)) &&
		(q.DeviceID == "" || bytes.Equal(h.f[fieldDevice], []byte(q.DeviceID)))
}
