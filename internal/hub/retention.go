package hub

import (
	"context"
	"time"

	"github.com/ferry-iot/ferry/internal/twin"
)

// DefaultRetentionInterval is how often the retention sweep runs unless
// Config.RetentionInterval says otherwise. What it deletes is bounded by
// its own limits meanwhile (the pending-operation cap, the console's
// session maximum), so the sweep only has to keep up, not be prompt.
const DefaultRetentionInterval = 10 * time.Minute

// sessionPurgeBatch is the most console sessions one delete removes, so a
// large backlog never holds the SQLite writer for long.
const sessionPurgeBatch = 500

// retention is the background sweep that deletes what the store would
// otherwise keep forever: provisioning operations a retention after they
// ended, expired console sessions (the console also drops them lazily,
// but only when someone signs in or presents one), and twin history beyond
// Config.TwinHistoryMaxChanges and TwinHistoryMaxAge. Each package owns its
// rule; the sweep only calls them on a timer, once at start too, so a hub
// that was down a long time catches up at once.
type retention struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startRetention starts the sweep; stopRetention ends it.
func (h *Hub) startRetention() {
	ctx, cancel := context.WithCancel(context.Background())
	r := &retention{cancel: cancel, done: make(chan struct{})}
	h.retention = r
	go func() {
		defer close(r.done)
		h.runRetention(ctx)
	}()
}

// stopRetention stops the sweep and waits for it, cancelling a delete in
// flight (the rows it did not reach are deleted next time).
func (h *Hub) stopRetention() {
	if h.retention == nil {
		return
	}
	h.retention.cancel()
	<-h.retention.done
}

func (h *Hub) runRetention(ctx context.Context) {
	t := time.NewTicker(h.cfg.RetentionInterval)
	defer t.Stop()
	for {
		h.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep runs each part once; a failing part is logged and retried on the
// next tick, and does not keep the others from running.
func (h *Hub) sweep(ctx context.Context) {
	log := h.log.With("component", "retention")
	if h.provision != nil {
		if _, err := h.provision.PurgeOperations(ctx, h.cfg.ProvisioningRetention); err != nil && ctx.Err() == nil {
			log.Warn("purge of ended provisioning operations failed; retrying at the next sweep", "error", err)
		}
	}
	var sessions int64
	for ctx.Err() == nil {
		// The hub's console has no idle limit (console.Config.SessionIdle),
		// so expiry is the whole rule.
		n, err := h.db.PurgeConsoleSessions(ctx, h.cfg.Now(), time.Time{}, sessionPurgeBatch)
		sessions += n
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("purge of expired console sessions failed; retrying at the next sweep", "error", err)
			}
			break
		}
		if n < sessionPurgeBatch {
			break
		}
	}
	if sessions > 0 {
		log.Info("expired console sessions purged", "count", sessions)
	}
	// twin.Service trims twin.TrimBatch rows per transaction, so reported
	// patches waiting for the writer wait for one short delete at most.
	if ctx.Err() == nil {
		n, err := h.twins.TrimHistory(ctx, twin.HistoryBound{MaxChanges: h.cfg.TwinHistoryMaxChanges, MaxAge: h.cfg.TwinHistoryMaxAge})
		if err != nil && ctx.Err() == nil {
			log.Warn("trimming twin history failed; retrying at the next sweep", "error", err, "trimmed", n)
		} else if n > 0 {
			log.Info("twin history trimmed", "rows", n,
				"maxChanges", h.cfg.TwinHistoryMaxChanges, "maxAge", h.cfg.TwinHistoryMaxAge)
		}
	}
}
