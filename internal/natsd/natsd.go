// Package natsd runs an embedded NATS server with JetStream inside the hub
// process, or dials an external one.
//
// The embedded server keeps its JetStream file store in [Config.Dir]. With
// [Config.Sync] set, every JetStream write is fsynced before the server
// acknowledges it (nats-server's SyncAlways), so a publish acknowledgement
// means the data survives a power cut; without it, writes sit in the page
// cache and are synced every [Config.SyncInterval], which survives a crash of
// the process but not of the machine.
//
// By default the server opens no TCP port: the hub reaches it through
// in-process pipes ([Server.Connect]). Set [Config.Listen] to let other
// processes (the nats CLI, a second tool) connect as well.
package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultMaxPayload is the largest NATS message the embedded server accepts
// unless [Config.MaxPayload] says otherwise.
const DefaultMaxPayload = 8 << 20

// readyTimeout bounds how long Start waits for the server to accept
// connections (JetStream recovers its streams before that).
const (
	readyTimeout = 10 * time.Second
	readySlice   = 50 * time.Millisecond
)

// ErrStopped is returned by [Server.Connect] after [Server.Shutdown].
var ErrStopped = errors.New("natsd: server stopped")

// Config configures the embedded server. The zero value is not usable: Dir
// is required.
type Config struct {
	// Dir is the JetStream store directory, e.g. ./ferry-data/nats.
	Dir string
	// Sync makes JetStream fsync every write before acknowledging it
	// (SyncAlways). When false, writes are synced every SyncInterval.
	Sync bool
	// SyncInterval is how often unsynced writes are flushed to disk when
	// Sync is false. Zero means nats-server's default (2 minutes).
	SyncInterval time.Duration
	// Listen is the host:port of a TCP listener for NATS clients, e.g.
	// "127.0.0.1:4222"; port 0 picks a free port. Empty means no listener:
	// only in-process connections.
	Listen string
	// MaxPayload is the largest message a client may publish. Zero means
	// DefaultMaxPayload (8 MiB).
	MaxPayload int32
	// MaxStore caps JetStream's disk use in bytes. Zero means nats-server's
	// default: 75% of the free space of Dir's disk at start.
	MaxStore int64
	// Logger receives the server's notices, warnings and errors. Nil
	// discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a running embedded NATS server with JetStream.
type Server struct {
	ns   *server.Server
	once sync.Once
	done chan struct{} // closed when the server has shut down
}

// Start starts an embedded server and waits until it accepts connections and
// JetStream has recovered its store (at most 10 seconds or until ctx ends).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, fault.Invalidf("natsd: store directory is required")
	}
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsd: new server: %w", err)
	}
	lg := &logger{log: cfg.Logger}
	ns.SetLoggerV2(lg, false, false, false)
	ns.Start()

	if err := waitReady(ctx, ns, lg); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "natsd: start", Err: err}
	}
	return &Server{ns: ns, done: make(chan struct{})}, nil
}

// waitReady waits until ns accepts connections with JetStream enabled. It
// checks in short slices so that a fatal start error (port in use, bad
// store) fails at once instead of after the whole timeout.
func waitReady(ctx context.Context, ns *server.Server, lg *logger) error {
	end := time.Now().Add(readyTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end = dl
	}
	for {
		if ns.ReadyForConnections(readySlice) {
			if !ns.JetStreamEnabled() {
				return errors.New("jetstream not enabled")
			}
			return nil
		}
		if err := lg.fatal(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(end) {
			return errors.New("not ready for connections in time")
		}
	}
}

func serverOptions(cfg Config) (*server.Options, error) {
	opts := &server.Options{
		ServerName:        "ferry",
		JetStream:         true,
		StoreDir:          cfg.Dir,
		SyncAlways:        cfg.Sync,
		SyncInterval:      cfg.SyncInterval,
		MaxPayload:        cfg.MaxPayload,
		NoSigs:            true,
		JetStreamMaxStore: cfg.MaxStore,
		DontListen:        cfg.Listen == "",
	}
	if cfg.Listen == "" {
		return opts, nil
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fault.Invalidf("natsd: listen address %q: %v", cfg.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fault.Invalidf("natsd: listen port %q is not a port number", port)
	}
	if p == 0 {
		p = server.RANDOM_PORT // nats treats 0 as "default 4222"
	}
	opts.Host, opts.Port = host, p
	return opts, nil
}

// Connect opens an in-process client connection to the server. It works
// with or without a TCP listener.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if !s.ns.Running() {
		return nil, ErrStopped
	}
	all := append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("ferry")}, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("natsd: connect in-process: %w", err)
	}
	return nc, nil
}

// ClientURL returns the nats:// URL of the TCP listener, or "" when the
// server does not listen.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped or ctx ends. It
// is safe to call more than once; later calls wait for the first one.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		// nats-server's Shutdown takes no context; run it aside so a
		// caller's deadline is honoured. It always finishes on its own.
		go func() {
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
			close(s.done)
		}()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsd: shutdown: %w", ctx.Err())
	}
}

// Dial connects to an external NATS server or cluster at url (for example
// "nats://nats1:4222,nats://nats2:4222"). It reconnects forever, so a
// restarting cluster does not take the hub down.
func Dial(url string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.Name("ferry"), nats.MaxReconnects(-1)}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "natsd: dial " + url, Err: err}
	}
	return nc, nil
}
