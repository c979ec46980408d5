package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/model"
	"github.com/ferry-iot/ferry/internal/store/sqlite"
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
		PresenceFeed: h.presence,
		Sessions:     consoleSessions{h.db},
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

// consoleSessions keeps the console's sign-in sessions in the hub's
// database, so a restart signs nobody out.
type consoleSessions struct{ db *sqlite.DB }

// Interface guards.
var (
	_ console.SessionStore = consoleSessions{}
	_ console.PresenceFeed = (*presence)(nil)
)

func (s consoleSessions) CreateSession(ctx context.Context, cs console.StoredSession, max int) error {
	return s.db.CreateConsoleSession(ctx, sqlite.ConsoleSession(cs), max)
}

func (s consoleSessions) Session(ctx context.Context, id []byte) (console.StoredSession, bool, error) {
	cs, ok, err := s.db.ConsoleSession(ctx, id)
	return console.StoredSession(cs), ok, err
}

func (s consoleSessions) TouchSession(ctx context.Context, id []byte, at time.Time) error {
	return s.db.TouchConsoleSession(ctx, id, at)
}

func (s consoleSessions) DeleteSession(ctx context.Context, id []byte) error {
	return s.db.DeleteConsoleSession(ctx, id)
}

func (s consoleSessions) PurgeSessions(ctx context.Context, now, idleSince time.Time, limit int) (int64, error) {
	return s.db.PurgeConsoleSessions(ctx, now, idleSince, limit)
}
