package twin_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/twin"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// clock is a fake time source that advances one millisecond per reading, so
// every change has its own time.
type clock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

// env is a Service over a real SQLite file with registered devices.
type env struct {
	svc   *twin.Service
	db    *sqlite.DB
	clock *clock
}

// newEnv opens a temp-file database, registers devices and returns a
// Service with a fake clock.
func newEnv(t testing.TB, devices ...string) *env {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{db: db, clock: &clock{now: t0}}
	for _, id := range devices {
		e.register(t, id)
	}
	e.svc = twin.NewService(db, twin.Options{Now: e.clock.Now})
	t.Cleanup(func() { // before the database closes
		if err := e.svc.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

// register adds a device to e's registry.
func (e *env) register(t testing.TB, id string) {
	t.Helper()
	d := &registry.Device{DeviceID: id, GenerationID: "1", ETag: "e", Status: registry.StatusEnabled,
		ConnectionState: registry.Disconnected, Authentication: registry.Authentication{Type: registry.AuthSAS}}
	if err := e.db.CreateDevice(t.Context(), d); err != nil {
		t.Fatal(err)
	}
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantInvalid fails unless err is fault.Invalid with a message containing want.
func wantInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if !fault.Is(err, fault.Invalid) || !strings.Contains(fault.Public(err), want) {
		t.Fatalf("err = %v, want an Invalid error containing %q", err, want)
	}
}

// jsonEqual reports whether two JSON texts hold equal values.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("bad JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// wantJSON fails unless got holds the same JSON value as want.
func wantJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !jsonEqual(t, got, []byte(want)) {
		t.Errorf("%s = %s\nwant %s", what, got, want)
	}
}

// ts is the fake clock's time after n readings, as metadata prints it.
func ts(n int) string {
	return t0.Add(time.Duration(n) * time.Millisecond).Format(time.RFC3339Nano)
}
