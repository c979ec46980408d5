package console

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"
)

// PresenceFeed tells of devices connecting and disconnecting (the hub's
// presence tracker). fn runs in the broker's goroutine and must not block.
type PresenceFeed interface {
	WatchPresence(fn func(deviceID string, connected bool, at time.Time)) (stop func())
}

const (
	presenceMaxIDs  = 200                    // devices one browser watches at most (a page of the list)
	presenceEvery   = 250 * time.Millisecond // at most four updates a second per browser
	presencePingGap = 15 * time.Second
)

// presenceFan hands connection changes to the browsers whose device list
// shows those devices. A change only marks the device in each watching
// browser's set (bounded by the page's devices) and wakes its stream
// without waiting; the stream then reads the broker's current state of the
// marked devices. A busy hub or a slow browser therefore costs one map
// entry per device, never a queue, and the hub never waits for a browser.
type presenceFan struct {
	stop func()

	mu   sync.Mutex
	byID map[string]map[*presenceWatch]struct{} // guarded by mu
}

// presenceWatch is one browser's devices and which of them changed.
type presenceWatch struct {
	ids  []string
	wake chan struct{} // capacity 1: a pending wake-up is enough

	mu    sync.Mutex
	dirty map[string]struct{} // guarded by mu; at most len(ids) entries
}

// lock order: presenceFan.mu, then presenceWatch.mu.

func newPresenceFan(feed PresenceFeed) *presenceFan {
	if feed == nil {
		return nil
	}
	f := &presenceFan{byID: make(map[string]map[*presenceWatch]struct{})}
	f.stop = feed.WatchPresence(f.changed)
	return f
}

// changed is the feed's callback.
func (f *presenceFan) changed(id string, _ bool, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.byID[id] {
		w.mu.Lock()
		w.dirty[id] = struct{}{}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// watch registers a browser's devices; the returned func unregisters.
func (f *presenceFan) watch(ids []string) (*presenceWatch, func()) {
	w := &presenceWatch{ids: ids, wake: make(chan struct{}, 1), dirty: make(map[string]struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		m := f.byID[id]
		if m == nil {
			m = make(map[*presenceWatch]struct{})
			f.byID[id] = m
		}
		m[w] = struct{}{}
	}
	return w, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, id := range ids {
			delete(f.byID[id], w)
			if len(f.byID[id]) == 0 {
				delete(f.byID, id)
			}
		}
	}
}

func (f *presenceFan) close() {
	if f != nil {
		f.stop()
	}
}

// take returns the devices changed since the last take.
func (w *presenceWatch) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.dirty))
	for id := range w.dirty {
		ids = append(ids, id)
	}
	clear(w.dirty)
	return ids
}

// presenceIDs is the request's ?id=a&id=b, deduplicated, at most
// presenceMaxIDs.
func presenceIDs(r *http.Request) []string {
	ids := slices.Clone(r.URL.Query()["id"])
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > presenceMaxIDs {
		ids = ids[:presenceMaxIDs]
	}
	return ids
}

// presenceEvent encodes the devices' current connection state, in the
// shape of the list's poll (data/presence).
func (c *Console) presenceEvent(ids []string) []byte {
	out := make(map[string]presenceItem, len(ids))
	for _, id := range ids {
		on, _, last := c.cfg.Presence.Presence(id)
		out[id] = presenceItem{Connected: on, LastActivity: last}
	}
	b, _ := json.Marshal(map[string]any{"devices": out, "connected": c.cfg.Presence.ConnectedCount()})
	return b
}

// presenceLive pushes the connection state of the list's devices
// (?id=a&id=b): first all of them, then those that connected or
// disconnected, at most every presenceEvery. A browser that reconnects
// gets all of them again, so it resyncs after anything it missed.
func (c *Console) presenceLive(w http.ResponseWriter, r *http.Request) {
	if c.pushes == nil {
		w.WriteHeader(http.StatusNoContent) // tells EventSource not to reconnect: the page polls
		return
	}
	ids := presenceIDs(r)
	pw, stop := c.pushes.watch(ids)
	defer stop()
	ev := startSSE(w)
	if ev.send("presence", c.presenceEvent(ids)) != nil {
		return
	}
	ping := time.NewTicker(presencePingGap)
	defer ping.Stop()
	var last time.Time
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if ev.send("ping", []byte("{}")) != nil {
				return
			}
		case <-pw.wake:
			sleep(r.Context(), presenceEvery-time.Since(last)) // changes meanwhile join this update
			if r.Context().Err() != nil {
				return
			}
			changed := pw.take()
			if len(changed) == 0 {
				continue
			}
			last = time.Now()
			if ev.send("presence", c.presenceEvent(changed)) != nil {
				return
			}
		}
	}
}
