package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
)

// Console sessions: stored by hash, capped at a maximum by evicting those
// closest to expiry, touched, purged when expired or idle, deleted with
// their policy.
func TestConsoleSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.db")
	db := mustOpen(t, path)
	ctx := t.Context()
	for _, name := range []string{"owner", "reader"} {
		if err := db.PutPolicy(ctx, registry.Policy{KeyName: name, PrimaryKey: "a", SecondaryKey: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(id byte, policy string, expires time.Duration) sqlite.ConsoleSession {
		return sqlite.ConsoleSession{ID: []byte{id}, Policy: policy, KeyHash: []byte{0xf0, id},
			Created: t0, LastSeen: t0, Expires: t0.Add(expires)}
	}
	has := func(id byte) bool {
		t.Helper()
		_, ok, err := db.ConsoleSession(ctx, []byte{id})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, s := range []sqlite.ConsoleSession{mk(1, "owner", time.Hour), mk(2, "owner", 2*time.Hour), mk(3, "reader", 3*time.Hour)} {
		if err := db.CreateConsoleSession(ctx, s, 3); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := db.ConsoleSession(ctx, []byte{2})
	if err != nil || !ok || got.Policy != "owner" || string(got.KeyHash) != "\xf0\x02" || !got.Expires.Equal(t0.Add(2*time.Hour)) || !got.LastSeen.Equal(t0) {
		t.Fatalf("session 2 = %+v, %v, %v", got, ok, err)
	}

	// Full: the session closest to expiry makes room.
	if err := db.CreateConsoleSession(ctx, mk(4, "owner", 4*time.Hour), 3); err != nil {
		t.Fatal(err)
	}
	if has(1) || !has(2) || !has(3) || !has(4) {
		t.Errorf("after a fourth sign-in with room for three: have 1=%v 2=%v 3=%v 4=%v, want only 1 evicted", has(1), has(2), has(3), has(4))
	}

	if err := db.TouchConsoleSession(ctx, []byte{4}, t0.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// At t0+2h30m: 2 expired; 3 was last seen at t0, 4 at t0+90m.
	n, err := db.PurgeConsoleSessions(ctx, t0.Add(150*time.Minute), t0.Add(time.Hour), 10)
	if err != nil || n != 2 || has(2) || has(3) || !has(4) {
		t.Errorf("purge removed %d (%v); have 2=%v 3=%v 4=%v, want 2 and 3 gone", n, err, has(2), has(3), has(4))
	}

	if err := db.DeleteConsoleSession(ctx, []byte{4}); err != nil || has(4) {
		t.Errorf("delete: %v, still there: %v", err, has(4))
	}

	// Deleting a policy deletes its sessions.
	if err := db.CreateConsoleSession(ctx, mk(5, "reader", time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	raw := openRaw(t, path+"?_foreign_keys=1")
	if _, err := raw.Exec(`DELETE FROM policies WHERE key_name = 'reader'`); err != nil {
		t.Fatal(err)
	}
	if has(5) {
		t.Error("a deleted policy's session is still stored")
	}
}
