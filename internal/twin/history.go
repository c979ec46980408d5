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
// it may be at most MaxHistoryLimit.
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
	cs, err := s.store.TwinHistory(ctx, deviceID, moduleID, HistoryQuery{To: at.Add(time.Nanosecond)})
	if err != nil {
		return nil, err
	}
	return replay(deviceID, moduleID, cs)
}
