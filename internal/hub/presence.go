package hub

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// presence batches devices' connection-state changes into the registry, so
// that queries on connectionState see them, without a database write on
// every connect (thousands per second in a reconnect storm).
type presence struct {
	db  *sqlite.DB
	log interface {
		Error(msg string, args ...any)
	}

	mu       sync.Mutex
	pending  map[string]sqlite.ConnectionState // guarded by mu: latest state per device since the last flush
	watchers []*presenceWatcher                // guarded by mu; replaced, never changed in place

	stop chan struct{}
	done chan struct{}
}

const presenceInterval = time.Second

func newPresence(db *sqlite.DB, log interface{ Error(string, ...any) }) *presence {
	return &presence{db: db, log: log, pending: make(map[string]sqlite.ConnectionState),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// record is the broker's OnPresence: it only notes the change.
func (p *presence) record(clientID string, connected bool, at time.Time) {
	if strings.Contains(clientID, "/") {
		return // modules have no registry row of their own yet
	}
	p.mu.Lock()
	p.pending[clientID] = sqlite.ConnectionState{DeviceID: clientID, Connected: connected, At: at}
	ws := p.watchers
	p.mu.Unlock()
	for _, w := range ws {
		w.fn(clientID, connected, at)
	}
}

// presenceWatcher is one function told of connection changes.
type presenceWatcher struct {
	fn func(deviceID string, connected bool, at time.Time)
}

// WatchPresence calls fn on every device connecting or disconnecting, in
// the broker's goroutine (fn must not block), until stop is called. It
// serves the console's live device list.
func (p *presence) WatchPresence(fn func(deviceID string, connected bool, at time.Time)) (stop func()) {
	w := &presenceWatcher{fn: fn}
	p.mu.Lock()
	p.watchers = append(slices.Clip(p.watchers), w)
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.watchers = slices.DeleteFunc(slices.Clone(p.watchers), func(o *presenceWatcher) bool { return o == w })
		p.mu.Unlock()
	}
}

func (p *presence) run() {
	defer close(p.done)
	t := time.NewTicker(presenceInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.flush()
		case <-p.stop:
			p.flush()
			return
		}
	}
}

func (p *presence) flush() {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return
	}
	batch := make([]sqlite.ConnectionState, 0, len(p.pending))
	for _, s := range p.pending {
		batch = append(batch, s)
	}
	clear(p.pending)
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.db.SetConnectionStates(ctx, batch); err != nil {
		p.log.Error("record connection states", "devices", len(batch), "error", err)
	}
}

// close flushes what is pending and stops the flusher.
func (p *presence) close() {
	close(p.stop)
	<-p.done
}
