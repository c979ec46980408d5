package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/session"
)

// TestPurgeExpiredSessions: the startup purge deletes the subscriptions of
// sessions that ended, keeps those of sessions still running and of
// connected clients (no recorded end), and a deleted session takes its end
// with it.
func TestPurgeExpiredSessions(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir()+"/ferry.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Unix(1_800_000_000, 0)
	var subs []session.Subscription
	for _, id := range []string{"ended", "running", "connected", "deleted"} {
		subs = append(subs, session.Subscription{ClientID: id, Filter: "a", QoS: 1}, session.Subscription{ClientID: id, Filter: "b", QoS: 1})
	}
	if err := db.SaveSubscriptions(ctx, subs); err != nil {
		t.Fatal(err)
	}
	for id, at := range map[string]time.Time{"ended": now.Add(-time.Second), "running": now.Add(time.Hour), "deleted": now.Add(-time.Hour), "no-subs": now.Add(-time.Hour)} {
		if err := db.SetSessionExpiry(ctx, id, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteSession(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeExpiredSessions(ctx, now)
	if err != nil || n != 2 { // "ended" and "no-subs"
		t.Fatalf("purge: %d %v, want 2", n, err)
	}
	left, err := db.LoadSubscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range left {
		got[s.ClientID]++
	}
	if len(got) != 2 || got["running"] != 2 || got["connected"] != 2 {
		t.Fatalf("subscriptions left: %v, want running and connected", got)
	}
	ends, err := db.LoadSessionExpiries(ctx)
	if err != nil || len(ends) != 1 || !ends["running"].Equal(now.Add(time.Hour)) {
		t.Fatalf("session ends left: %v %v, want running's", ends, err)
	}
	if err := db.ClearSessionExpiry(ctx, "running"); err != nil {
		t.Fatal(err)
	}
	if ends, _ := db.LoadSessionExpiries(ctx); len(ends) != 0 {
		t.Fatalf("cleared end still there: %v", ends)
	}
}
