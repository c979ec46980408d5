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
