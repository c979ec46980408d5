package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-iot/ferry/internal/api"
)

var notAuthorized = packets.ErrNotAuthorized

func (h *Hub) listenHTTP() error {
	ln, err := net.Listen("tcp", h.cfg.HTTPAddr)
	if err != nil {
		return errors.Join(errors.New("hub: listen http "+h.cfg.HTTPAddr), err)
	}
	h.httpLn = ln
	mux := http.NewServeMux()
	apiHandler := api.NewHandler(api.Config{
		Registry:     apiRegistry{h.registry, h},
		Presence:     h.broker,
		Streams:      h.streams,
		Methods:      checkedMethods{h.methods, h.pnp},
		C2D:          h.c2d,
		Twins:        h.twins,
		Query:        queries{h.db},
		Commands:     h.commands,
		Provisioning: h.provision,
		Routes:       h.routing.svc,
		Schemas:      h.routing.schemas,
		Models:       h.pnp.repo,
		PnP:          h.pnp,
		OnDesired:    h.pushDesired,
		Info:         h.info,
		Logger:       h.log.With("component", "api"),
		Now:          h.cfg.Now,
	})
	if err := h.mountConsole(mux, apiHandler); err != nil { // "/" (API and browser redirect) and /console/
		return fmt.Errorf("hub: console: %w", err)
	}
	mux.Handle("/$iothub/websocket", h.broker.WebSocketHandler())
	mux.Handle("/mqtt", h.broker.WebSocketHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.promReg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", h.readyz)
	base, cancel := context.WithCancel(context.Background())
	h.cancelHTTP = cancel
	h.http = &http.Server{
		Handler:           mux,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	if !h.cfg.HTTPPlain {
		h.http.TLSConfig = h.tlsConfig()
	}
	return nil
}

func (h *Hub) serveHTTP() {
	var err error
	if h.cfg.HTTPPlain {
		err = h.http.Serve(h.httpLn)
	} else {
		err = h.http.ServeTLS(h.httpLn, "", "")
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		h.log.Error("http server stopped", "error", err)
	}
}

// readyz answers 200 once the hub serves and its stores answer.
func (h *Hub) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-h.ready:
	default:
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := h.registry.Count(ctx); err != nil {
		http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
		return
	}
	if !h.nc.IsConnected() {
		http.Error(w, "nats unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (h *Hub) info() api.HubInfo {
	var info api.HubInfo
	info.HostName = h.ServiceHost()
	info.DeviceHostName = h.DeviceHost()
	info.Version = h.cfg.Version
	info.StartedAt = h.started.UTC()
	info.UptimeSeconds = h.cfg.Now().Sub(h.started).Seconds()
	if a := h.broker.Addr("tcp"); a != nil {
		info.MQTT.TCP = a.String()
	}
	if a := h.broker.Addr("tls"); a != nil {
		info.MQTT.TLS = a.String()
	}
	info.MQTT.WebSocket = "/$iothub/websocket"
	return info
}

// ServiceHost is the host name (with the port when not 443) that service
// connection strings carry: the REST API's address.
func (h *Hub) ServiceHost() string {
	return withPort(h.cfg.Hosts[0], h.httpLn.Addr(), 443)
}

// DeviceHost is the host name (with the port when not 8883) that device
// connection strings carry: the MQTT over TLS address.
func (h *Hub) DeviceHost() string {
	a := h.broker.Addr("tls")
	if a == nil {
		a = h.broker.Addr("tcp")
	}
	return withPort(h.cfg.Hosts[0], a, 8883)
}

// HTTPAddr returns the bound HTTP address.
func (h *Hub) HTTPAddr() net.Addr { return h.httpLn.Addr() }

// MQTTAddr returns the bound address of the "tcp" or "tls" MQTT listener, or nil.
func (h *Hub) MQTTAddr(id string) net.Addr { return h.broker.Addr(id) }

// OwnerConnectionString is the iothubowner policy's connection string.
func (h *Hub) OwnerConnectionString() string { return h.owner }

// CAFile is the path of the CA certificate that devices must trust.
func (h *Hub) CAFile() string { return h.pki.CAPath }

// FirstRun reports whether this start created the owner connection string file.
func (h *Hub) FirstRun() bool { return h.firstRun }

// Deliver sends a hub-originated message on a device topic
// ("devices/{id}/...") to that device, when it is connected and subscribed.
func (h *Hub) Deliver(topic string, payload []byte, qos byte) error {
	rest, ok := strings.CutPrefix(topic, "devices/")
	id, _, found := strings.Cut(rest, "/")
	if !ok || !found || id == "" {
		return fmt.Errorf("hub: deliver: %q is not a device topic", topic)
	}
	return h.broker.Deliver(id, topic, payload, qos)
}
