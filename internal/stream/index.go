package stream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamInfo describes one stream as seen by Store.Streams.
type StreamInfo struct {
	Group    string    `json:"group"`
	Name     string    `json:"name"`
	Messages uint64    `json:"messages"` // messages written since the stream was first used
	First    time.Time `json:"first"`    // EnqueuedTime of the first message
	Last     time.Time `json:"last"`     // EnqueuedTime of the newest message
}

// streamIndex is the persisted summary behind Streams: counts up to and
// including batch Seq. It lives in the IndexBucket under indexKey, so a
// restart (or another node) continues from Seq instead of rescanning.
type streamIndex struct {
	Seq     uint64       `json:"seq"`
	Streams []StreamInfo `json:"streams"`
}

const indexKey = "index"

// Streams returns every stream that has received messages, sorted by group
// and name. It first brings the index up to date with the batches written
// since the last call, so its cost is proportional to new data. Counts
// include messages that retention has since removed.
func (s *Store) Streams(ctx context.Context) ([]StreamInfo, error) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if s.idx == nil {
		if err := s.loadIndex(ctx); err != nil {
			return nil, err
		}
	}
	info, err := s.st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream: read stream info: %w", err)
	}
	if info.State.LastSeq < s.idx.Seq { // the stream was recreated
		s.idx = &streamIndex{}
	}
	if info.State.LastSeq > s.idx.Seq {
		if err := s.catchUp(ctx, s.idx, info.State.LastSeq); err != nil {
			return nil, err
		}
		s.saveIndex(ctx)
	}
	return slices.Clone(s.idx.Streams), nil
}

func (s *Store) loadIndex(ctx context.Context) error {
	s.idx, s.idxRv = &streamIndex{}, 0
	e, err := s.index.Get(ctx, indexKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream: load index: %w", err)
	}
	if err := json.Unmarshal(e.Value(), s.idx); err != nil {
		s.cfg.Logger.Warn("stream: rebuilding unreadable index", "err", err)
		s.idx = &streamIndex{}
	}
	s.idxRv = e.Revision()
	return nil
}

// saveIndex stores the index. If another node saved a newer one meanwhile,
// that one is adopted. Failures only cost a rescan later, so they are
// logged, not returned.
func (s *Store) saveIndex(ctx context.Context) {
	data, err := json.Marshal(s.idx)
	if err != nil {
		s.cfg.Logger.Error("stream: encode index", "err", err)
		return
	}
	var rev uint64
	if s.idxRv == 0 {
		rev, err = s.index.Create(ctx, indexKey, data)
	} else {
		rev, err = s.index.Update(ctx, indexKey, data, s.idxRv)
	}
	if err == nil {
		s.idxRv = rev
		return
	}
	mine := s.idx
	if lerr := s.loadIndex(ctx); lerr != nil || s.idx.Seq < mine.Seq {
		s.idx = mine // keep ours; the next call tries again
		s.cfg.Logger.Warn("stream: save index", "err", err)
	}
}

// catchUp adds the batches after idx.Seq up to last to idx.
func (s *Store) catchUp(ctx context.Context, idx *streamIndex, last uint64) error {
	pos := make(map[string]map[string]int) // group -> name -> index in idx.Streams
	for i, si := range idx.Streams {
		if pos[si.Group] == nil {
			pos[si.Group] = make(map[string]int)
		}
		pos[si.Group][si.Name] = i
	}
	for seq := idx.Seq + 1; seq <= last; {
		raw, err := s.st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(IngestSubject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("stream: index batch %d: %w", seq, err)
		}
		err = eachRecord(raw.Data, func(_ uint32, rec []byte) error {
			h, err := peek(rec)
			if err == nil {
				idx.count(pos, &h)
			}
			return err
		})
		if err != nil {
			s.cfg.Logger.Warn("stream: index skips undecodable batch", "seq", raw.Sequence, "err", err)
		}
		idx.Seq = raw.Sequence
		seq = raw.Sequence + 1
	}
	slices.SortFunc(idx.Streams, func(a, b StreamInfo) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Name, b.Name))
	})
	return nil
}

// count adds one message to its stream's summary.
func (idx *streamIndex) count(pos map[string]map[string]int, h *header) {
	g, n := orDefault(string(h.f[fieldGroup])), orDefault(string(h.f[fieldStream]))
	if pos[g] == nil {
		pos[g] = make(map[string]int)
	}
	i, ok := pos[g][n]
	if !ok {
		i = len(idx.Streams)
		pos[g][n] = i
		idx.Streams = append(idx.Streams, StreamInfo{Group: g, Name: n})
	}
	si := &idx.Streams[i]
	t := time.Unix(0, h.enqueued).UTC()
	if si.Messages == 0 || t.Before(si.First) {
		si.First = t
	}
	if t.After(si.Last) {
		si.Last = t
	}
	si.Messages++
}
