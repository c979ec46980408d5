package twin

import (
	"context"
	"fmt"
	"time"
)

// sidePatch is a checked merge patch for one side; a nil or empty patch is
// no change.
type sidePatch struct {
	side  Side
	patch object
}

// commit applies patches to t as one change of the twin, at the service's
// current time, and returns the history entries. Nothing in t changes when
// every patch is empty. An error (a document over its size limit) leaves t
// half-changed; the store then discards it.
func (s *Service) commit(t *Twin, source string, patches ...sidePatch) ([]Change, error) {
	// Times never go backwards within a twin, even if the clock does, so
	// that history order by time is version order and AsOf stays exact.
	now := s.now().UTC().Truncate(time.Microsecond) // what every store keeps
	if now.Before(t.UpdatedAt) {
		now = t.UpdatedAt
	}
	version := t.Version + 1
	var cs []Change
	for _, p := range patches {
		if len(p.patch) == 0 {
			continue
		}
		c := Change{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Side: p.side, TwinVersion: version,
			Time: now, Source: source, Patch: encode(p.patch)}
		c.Version = sideVersion(t, p.side) + 1
		if err := applySide(t, p.side, p.patch, now, c.Version, &s.limits); err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	if len(cs) > 0 {
		finish(t, cs)
	}
	return cs, nil
}

// finish sets the twin version, time and etag after the changes cs of one
// twin version.
func finish(t *Twin, cs []Change) {
	t.Version, t.UpdatedAt = cs[0].TwinVersion, cs[0].Time
	for _, c := range cs {
		if c.Side != Reported {
			t.ETag = ETag(t.Version)
		}
	}
}

func sideVersion(t *Twin, side Side) int64 {
	switch side {
	case Tags:
		return t.TagsVersion
	case Desired:
		return t.Desired.Version
	}
	return t.Reported.Version
}

// applySide merges patch into one side of t at time at, giving the side
// version, and updates its metadata. lim, when not nil, bounds the size of
// the result; replay passes nil since history holds only accepted changes.
func applySide(t *Twin, side Side, patch object, at time.Time, version int64, lim *Limits) error {
	if side == Tags {
		doc, err := mergeDoc(t.Tags, patch, side, lim)
		if err != nil {
			return err
		}
		t.Tags, t.TagsVersion = doc, version
		return nil
	}
	p, st := &t.Reported, newStamp(at, 0)
	if side == Desired {
		p, st = &t.Desired, newStamp(at, version)
	}
	doc, err := mergeDoc(p.Doc, patch, side, lim)
	if err != nil {
		return err
	}
	meta, err := decodeObject(p.Metadata)
	if err != nil {
		return fmt.Errorf("twin %s: bad stored %s metadata: %w", t.DeviceID, side, err)
	}
	mergeMeta(meta, patch, st)
	p.Doc, p.Metadata, p.Version = doc, encode(meta), version
	return nil
}

// mergeDoc merges patch into the stored document doc and checks the size.
func mergeDoc(doc []byte, patch object, side Side, lim *Limits) ([]byte, error) {
	o, err := decodeObject(doc)
	if err != nil {
		return nil, fmt.Errorf("bad stored %s: %w", side, err)
	}
	out := encode(merge(o, patch))
	if lim != nil {
		if err := lim.checkSize(side, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// replay rebuilds a twin from Empty by applying its history, which must be
// in twin version order.
func replay(deviceID, moduleID string, cs []Change) (*Twin, error) {
	return replayOnto(Empty(deviceID, moduleID), cs)
}

// replayOnto applies changes cs, in twin version order, to a copy of t:
// the Empty twin, or a base kept when older history was trimmed.
func replayOnto(t *Twin, cs []Change) (*Twin, error) {
	t = t.Clone()
	for i := 0; i < len(cs); {
		j := i + 1
		for j < len(cs) && cs[j].TwinVersion == cs[i].TwinVersion {
			j++
		}
		for _, c := range cs[i:j] {
			p, err := decodeObject(c.Patch)
			if err != nil {
				return nil, fmt.Errorf("twin %s: bad patch in history at version %d: %w", t.DeviceID, c.TwinVersion, err)
			}
			if err := applySide(t, c.Side, p, c.Time, c.Version, nil); err != nil {
				return nil, err
			}
		}
		finish(t, cs[i:j])
		i = j
	}
	return t, nil
}

// sourceKey is the context key of a change's source.
type sourceKey struct{}

// WithSource returns a context under which twin changes are recorded with
// source src, for example "service:iothubowner" for a service policy.
func WithSource(ctx context.Context, src string) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

func sourceFrom(ctx context.Context, def string) string {
	if src, ok := ctx.Value(sourceKey{}).(string); ok && src != "" {
		return src
	}
	return def
}
