package transport

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestRefusedGetsNewKey: a device whose key the hub refuses asks Refused
// for new credentials (as re-provisioning does) and connects with them.
func TestRefusedGetsNewKey(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "rekey")
	d := newDialer(tlsAddr(h))
	rec := &recorder{}
	cfg := config(h, dev, d, rec)
	cfg.Key = []byte("a key the hub never issued")
	cfg.Backoff.Min, cfg.Backoff.Max = 20*time.Millisecond, 40*time.Millisecond
	var calls atomic.Int32
	cfg.Refused = func(ctx context.Context, err error) ([]byte, error) {
		var ref *RefusedError
		if !errors.As(err, &ref) {
			t.Errorf("Refused called with %v, want a RefusedError", err)
		}
		if calls.Add(1) == 1 {
			return nil, errors.New("the operator has not approved yet")
		}
		return dev.Key, nil
	}
	tr := Start(context.Background(), cfg)
	defer tr.Close()
	waitConnected(t, tr)
	if n := calls.Load(); n != 2 {
		t.Fatalf("Refused called %d times, want 2 (one failure, one new key)", n)
	}
	if ok, failed := publishAll(t, tr, dev, 0, 10); ok != 10 || failed != 0 {
		t.Fatalf("acked %d, failed %d", ok, failed)
	}
}

// TestRefusedBlocksUntilClose: Close ends a Refused call that waits (for an
// operator, say) instead of hanging.
func TestRefusedBlocksUntilClose(t *testing.T) {
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "rekey2")
	cfg := config(h, dev, newDialer(tlsAddr(h)), &recorder{})
	cfg.Key = []byte("wrong")
	entered := make(chan struct{}, 1)
	cfg.Refused = func(ctx context.Context, err error) ([]byte, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	tr := Start(context.Background(), cfg)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Refused was not called")
	}
	done := make(chan struct{})
	go func() { tr.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hung while Refused waited")
	}
}
