// Package api is Ferry's REST API: Azure IoT Hub's service shapes wherever
// Azure has the resource (devices at /devices/{id}, errors as Azure writes
// them, service SAS tokens in the Authorization header), so Azure's own
// service SDKs can manage Ferry, and Ferry's own resources (streams, consumer
// groups) under /api/v1 in the same style. The same handlers answer under
// /api/v1 too. Client is the Go client the CLI and the tests use.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-iot/ferry/internal/registry"
	"github.com/ferry-iot/ferry/internal/stream"
	"github.com/ferry-iot/ferry/internal/twin"
)

// Registry is what the API needs of the device registry.
type Registry interface {
	Create(ctx context.Context, d registry.Device) (*registry.Device, error)
	Get(ctx context.Context, id string) (*registry.Device, error)
	Update(ctx context.Context, d registry.Device, ifMatch string) (*registry.Device, error)
	Delete(ctx context.Context, id, ifMatch string) error
	List(ctx context.Context, after string, limit int) ([]registry.Device, error)
	Count(ctx context.Context) (int, error)
	Policy(ctx context.Context, name string) (*registry.Policy, error)
}

// Presence tells which devices are connected right now.
type Presence interface {
	Presence(clientID string) (connected bool, since, lastActivity time.Time)
	ConnectedCount() int
}

// Streams reads stored telemetry.
type Streams interface {
	Read(ctx context.Context, q stream.Query) ([]stream.Message, stream.Cursor, error)
	Streams(ctx context.Context) ([]stream.StreamInfo, error)
	Position(ctx context.Context, consumerGroup, stream string) (stream.Cursor, bool, error)
	Commit(ctx context.Context, consumerGroup, stream string, c stream.Cursor) error
	Last(ctx context.Context) (stream.Cursor, error)
}

// Config configures the API handler.
type Config struct {
	Registry Registry
	Presence Presence
	Streams  Streams
	Methods  Invoker  // direct methods; nil answers 503
	C2D      C2D      // cloud-to-device queue
	Twins    Twins    // device twins
	Query    Querier  // the query language over twins
	Commands Commands // queued method calls for offline devices
	// Provisioning serves /api/v1/provisioning; nil answers 503.
	Provisioning Provisioning
	// Routes and Schemas serve /api/v1/routes and /api/v1/schemas; nil
	// answers 503.
	Routes  Routes
	Schemas Schemas
	// Models and PnP serve /api/v1/models and /api/v1/devices/{id}/pnp;
	// nil answers 503. PnP also marks stream messages that do not fit
	// their device's model.
	Models Models
	PnP    PnP
	// OnDesired is called after a service change of desired properties,
	// to push the change to the device (client id "dev" or "dev/module").
	OnDesired func(clientID string, ch twin.DesiredChange)
	Info      func() HubInfo // the hub's facts for GET /api/v1/hub
	Logger    *slog.Logger
	Now       func() time.Time
	// MaxWait bounds the long-poll wait of stream reads (default 60s).
	MaxWait time.Duration
}

// Handler serves the REST API.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// NewHandler builds the API routes.
func NewHandler(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	for _, prefix := range []string{"", "/api/v1"} {
		h.route(prefix+"/devices", "GET", registry.RegistryRead, h.listDevices)
		h.route(prefix+"/devices/", "GET", registry.RegistryRead, h.listDevices)
		h.route(prefix+"/devices/query", "POST", registry.RegistryRead, h.runQuery)
		h.route(prefix+"/devices/{id}", "GET", registry.RegistryRead, h.getDevice)
		h.route(prefix+"/devices/{id}", "PUT", registry.RegistryWrite, h.putDevice)
		h.route(prefix+"/devices/{id}", "DELETE", registry.RegistryWrite, h.deleteDevice)
		h.routeModules(prefix)
		h.route(prefix+"/twins/{id}/methods", "POST", registry.ServiceConnect, h.invokeMethod)
		for _, tp := range []string{"/twins/{id}", "/twins/{id}/modules/{mid}"} {
			h.route(prefix+tp, "GET", registry.RegistryRead, h.getTwin)
			h.route(prefix+tp, "PATCH", registry.ServiceConnect, h.patchTwin)
			h.route(prefix+tp, "PUT", registry.ServiceConnect, h.patchTwin)
		}
		h.route(prefix+"/devices/{id}/messages/deviceBound", "POST", registry.ServiceConnect, h.sendC2D)
		h.route(prefix+"/devices/{id}/messages/deviceBound", "GET", registry.ServiceConnect, h.pendingC2D)
		h.route(prefix+"/devices/{id}/commands", "DELETE", registry.ServiceConnect, h.purgeC2D)
		h.route(prefix+"/twins/{id}/modules/{mid}/methods", "POST", registry.ServiceConnect, h.invokeMethod)
	}
	h.route("/api/v1/hub", "GET", "", h.hubInfo)
	h.route("/api/v1/devices/{id}/methods/{name}", "POST", registry.ServiceConnect, h.invokeRaw)
	h.route("/api/v1/devices/{id}/modules/{mid}/methods/{name}", "POST", registry.ServiceConnect, h.invokeRaw)
	h.route("/api/v1/commands/{cmd}", "GET", registry.ServiceConnect, h.getCommand)
	h.route("/api/v1/twins/{id}/history", "GET", registry.RegistryRead, h.twinHistory)
	h.route("/api/v1/twins/{id}/modules/{mid}/history", "GET", registry.RegistryRead, h.twinHistory)
	h.route("/api/v1/c2d/deadletter", "GET", registry.ServiceConnect, h.readDeadLetters)
	h.route("/api/v1/c2d/feedback", "GET", registry.ServiceConnect, h.readFeedback)
	h.route("/api/v1/streams", "GET", registry.ServiceConnect, h.listStreams)
	h.route("/api/v1/streams/{stream}/messages", "GET", registry.ServiceConnect, h.readStream)
	h.route("/api/v1/consumergroups/{cg}/streams/{stream}/messages", "GET", registry.ServiceConnect, h.readConsumerGroup)
	h.route("/api/v1/consumergroups/{cg}/streams/{stream}/position", "GET", registry.ServiceConnect, h.getPosition)
	h.route("/api/v1/consumergroups/{cg}/streams/{stream}/position", "PUT", registry.ServiceConnect, h.putPosition)
	h.routeCertificates()
	h.routeProvisioning()
	h.routeRoutes()
	h.routeModels()
	h.mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	h.mux.HandleFunc("GET /api/v1/openapi.json", serveOpenAPI)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// route registers an authenticated handler that needs the given right ("" =
// any valid policy).
func (h *Handler) route(path, method string, right registry.Right, fn func(http.ResponseWriter, *http.Request) error) {
	h.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		if err := h.authorize(r, right); err != nil {
			h.writeError(w, r, err)
			return
		}
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// writeJSON writes v with Azure's content type (the Node service SDK parses
// bodies only when the content type says JSON).
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
