package hub

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/model"
)

// mountConsole serves the web console under /console/ and redirects
// browsers that open / there; every other path stays the REST API's
// (/devices and /twins are Azure's service paths, so the console does not
// take them).
//
// The model-driven device view reads the DTDL of the hub's model
// repository (see model.go).
func (h *Hub) mountConsole(mux *http.ServeMux, apiHandler http.Handler) error {
	var models console.Models
	if h.pnp != nil {
		models = consoleModels{h.pnp.repo}
	}
	c, err := console.New(console.Config{
		API:          apiHandler,
		Policies:     h.registry,
		Devices:      h.registry,
		Query:        h.db,
		Presence:     h.broker,
		Telemetry:    h.streams,
		Provisioning: h.provision,
		Info:         h.info,
		Ingested:     h.storedMessages,
		Errors:       h.errlog,
		Logger:       h.log.With("component", "console"),
		Now:          h.cfg.Now,
		Models:       models,
	})
	if err != nil {
		return err
	}
	h.closeConsole = c.Close
	mux.Handle(console.Prefix, c)
	mux.Handle("/", console.RedirectBrowsers(apiHandler))
	return nil
}

// storedMessages is the stream writer's count of stored messages, read
// from the metrics registry (the console asks at most once a second).
func (h *Hub) storedMessages() uint64 {
	mfs, err := h.promReg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "ferry_stream_messages_stored_total" && len(mf.GetMetric()) > 0 {
			return uint64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return 0
}

// consoleModels hands the console the DTDL of the repository's interfaces.
type consoleModels struct{ repo *model.Repository }

// Model returns the interface id's DTDL as it was added.
func (m consoleModels) Model(_ context.Context, id string) (json.RawMessage, error) {
	d, err := m.repo.Get(id)
	if err != nil {
		return nil, err
	}
	return d.DTDL, nil
}
