package twin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
)

// History bounds. The count keeps the recent past of a chatty device (a
// device reporting every 5 s keeps its last ~80 minutes) and, for twins
// changed by people and jobs, years of desired and tag edits; at a few
// hundred bytes a change it is well under a megabyte per twin. The age
// keeps a month, enough to look back at an incident reported late.
const (
	DefaultHistoryMaxChanges = 1000
	DefaultHistoryMaxAge     = 30 * 24 * time.Hour
	// TrimBatch is the most history rows one trim transaction deletes,
	// so that a large backlog never holds the store's writer for long.
	TrimBatch = 500
)

// HistoryBound bounds the history kept of each twin. A change is trimmed
// when either bound says so. A change is one twin version: a service PATCH
// of tags and desired together is one change.
type HistoryBound struct {
	MaxChanges int64         // keep at most this many newest changes; <= 0: no count bound
	MaxAge     time.Duration // keep changes at most this old; <= 0: no age bound
}

// TwinKey names one twin.
type TwinKey struct {
	DeviceID string
	ModuleID string // "" for the device twin
}

// TrimStore is a Store whose history can be trimmed. Trimming keeps, per
// twin, a base: the twin as of the newest trimmed change. Replaying the
// kept changes onto the base gives the twin at any time from the base's
// UpdatedAt on, so "as of" reads stay exact for the kept range; earlier
// times are refused (HistoryTrimmedError), never answered from a partial
// replay.
type TrimStore interface {
	Store
	// TwinsOverCount returns up to limit twins, in key order after after,
	// that keep more than maxChanges changes.
	TwinsOverCount(ctx context.Context, maxChanges int64, after TwinKey, limit int) ([]TwinKey, error)
	// TwinsChangedBefore returns up to limit twins that keep changes
	// older than cutoff.
	TwinsChangedBefore(ctx context.Context, cutoff time.Time, limit int) ([]TwinKey, error)
	// TwinHistoryFromBase returns, read at one point in time, the twin's
	// base (nil when nothing was trimmed) and its kept changes selected by
	// q, as TwinHistory does. Base and changes are consistent: a trim
	// running meanwhile is either wholly seen or not at all.
	TwinHistoryFromBase(ctx context.Context, deviceID, moduleID string, q HistoryQuery) (*Twin, []Change, error)
	// TrimTwinHistory deletes the changes of one twin up to base.Version
	// and stores base as its new base, in one transaction, provided the
	// stored base's version is still prev (0 for none); else it changes
	// nothing and returns ErrTrimConflict. A twin that no longer exists is
	// not an error: nothing is written. It returns the rows deleted.
	TrimTwinHistory(ctx context.Context, deviceID, moduleID string, prev int64, base *Twin) (int64, error)
}

// ErrTrimConflict is TrimTwinHistory's answer when another trim changed
// the base meanwhile.
var ErrTrimConflict = errors.New("twin history was trimmed meanwhile")

// HistoryTrimmedError is the error for an "as of" read before the oldest
// time the kept history can answer.
func HistoryTrimmedError(deviceID string, oldest time.Time) *fault.Error {
	return fault.New(fault.Invalid, "TwinHistoryTrimmed", 400030,
		"twin of %q: changes before %s were trimmed (see ferry serve --twin-history-max-changes and --twin-history-max-age); "+
			"the oldest time it can be read as of is %s", deviceID, oldest.UTC().Format(time.RFC3339Nano), oldest.UTC().Format(time.RFC3339Nano))
}

// HistoryStart returns the time before which the history of a twin was
// trimmed: its changes from then on are kept, and AsOf answers from then
// on. It is zero when nothing was trimmed (or the store cannot trim).
func (s *Service) HistoryStart(ctx context.Context, deviceID, moduleID string) (time.Time, error) {
	ts, ok := s.store.(TrimStore)
	if !ok {
		return time.Time{}, nil
	}
	base, _, err := ts.TwinHistoryFromBase(ctx, deviceID, moduleID, HistoryQuery{Limit: 1})
	if err != nil || base == nil {
		return time.Time{}, err
	}
	return base.UpdatedAt, nil
}

// TrimHistory deletes the changes beyond b from the history of every twin,
// at most TrimBatch rows per transaction, and returns how many rows it
// deleted. It goes on past a twin it fails to trim and returns the first
// error at the end; the rows left are trimmed next time.
func (s *Service) TrimHistory(ctx context.Context, b HistoryBound) (int64, error) {
	ts, ok := s.store.(TrimStore)
	if !ok || (b.MaxChanges <= 0 && b.MaxAge <= 0) {
		return 0, nil
	}
	var cutoff time.Time
	if b.MaxAge > 0 {
		cutoff = s.now().Add(-b.MaxAge)
	}
	var total int64
	var firstErr error
	note := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	const page = 100
	if b.MaxChanges > 0 {
		var after TwinKey
		for {
			keys, err := ts.TwinsOverCount(ctx, b.MaxChanges, after, page)
			if err != nil {
				note(fmt.Errorf("twin: find twins over %d changes: %w", b.MaxChanges, err))
				break
			}
			for _, k := range keys {
				n, err := s.trimTwin(ctx, ts, k, b.MaxChanges, cutoff)
				total += n
				if err != nil {
					note(err)
				}
			}
			if len(keys) < page || ctx.Err() != nil {
				break
			}
			after = keys[len(keys)-1]
		}
	}
	if !cutoff.IsZero() {
		// Trimmed rows leave the index range, so each round starts over;
		// a round that deletes nothing (every twin in it failed) ends it.
		for ctx.Err() == nil {
			keys, err := ts.TwinsChangedBefore(ctx, cutoff, page)
			if err != nil {
				note(fmt.Errorf("twin: find twins changed before %s: %w", cutoff.Format(time.RFC3339), err))
				break
			}
			var round int64
			for _, k := range keys {
				n, err := s.trimTwin(ctx, ts, k, b.MaxChanges, cutoff)
				round += n
				if err != nil {
					note(err)
				}
			}
			total += round
			if len(keys) < page || round == 0 {
				break
			}
		}
	}
	if err := ctx.Err(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("twin: trim history: %w", err)
	}
	return total, firstErr
}

// trimTwin trims one twin down to both bounds, a batch at a time. Each
// batch reads the base and the oldest kept rows (on a reader), replays
// the rows to trim onto the base outside any write transaction, and then
// deletes them and stores the new base in one short write transaction.
func (s *Service) trimTwin(ctx context.Context, ts TrimStore, k TwinKey, maxChanges int64, cutoff time.Time) (int64, error) {
	cur, err := ts.GetTwin(ctx, k.DeviceID, k.ModuleID)
	if err != nil {
		if fault.Is(err, fault.NotFound) {
			return 0, nil // deleted meanwhile: its history went with it
		}
		return 0, fmt.Errorf("twin: trim history of %s: %w", k, err)
	}
	keepFrom := int64(0) // versions below this go by count
	if maxChanges > 0 {
		keepFrom = cur.Version - maxChanges + 1
	}
	var total int64
	for ctx.Err() == nil {
		base, cs, err := ts.TwinHistoryFromBase(ctx, k.DeviceID, k.ModuleID, HistoryQuery{Limit: TrimBatch})
		if err != nil {
			return total, fmt.Errorf("twin: trim history of %s: %w", k, err)
		}
		full := len(cs) == TrimBatch
		if full {
			// The last version may have rows beyond the batch: leave it
			// whole for the next one, so a base is always a whole version.
			last := cs[len(cs)-1].TwinVersion
			for len(cs) > 0 && cs[len(cs)-1].TwinVersion == last {
				cs = cs[:len(cs)-1]
			}
		}
		n := 0
		for n < len(cs) && (cs[n].TwinVersion < keepFrom || (!cutoff.IsZero() && cs[n].Time.Before(cutoff))) {
			n++
		}
		// The rows of one version share their time, so both bounds cut
		// between versions; this only makes sure of it.
		for n > 0 && n < len(cs) && cs[n].TwinVersion == cs[n-1].TwinVersion {
			n--
		}
		if n == 0 {
			return total, nil
		}
		var prev int64
		start := Empty(k.DeviceID, k.ModuleID)
		if base != nil {
			prev, start = base.Version, base
		}
		next, err := replayOnto(start, cs[:n])
		if err != nil {
			return total, fmt.Errorf("twin: trim history of %s: %w", k, err)
		}
		deleted, err := ts.TrimTwinHistory(ctx, k.DeviceID, k.ModuleID, prev, next)
		total += deleted
		if errors.Is(err, ErrTrimConflict) {
			continue // another node trimmed it; read its base and go on
		}
		if err != nil {
			return total, fmt.Errorf("twin: trim history of %s: %w", k, err)
		}
		if deleted == 0 {
			return total, nil // the twin was deleted meanwhile
		}
		if !full && n == len(cs) {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// String returns "device" or "device/module".
func (k TwinKey) String() string {
	if k.ModuleID == "" {
		return k.DeviceID
	}
	return k.DeviceID + "/" + k.ModuleID
}
