package registry_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// newService returns a Service over a fresh SQLite file, with the store for
// tests that change data behind the Service's back (as another node would).
func newService(t testing.TB, opt registry.Options) (*registry.Service, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return registry.NewService(db, opt), db
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantFault fails t unless err has kind k and its public message contains
// every one of parts.
func wantFault(t *testing.T, err error, k fault.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", k)
	}
	if got := fault.KindOf(err); got != k {
		t.Fatalf("err = %v (kind %v), want kind %v", err, got, k)
	}
	msg := fault.Public(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not mention %q", msg, p)
		}
	}
}

func ptr[T any](v T) *T { return &v }
