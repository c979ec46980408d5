package device

import (
	"context"
	"net"
	"time"
)

// SetTestHooks makes cfg dial through dial and retry connections every
// backoff (jittered up to twice that), so tests control reachability.
func SetTestHooks(cfg *Config, dial func(ctx context.Context, network, addr string) (net.Conn, error), backoff time.Duration) {
	cfg.dial = dial
	cfg.backoff.Min, cfg.backoff.Max = backoff, 2*backoff
}

// SetC2DRetry sets the delay before an abandoned cloud-to-device message is
// handed over again (times its delivery count).
func SetC2DRetry(cfg *Config, d time.Duration) { cfg.c2dRetry = d }

// DisableTwinResync stops the twin GET on every new connection, so that
// only a desired version gap can trigger one.
func DisableTwinResync(cfg *Config) { cfg.noResync = true }
