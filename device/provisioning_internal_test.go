package device

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/provision"
)

// TestRegistrationRefresh renews the registration token once less than
// half its life is left, keeps the new one in the store, and stops for
// good with a clear log line once the provisioning token is revoked.
func TestRegistrationRefresh(t *testing.T) {
	h := hubtest.Start(t)
	ctx := context.Background()
	tok, err := h.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(filepath.Join(t.TempDir(), "d.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cfg := &Config{CAFile: h.CAFile(), Logger: testLogger(t), Provisioning: &Provisioning{
		Token: tok.Secret, URL: "https://" + h.HTTPAddr().String(), DeviceID: "refresh-1",
		OnOperation: func(op ProvisioningOperation) {
			go h.Client.ApproveProvisioning(ctx, op.ID, provision.Approval{})
		}}}
	p, err := newProvisioner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.kv = q
	if _, err := p.credentials(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := p.load()

	if stop := p.refreshOnce(ctx, time.Now()); stop {
		t.Fatal("refresh stopped with a fresh token")
	}
	if same, _ := p.load(); same.RegistrationToken != first.RegistrationToken {
		t.Fatal("a fresh registration token was renewed")
	}
	time.Sleep(1100 * time.Millisecond) // tokens carry whole seconds: a renewal in the same second is the same token
	if stop := p.refreshOnce(ctx, first.RegistrationUntil.Add(-time.Hour)); stop {
		t.Fatal("refresh stopped")
	}
	renewed, _ := p.load()
	if renewed.RegistrationToken == first.RegistrationToken || !renewed.RegistrationUntil.After(time.Now()) {
		t.Fatalf("not renewed: %+v", renewed)
	}
	if renewed.ConnectionString != first.ConnectionString {
		t.Fatal("renewal changed the connection string")
	}

	if _, err := h.Client.RevokeProvisioningToken(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if stop := p.refreshOnce(ctx, renewed.RegistrationUntil.Add(-time.Hour)); !stop {
		t.Fatal("refresh goes on after the provisioning token was revoked")
	}
	if kept, _ := p.load(); kept.ConnectionString != first.ConnectionString {
		t.Fatal("the stored credentials were dropped when refreshing stopped")
	}
}

// testLogger writes the SDK's log into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
