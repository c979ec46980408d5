package hub

import (
	"context"
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

	mu      sync.Mutex
	pending map[string]sqlite.ConnectionState // guarded by mu: latest state per device since the last flush

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
	p.mu.Unlock()
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
