package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// loadDedup fills the dedup window from the tail of the stream, so that a
// device resending after a hub restart is not stored twice. It walks
// batches backwards from the newest until DedupWindow (by stored time) or
// DedupMax messages are covered; the second bound keeps a restart after a
// busy spell from reading gigabytes.
func (w *Writer) loadDedup(ctx context.Context, st jetstream.Stream) error {
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream: load dedup window: %w", err)
	}
	cutoff := w.cfg.Now().Add(-w.cfg.DedupWindow)
	type id struct {
		key dedupKey
		at  int64
	}
	var newestFirst [][]id
	total := 0
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && total < w.cfg.DedupMax; seq-- {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted or expired meanwhile
		}
		if err != nil {
			return fmt.Errorf("stream: load dedup window at %d: %w", seq, err)
		}
		if raw.Time.Before(cutoff) {
			break
		}
		var ids []id
		records := 0
		err = eachRecord(raw.Data, func(_ uint32, rec []byte) error {
			records++
			h, err := peek(rec)
			if err == nil && len(h.f[fieldMessageID]) > 0 {
				k := w.dd.key(h.f[fieldDevice], h.f[fieldModule], h.f[fieldMessageID])
				ids = append(ids, id{k, h.enqueued})
			}
			return err
		})
		if err != nil {
			w.cfg.Logger.Warn("stream: skipping undecodable batch", "seq", seq, "err", err)
			continue
		}
		newestFirst = append(newestFirst, ids)
		total += records
	}
	for i := len(newestFirst) - 1; i >= 0; i-- {
		for _, x := range newestFirst[i] {
			if _, ok := w.dd.lookup(x.key); !ok {
				w.dd.add(x.key, x.at, 0)
			}
		}
	}
	return nil
}
