// Package hub is Ferry's composition root: it opens the stores, starts the
// embedded NATS JetStream, the MQTT broker and the HTTP server, wires the
// capabilities together and shuts them down in order. Only the CLI and the
// tests import it.
package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ferry-iot/ferry/internal/broker"
	"github.com/ferry-iot/ferry/internal/c2d"
	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/method"
	"github.com/ferry-iot/ferry/internal/natsd"
	"github.com/ferry-iot/ferry/internal/pki"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
	"github.com/ferry-iot/ferry/internal/stream"
	"github.com/ferry-iot/ferry/internal/twin"
)

// OwnerFile is the file in the data dir that holds the owner connection string.
const OwnerFile = "owner-connection-string"

// Hub is a running Ferry hub.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	db              *sqlite.DB
	registry        *registry.Service
	nats            *natsd.Server
	nc              *nats.Conn
	writer          *stream.Writer
	streams         *stream.Store
	broker          *broker.Broker
	methods         *method.Service
	commands        *method.Queue
	c2d             *c2d.Service
	twins           *twin.Service
	provision       *provision.Service
	presence        *presence
	routing         *routing // message routes; see route.go
	pnp             *pnp     // Plug and Play models; see model.go
	presenceRunning bool
	http            *http.Server
	httpLn          net.Listener
	pki             *pki.Result
	owner           string // owner connection string
	firstRun        bool
	promReg         *prometheus.Registry
	errlog          *console.ErrorLog // the latest error records, for the console's overview
	retention       *retention        // the background sweep of ended rows; see retention.go

	ready        chan struct{}
	cancelHTTP   context.CancelFunc // cancels every request's context at shutdown, ending long polls
	closeConsole func()             // stops the console's live readers; nil before the HTTP listener
	stopOnce     sync.Once
	stopErr      error
	unsubscribe  func()
}

// New opens the data dir and binds every listener; it returns an error if a
// port is in use. Serving starts with Start (or Run).
func New(ctx context.Context, cfg Config) (_ *Hub, err error) {
	cfg.setDefaults()
	h := &Hub{cfg: cfg, log: cfg.Logger, started: cfg.Now(), ready: make(chan struct{}), promReg: prometheus.NewRegistry()}
	h.errlog = console.NewErrorLog(50)
	h.log = slog.New(h.errlog.Handler(cfg.Logger.Handler()))
	defer func() {
		if err != nil {
			_ = h.Shutdown(context.Background())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("hub: data dir: %w", err)
	}
	if h.pki, err = pki.Ensure(filepath.Join(cfg.DataDir, "pki"), cfg.certHosts(), cfg.Now()); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if h.db, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "ferry.db")); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h.registry = registry.NewService(h.db, registry.Options{Logger: h.log.With("component", "registry"), Now: cfg.Now})
	// Twin acknowledgements promise what telemetry's do: fsynced before the
	// answer in fsync durability, in the page cache in process durability.
	h.db.SyncTwins(cfg.Durability == DurabilityFsync)
	h.twins = twin.NewService(eventingTwins{h.db, h}, twin.Options{Now: cfg.Now})
	if err := h.db.ResetConnectionStates(ctx, cfg.Now()); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h.presence = newPresence(h.db, h.log.With("component", "presence"))
	h.methods = method.New()
	if err := h.ensureOwner(ctx); err != nil {
		return nil, err
	}
	if err := h.startStreams(ctx); err != nil {
		return nil, err
	}
	if err := h.startRouting(ctx); err != nil {
		return nil, err
	}
	if err := h.startModels(ctx); err != nil {
		return nil, fmt.Errorf("hub: models: %w", err)
	}
	if err := h.startBroker(); err != nil {
		return nil, err
	}
	if err := h.startProvisioning(ctx); err != nil {
		return nil, err
	}
	if err := h.listenHTTP(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hub) startStreams(ctx context.Context) error {
	var err error
	h.nats, err = natsd.Start(ctx, natsd.Config{
		Dir:          filepath.Join(h.cfg.DataDir, "nats"),
		Sync:         h.cfg.Durability == DurabilityFsync,
		SyncInterval: h.cfg.SyncInterval,
		Listen:       h.cfg.NATSListen,
		Logger:       h.log.With("component", "nats"),
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if h.nc, err = h.nats.Connect(); err != nil {
		return fmt.Errorf("hub: nats: %w", err)
	}
	js, err := jetstream.New(h.nc)
	if err != nil {
		return fmt.Errorf("hub: jetstream: %w", err)
	}
	metrics := new(stream.Metrics)
	h.promReg.MustRegister(newStreamCollector(metrics))
	h.writer, err = stream.NewWriter(ctx, h.nc, stream.WriterConfig{
		Linger:     h.cfg.Linger,
		AfterBatch: func() { h.broker.FlushAcks() },
		Tap:        ingestTap{h}, // the router routes messages as they are stored; see route.go
		Settled:    h.settledBatch,
		Metrics:    metrics,
		Logger:     h.log.With("component", "stream"),
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if h.commands, err = method.NewQueue(ctx, js, h.methods, h.log.With("component", "commands"), h.cfg.Now); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if h.c2d, err = c2d.New(ctx, js, c2d.Config{Logger: h.log.With("component", "c2d"), Now: h.cfg.Now}); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if h.streams, err = stream.NewStore(ctx, js, stream.StoreConfig{Logger: h.log.With("component", "stream")}); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

func (h *Hub) startBroker() error {
	tlsCfg := h.tlsConfig()
	// X.509 devices: ask for a client certificate without verifying it in
	// the handshake; the broker checks it at CONNECT against the registry
	// and says why it refuses. (Not on the HTTPS port: browsers would prompt.)
	tlsCfg.ClientAuth = tls.RequestClientCert
	addr := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	m := broker.NewMetrics(h.promReg)
	var err error
	h.broker, err = broker.New(broker.Config{
		TCP:                 addr(h.cfg.MQTTAddr),
		TLS:                 addr(h.cfg.MQTTSAddr),
		TLSConfig:           tlsCfg,
		Credentials:         h.registry,
		Appender:            h.writer,
		Sessions:            h.db,
		Methods:             h.methods,
		C2D:                 h.c2d,
		Twins:               deviceTwins{h.twins},
		DPS:                 dpsProvisioner{h},
		OnPresence:          h.onPresence,
		OnMethodsSubscribed: h.commands.Ready,
		OnModelID:           h.pnp.onModelID,
		Metrics:             m,
		Logger:              h.log.With("component", "broker"),
		MaxMessageBytes:     h.cfg.MaxMessageBytes,
		MaxPropertyBagBytes: h.cfg.MaxPropertyBagBytes,
		MaxInflight:         h.cfg.MaxInflight,
		MaxTokenLifetime:    h.cfg.MaxTokenLifetime,
		MaxSubscriptions:    h.cfg.MaxSubscriptions,
		MaxSessionExpiry:    h.cfg.MaxSessionExpiry,
		Now:                 h.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.methods.SetTransport(h.broker)
	h.c2d.SetTransport(h.broker)
	m.Bind(h.promReg, h.broker)
	h.promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// A disabled or deleted device loses its connections at once, and so
	// does a certificate connection its registration no longer accepts.
	unsubDevices := h.registry.Subscribe(func(c registry.Change) {
		h.registryChange(c)
		if c.Kind == registry.ChangeDeleted || (c.Device != nil && c.Device.Status == registry.StatusDisabled) {
			if n := h.broker.DisconnectDevice(c.DeviceID, notAuthorized); n > 0 {
				h.log.Info("device disconnected", "device", c.DeviceID, "reason", c.Kind.String())
			}
		} else if c.Kind == registry.ChangeUpdated {
			h.broker.RecheckCertificates(c.DeviceID)
		}
	})
	// A deleted CA takes the connections its chains verified with it.
	unsubCAs := h.registry.SubscribeCAs(func(c registry.CAChange) {
		if c.Kind == registry.CADeleted {
			h.broker.DisconnectCA(c.Thumbprint)
		}
	})
	h.unsubscribe = func() { unsubDevices(); unsubCAs() }
	return nil
}

func (h *Hub) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{h.pki.Certificate},
	}
}

// ensureOwner creates the default access policies on first start and keeps
// the owner connection string in the data dir for the CLI.
func (h *Hub) ensureOwner(ctx context.Context) error {
	pols, err := h.registry.EnsureDefaultPolicies(ctx)
	if err != nil {
		return fmt.Errorf("hub: access policies: %w", err)
	}
	for _, p := range pols {
		if p.KeyName == "iothubowner" {
			h.owner = protocol.ConnectionString{HostName: "", SharedAccessKeyName: p.KeyName, SharedAccessKey: p.PrimaryKey}.String()
		}
	}
	if h.owner == "" {
		return errors.New("hub: the iothubowner access policy is missing")
	}
	_, err = os.Stat(filepath.Join(h.cfg.DataDir, OwnerFile))
	h.firstRun = errors.Is(err, os.ErrNotExist)
	return nil
}

// Start serves MQTT and HTTP. It returns at once.
func (h *Hub) Start() error {
	// The host names are known once the listeners are bound.
	pol, err := h.registry.Policy(context.Background(), "iothubowner")
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.owner = protocol.ConnectionString{HostName: h.ServiceHost(), SharedAccessKeyName: pol.KeyName, SharedAccessKey: pol.PrimaryKey}.String()
	if err := os.WriteFile(filepath.Join(h.cfg.DataDir, OwnerFile), []byte(h.owner+"\n"), 0o600); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if err := h.broker.Start(); err != nil {
		return err
	}
	if err := h.routing.start(); err != nil {
		return err
	}
	if err := h.pnp.start(); err != nil {
		return fmt.Errorf("hub: models: %w", err)
	}
	go h.presence.run()
	h.presenceRunning = true
	h.startRetention()
	go h.serveHTTP()
	close(h.ready)
	return nil
}

// Run starts the hub and blocks until ctx is cancelled, then shuts down.
func (h *Hub) Run(ctx context.Context) error {
	if err := h.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return h.Shutdown(sctx)
}

// Shutdown stops the hub in order: HTTP first, then the stream writer (every
// accepted message is stored and its PUBACK written), then MQTT connections,
// then the stores. It is idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.stopOnce.Do(func() {
		var errs []error
		if h.unsubscribe != nil {
			h.unsubscribe()
		}
		h.stopRetention() // before the stores it deletes from close
		if h.cancelHTTP != nil {
			h.cancelHTTP() // ends long polls, which Shutdown would otherwise wait out
		}
		if h.http != nil {
			errs = append(errs, h.http.Shutdown(ctx))
		} else if h.httpLn != nil {
			errs = append(errs, h.httpLn.Close())
		}
		if h.closeConsole != nil {
			h.closeConsole()
		}
		errs = append(errs, h.routing.close(ctx)) // before the writer and broker its deliveries use
		h.pnp.close()
		if h.writer != nil {
			errs = append(errs, h.writer.Close(ctx))
		}
		if h.broker != nil {
			errs = append(errs, h.broker.Close())
		}
		if h.presenceRunning {
			h.presence.close() // after the broker: its last disconnects are recorded
		}
		if h.twins != nil {
			errs = append(errs, h.twins.Close(ctx)) // answers the reported patches still batched
		}
		if h.streams != nil {
			h.streams.Close()
		}
		if h.nc != nil {
			h.nc.Close()
		}
		if h.nats != nil {
			errs = append(errs, h.nats.Shutdown(ctx))
		}
		if h.db != nil {
			errs = append(errs, h.db.Close())
		}
		h.stopErr = errors.Join(errs...)
	})
	return h.stopErr
}
