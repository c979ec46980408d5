// Package broker embeds the mochi-mqtt server and turns it into the device
// edge of the hub: it authenticates devices with SAS tokens exactly as Azure
// IoT Hub does, confines each device to its own topics, keeps persistent
// sessions across restarts, and hands telemetry to the durable stream writer.
//
// # Durable acknowledgement
//
// A QoS 1 telemetry PUBLISH is acknowledged only after the stream writer has
// made it durable. mochi writes PUBACKs synchronously on the client's read
// goroutine, which would serialise every connection behind the fsync, so the
// OnPublish hook takes the message over (it returns packets.ErrRejectPacket)
// and the broker writes the PUBACKs itself once the writer reports the batch
// durable: all PUBACKs of one client in one batch go out in one socket write,
// in the order the client published them.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/session"
	"github.com/ferry-iot/ferry/internal/stream"
)

// Credentials is what the broker needs from the device registry to
// authenticate a CONNECT. registry.Service satisfies it.
type Credentials interface {
	Keys(ctx context.Context, id string) (primary, secondary []byte, status registry.Status, err error)
	// ModuleKeys returns a module's keys and its device's status.
	ModuleKeys(ctx context.Context, deviceID, moduleID string) (primary, secondary []byte, status registry.Status, err error)
	Policy(ctx context.Context, name string) (*registry.Policy, error)
}

// Appender is the durable stream writer. stream.Writer satisfies it.
type Appender interface {
	Append(m *stream.Message, a stream.Acker, token uint64) error
}

// MethodResponses takes a device's answer to a direct method call.
// method.Service satisfies it.
type MethodResponses interface {
	HandleResponse(clientID, rid string, status int, payload []byte, contentType string) bool
}

// C2DEvents is told what the cloud-to-device queue needs to know: a device
// can take messages, acknowledged one, or went away. c2d.Service satisfies it.
type C2DEvents interface {
	Ready(deviceID string)
	Acked(deviceID string, packetID uint16)
	Gone(deviceID string)
}

// Config configures a Broker. The zero value of every limit means Azure IoT
// Hub's default.
type Config struct {
	// TCP is the plain MQTT listen address (e.g. "127.0.0.1:1883"); "" disables it.
	TCP string
	// TLS is the MQTT over TLS listen address (e.g. ":8883"); "" disables it.
	TLS string
	// TLSConfig is used by the TLS listener (and must be set when TLS is).
	TLSConfig *tls.Config

	Credentials Credentials     // device keys and access policies
	Appender    Appender        // durable telemetry writer
	Sessions    session.Store   // persistent subscriptions; nil keeps them in memory only
	Methods     MethodResponses // takes devices' direct-method answers; nil drops them
	C2D         C2DEvents       // cloud-to-device queue; nil when there is none
	Twins       Twins           // device twins; nil answers twin requests with 503
	DPS         Provisioner     // DPS registrations ($dps/... topics); nil refuses them
	// OnPresence is told when a device (or module, "dev/mod") connects or
	// disconnects. It must not block: the hub batches these into the registry.
	OnPresence func(clientID string, connected bool, at time.Time)
	// OnMethodsSubscribed is told when a client becomes able to take direct
	// method calls (queued commands wait for that). It must not block.
	OnMethodsSubscribed func(clientID string)
	// OnModelID is told, after a device's connection is accepted, the IoT
	// Plug and Play model id it announced in its username ("model-id",
	// PROTOCOL.md §1.2). It must not block.
	OnModelID func(deviceID, moduleID, modelID string)
	Metrics   *Metrics     // optional; nil disables metrics
	Logger    *slog.Logger // nil discards logs

	// MaxMessageBytes bounds a telemetry body (default 262144, Azure's 256 KB).
	MaxMessageBytes int
	// MaxPropertyBagBytes bounds a telemetry topic's property bag (default 8192).
	MaxPropertyBagBytes int
	// MaxProperties bounds the number of properties in a bag (default 64).
	MaxProperties int
	// MaxInflight bounds the QoS 1 messages of one connection that are waiting
	// for durability; a client that publishes more waits (default 1024).
	MaxInflight int
	// MaxTokenLifetime refuses SAS tokens that expire further in the future
	// than this (default 0: no bound).
	MaxTokenLifetime time.Duration
	// MaxSubscriptions bounds the distinct topic filters one client id may
	// hold (default 50). A persistent session stores each filter, so without
	// a bound one client could grow the hub's state at will; an Azure device
	// needs a handful (cloud-to-device, twin responses and desired
	// properties, methods). A SUBSCRIBE over it is refused filter by filter
	// with 0x80 (MQTT 3.1.1) or 0x97 Quota exceeded (MQTT 5).
	MaxSubscriptions int
	// MaxSessionExpiry bounds how long a persistent session (clean session
	// false, or MQTT 5 with a session expiry interval) outlives its
	// connection before its subscriptions are deleted (default 7 days): a
	// client id that never comes back must not keep rows forever. MQTT 5
	// clients get the interval they ask for up to this; MQTT 3.1.1 clients
	// get this.
	MaxSessionExpiry time.Duration
	// ReadBufferSize and WriteBufferSize are mochi's per-connection buffers
	// (default 1024 each; small because most devices are idle most of the time).
	ReadBufferSize, WriteBufferSize int
	// WritesPending bounds mochi's per-connection outbound queue (default 64).
	WritesPending int

	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 256 * 1024
	}
	if c.MaxPropertyBagBytes <= 0 {
		c.MaxPropertyBagBytes = 8 * 1024
	}
	if c.MaxProperties <= 0 {
		c.MaxProperties = 64
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 1024
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 50
	}
	if c.MaxSessionExpiry <= 0 {
		c.MaxSessionExpiry = 7 * 24 * time.Hour
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 1024
	}
	if c.WriteBufferSize <= 0 {
		c.WriteBufferSize = 1024
	}
	if c.WritesPending <= 0 {
		c.WritesPending = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Broker is the hub's MQTT edge.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	server *mqtt.Server
	ws     *wsListener
	nets   []*netListener
	hook   *hook

	quotaReason string // SUBACK reason string of a filter over MaxSubscriptions

	mu      sync.RWMutex
	conns   map[*mqtt.Client]*conn // guarded by mu: authenticated, live connections
	byID    map[string]*conn       // guarded by mu: the current connection of each client id
	devices map[*conn]struct{}     // guarded by mu: device connections on the lean loop
	connWG  sync.WaitGroup         // device read loops

	ackMu sync.Mutex
	dirty []*conn // guarded by ackMu: connections with PUBACKs waiting for the next flush

	sessMu    sync.Mutex
	persisted map[string][]session.Subscription // guarded by sessMu: stored subscriptions by client id
	// Guarded by sessMu (see sessexp.go): the timers of disconnected
	// devices' sessions, and the recorded session ends read at startup.
	ending       map[string]*time.Timer
	restoredEnds map[string]time.Time

	jobs    chan job      // work for the worker goroutines (see offStack)
	stopped chan struct{} // closed by Close
	workers sync.WaitGroup

	dps   *dpsState // DPS registration connections (dps.go)
	sched *schedule // credential deadlines of connections (expiry.go)

	closeOnce sync.Once
}

// New builds a broker and binds its listeners, so that a port in use is an
// error here and not later. It starts no goroutines: call Start.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if cfg.Credentials == nil || cfg.Appender == nil {
		return nil, errors.New("broker: Credentials and Appender are required")
	}
	b := &Broker{
		cfg:         cfg,
		log:         cfg.Logger,
		quotaReason: newQuotaReason(cfg.MaxSubscriptions),
		conns:       make(map[*mqtt.Client]*conn),
		byID:        make(map[string]*conn),
		jobs:        make(chan job, 256),
		persisted:   make(map[string][]session.Subscription),
		ending:      make(map[string]*time.Timer),
		devices:     make(map[*conn]struct{}),
		stopped:     make(chan struct{}),
		dps:         newDPSState(),
	}
	b.sched = newSchedule(cfg.Now, b.credentialEnded)
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1                                            // Azure grants QoS 1 for QoS 2 subscriptions
	caps.MaximumClientWritesPending = int32(cfg.WritesPending)     // the outbound channel is allocated per connection
	caps.MaximumPacketSize = uint32(cfg.MaxMessageBytes + 64*1024) // generous bound for topic and properties; exact checks happen per message
	caps.ReceiveMaximum = uint16(min(cfg.MaxInflight, 65535))
	caps.MaximumInflight = 1024
	caps.RetainAvailable = 1
	caps.MaximumSessionExpiryInterval = b.maxSessionExpirySeconds() // policy clients; devices' sessions are timed in sessexp.go
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	b.server = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetReadBufferSize:  cfg.ReadBufferSize,
		ClientNetWriteBufferSize: cfg.WriteBufferSize,
		Logger:                   slog.New(warnAndAbove{cfg.Logger.Handler()}).With("component", "mqtt"),
		SysTopicResendInterval:   0,
		InlineClient:             true, // the hub publishes to devices (C2D, methods, twin) through it
	})
	b.hook = &hook{b: b}
	if err := b.server.AddHook(b.hook, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	if cfg.TLS != "" && cfg.TLSConfig == nil {
		return nil, errors.New("broker: TLS listener needs a TLSConfig")
	}
	for _, l := range []struct {
		id, addr string
		tls      *tls.Config
	}{{"tcp", cfg.TCP, nil}, {"tls", cfg.TLS, cfg.TLSConfig}} {
		if l.addr == "" {
			continue
		}
		ln, err := listen(l.id, l.addr, l.tls, b.serveConn)
		if err != nil {
			b.closeListeners()
			return nil, fmt.Errorf("broker: listen %s %s: %w", l.id, l.addr, err)
		}
		b.nets = append(b.nets, ln)
		if err := b.server.AddListener(ln); err != nil {
			b.closeListeners()
			return nil, fmt.Errorf("broker: listener %s: %w", l.id, err)
		}
	}
	b.ws = newWSListener("ws", b.serveConn)
	if err := b.server.AddListener(b.ws); err != nil {
		return nil, fmt.Errorf("broker: websocket listener: %w", err)
	}
	return b, nil
}

// Start loads persisted sessions and starts serving. It returns at once.
func (b *Broker) Start() error {
	for range max(4, 2*runtime.GOMAXPROCS(0)) {
		b.workers.Add(1)
		go b.worker()
	}
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		b.sched.run(b.stopped)
	}()
	if err := b.restoreSessionEnds(); err != nil {
		return fmt.Errorf("broker: restore session expiry: %w", err)
	}
	if err := b.server.Serve(); err != nil { // loads the stored sessions (StoredClients)
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.timeDeviceSessions()
	return nil
}

// Addr returns the bound address of a listener ("tcp" or "tls"), or nil.
func (b *Broker) Addr(id string) net.Addr {
	for _, l := range b.nets {
		if l.id == id {
			return l.ln.Addr()
		}
	}
	return nil
}

// WebSocketHandler serves MQTT over WebSockets; the hub mounts it on its HTTP
// server at /$iothub/websocket and /mqtt.
func (b *Broker) WebSocketHandler() http.Handler { return b.ws }

func (b *Broker) closeListeners() {
	for _, l := range b.nets {
		_ = l.ln.Close()
	}
}

// Close disconnects every client and closes the listeners. Call it after the
// stream writer has been closed, so that every message the writer accepted has
// had its PUBACK written first.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		_ = b.server.Close() // closes the listeners and mochi's clients
		b.mu.RLock()
		for c := range b.devices {
			_ = c.nc.Close()
		}
		b.mu.RUnlock()
		b.dps.close()
		b.connWG.Wait()
		b.sessMu.Lock()
		for id, t := range b.ending {
			t.Stop() // the stored end is read again at the next start
			delete(b.ending, id)
		}
		b.sessMu.Unlock()
		close(b.stopped)
		b.workers.Wait()
	})
	return nil
}

// Connected reports whether a device (or module, "dev/mod") is connected now.
func (b *Broker) Connected(clientID string) bool {
	b.mu.RLock()
	_, ok := b.byID[clientID]
	b.mu.RUnlock()
	return ok
}

// Presence returns connection facts about one client id.
func (b *Broker) Presence(clientID string) (connected bool, since, lastActivity time.Time) {
	b.mu.RLock()
	c, ok := b.byID[clientID]
	b.mu.RUnlock()
	if !ok {
		return false, time.Time{}, time.Time{}
	}
	return true, c.since, c.lastActivity()
}

// ConnectedCount returns the number of authenticated connections.
func (b *Broker) ConnectedCount() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.conns) + len(b.devices)
}

// DisconnectDevice closes the connections of a device and of its modules,
// e.g. after it was disabled or deleted.
func (b *Broker) DisconnectDevice(deviceID string, reason packets.Code) int {
	b.mu.RLock()
	var victims []*conn
	for c := range b.devices {
		if c.deviceID == deviceID {
			victims = append(victims, c)
		}
	}
	b.mu.RUnlock()
	for _, c := range victims {
		c.closeWith(reason)
	}
	return len(victims)
}

// ErrNotDelivered means no connected client is subscribed to the topic.
var ErrNotDelivered = errors.New("broker: no connected subscriber")

// Deliver sends a message from the hub to a device (clientID is the device
// id, or deviceId/moduleId) when it is connected and subscribed to topic.
func (b *Broker) Deliver(clientID, topic string, payload []byte, qos byte) error {
	_, err := b.send(clientID, topic, payload, qos)
	return err
}

// send delivers and returns the packet id of a QoS 1 message.
func (b *Broker) send(clientID, topic string, payload []byte, qos byte) (uint16, error) {
	b.mu.RLock()
	c := b.byID[clientID]
	b.mu.RUnlock()
	if c == nil || c.nc == nil {
		return 0, ErrNotDelivered
	}
	granted, ok := c.subscriptionFor(topic)
	if !ok {
		return 0, ErrNotDelivered
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(qos, granted)},
		TopicName:   topic,
		Payload:     payload,
	}
	if pk.FixedHeader.Qos > 0 {
		pk.PacketID = c.nextPacketID()
	}
	if err := c.writePacket(pk); err != nil {
		return 0, fmt.Errorf("broker: deliver to %s: %w", clientID, err)
	}
	return pk.PacketID, nil
}

// C2DReady reports whether a device is connected and subscribed to its
// device-bound topic.
func (b *Broker) C2DReady(deviceID string) bool {
	b.mu.RLock()
	c := b.byID[deviceID]
	b.mu.RUnlock()
	if c == nil || c.nc == nil {
		return false
	}
	_, ok := c.subscriptionFor(c2dProbe(deviceID))
	return ok
}

// SendC2D delivers a cloud-to-device message at QoS 1.
func (b *Broker) SendC2D(deviceID, topic string, payload []byte) (uint16, error) {
	return b.send(deviceID, topic, payload, 1)
}

func c2dProbe(deviceID string) string { return "devices/" + deviceID + "/messages/devicebound/x" }

// methodsProbe is a topic a subscription to direct methods matches.
const methodsProbe = "$iothub/methods/POST/m/?$rid=1"

// MethodsReady reports whether a device is connected and subscribed to
// direct methods.
func (b *Broker) MethodsReady(clientID string) bool {
	b.mu.RLock()
	c := b.byID[clientID]
	b.mu.RUnlock()
	if c == nil || c.nc == nil {
		return false
	}
	_, ok := c.subscriptionFor(methodsProbe)
	return ok
}

// PublishToDevice sends a QoS 0 message to a connected device that is
// subscribed to topic (method requests are QoS 0, as on Azure).
func (b *Broker) PublishToDevice(clientID, topic string, payload []byte) error {
	return b.Deliver(clientID, topic, payload, 0)
}

// warnAndAbove passes on mochi's warnings and errors only: its start-up and
// per-client information lines repeat what the hub logs itself.
type warnAndAbove struct{ slog.Handler }

func (w warnAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}
func (w warnAndAbove) WithAttrs(a []slog.Attr) slog.Handler {
	return warnAndAbove{w.Handler.WithAttrs(a)}
}
func (w warnAndAbove) WithGroup(g string) slog.Handler { return warnAndAbove{w.Handler.WithGroup(g)} }
