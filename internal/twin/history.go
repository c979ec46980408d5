package twin

import (
	"context"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// History list limits.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// History returns the changes of one twin with from <= time < to, oldest
// first; a zero from or to is unbounded. limit 0 means DefaultHistoryLimit;
// it may be at most MaxHistoryLimit. Only the kept changes are listed: see
// TrimHistory, and HistoryStart for the time before which changes were
// trimmed.
func (s *Service) History(ctx context.Context, deviceID, moduleID string, from, to time.Time, limit int) ([]Change, error) {
	switch {
	case limit == 0:
		limit = DefaultHistoryLimit
	case limit < 0 || limit > MaxHistoryLimit:
		return nil, fault.Invalidf("history limit must be between 1 and %d, not %d", MaxHistoryLimit, limit)
	}
	if _, err := s.store.GetTwin(ctx, deviceID, moduleID); err != nil {
		return nil, err // an unknown device has no history, and says so
	}
	return s.store.TwinHistory(ctx, deviceID, moduleID, HistoryQuery{From: from, To: to, Limit: limit})
}

// AsOf returns the twin as it was at time at: the current twin if it has
// not changed since, else the replay of its history up to at. Before the
// first change it is the Empty twin.
//
// Once history was trimmed the replay starts from the base the trim kept
// (the twin as of the newest trimmed change) instead of from Empty, and a
// time before that base is refused with HistoryTrimmedError naming the
// oldest time that can be answered: replaying only the kept changes would
// give a twin that never existed.
func (s *Service) AsOf(ctx context.Context, deviceID, moduleID string, at time.Time) (*Twin, error) {
	cur, err := s.store.GetTwin(ctx, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	if !at.Before(cur.UpdatedAt) {
		return cur, nil
	}
	// Changes after the GetTwin above carry later times than cur.UpdatedAt,
	// so they fall outside the range and the replay stays consistent.
	q := HistoryQuery{To: at.Add(time.Nanosecond)}
	ts, ok := s.store.(TrimStore)
	if !ok {
		cs, err := s.store.TwinHistory(ctx, deviceID, moduleID, q)
		if err != nil {
			return nil, err
		}
		return replay(deviceID, moduleID, cs)
	}
	base, cs, err := ts.TwinHistoryFromBase(ctx, deviceID, moduleID, q)
	if err != nil {
		return nil, err
	}
	if base == nil {
		return replay(deviceID, moduleID, cs)
	}
	if at.Before(base.UpdatedAt) {
		return nil, HistoryTrimmedError(deviceID, base.UpdatedAt)
	}
	return replayOnto(base, cs)
}
