package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestShutdownEndsLongPolls: a monitor waiting for messages must not hold
// up the hub's shutdown until its wait runs out.
func TestShutdownEndsLongPolls(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	polling := make(chan error, 1)
	go func() {
		_, err := h.Client.ReadStream(context.Background(), "*", api.ReadQuery{From: "now", Wait: 50 * time.Second})
		polling <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the poll reach the hub
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Far below the poll's 50s, however slowly a loaded machine shuts down.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("shutdown took %s with a long poll open", d)
	}
	select {
	case err := <-polling:
		if err == nil {
			t.Fatal("the long poll ended without an error at shutdown")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll did not end")
	}
}
