package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

// Twins is the service side of device twins.
type Twins interface {
	Get(ctx context.Context, deviceID, moduleID string) (*twin.Twin, error)
	PatchDesired(ctx context.Context, deviceID, moduleID string, patch []byte, ifMatch string) (*twin.Twin, twin.DesiredChange, error)
	Replace(ctx context.Context, deviceID, moduleID string, doc []byte, ifMatch string) (*twin.Twin, twin.DesiredChange, error)
	History(ctx context.Context, deviceID, moduleID string, from, to time.Time, limit int) ([]twin.Change, error)
	AsOf(ctx context.Context, deviceID, moduleID string, at time.Time) (*twin.Twin, error)
}

// moduleExists refuses module twin requests for modules that are not
// registered (the twin store would otherwise create a twin for them).
func (h *Handler) moduleExists(r *http.Request) error {
	mid := r.PathValue("mid")
	if mid == "" {
		return nil
	}
	ms, err := h.modules()
	if err != nil {
		return err
	}
	_, err = ms.GetModule(r.Context(), r.PathValue("id"), mid)
	return err
}

// getTwin reads a twin; ?asOf=RFC3339 (beyond Azure) reads it as it was then.
func (h *Handler) getTwin(w http.ResponseWriter, r *http.Request) error {
	if err := h.moduleExists(r); err != nil {
		return err
	}
	var (
		t   *twin.Twin
		err error
	)
	if s := r.URL.Query().Get("asOf"); s != "" {
		at, perr := time.Parse(time.RFC3339Nano, s)
		if perr != nil {
			return fault.Invalidf("asOf must be an RFC 3339 time such as 2026-11-23T05:00:00Z")
		}
		t, err = h.cfg.Twins.AsOf(r.Context(), r.PathValue("id"), r.PathValue("mid"), at)
	} else {
		t, err = h.cfg.Twins.Get(r.Context(), r.PathValue("id"), r.PathValue("mid"))
	}
	if err != nil {
		return err
	}
	return h.writeTwin(w, r, t)
}

// patchTwin applies PATCH (merge) or PUT (replace) to tags and desired
// properties and pushes the desired change to the device.
func (h *Handler) patchTwin(w http.ResponseWriter, r *http.Request) error {
	if err := h.moduleExists(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return fault.TooLargef("twin document exceeds %d bytes", maxBodyBytes)
	}
	dev, mod := r.PathValue("id"), r.PathValue("mid")
	ctx := twin.WithSource(r.Context(), "service")
	var (
		t  *twin.Twin
		ch twin.DesiredChange
	)
	if r.Method == http.MethodPut {
		t, ch, err = h.cfg.Twins.Replace(ctx, dev, mod, body, ifMatch(r))
	} else {
		t, ch, err = h.cfg.Twins.PatchDesired(ctx, dev, mod, body, ifMatch(r))
	}
	if err != nil {
		return err
	}
	if ch.Changed() && h.cfg.OnDesired != nil {
		clientID := dev
		if mod != "" {
			clientID += "/" + mod
		}
		h.cfg.OnDesired(clientID, ch)
	}
	return h.writeTwin(w, r, t)
}

// writeTwin renders a twin with its device's registry facts and live state.
func (h *Handler) writeTwin(w http.ResponseWriter, r *http.Request, t *twin.Twin) error {
	d, err := h.cfg.Registry.Get(r.Context(), t.DeviceID)
	if err != nil {
		return err
	}
	h.overlay(d)
	facts := twin.DeviceFacts{
		DeviceEtag: d.ETag, Status: string(d.Status), StatusUpdateTime: d.StatusUpdatedTime,
		ConnectionState: d.ConnectionState, LastActivityTime: d.LastActivityTime,
		CloudToDeviceMessageCount: d.CloudToDeviceMessageCount, AuthenticationType: string(d.Authentication.Type),
		PrimaryThumbprint: d.Authentication.X509Thumbprint.PrimaryThumbprint, SecondaryThumbprint: d.Authentication.X509Thumbprint.SecondaryThumbprint,
		ModelID: d.ModelID,
	}
	b, err := twin.Render(t, facts)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("ETag", `"`+t.ETag+`"`)
	_, err = w.Write(b)
	return err
}

// TwinChange is one entry of a twin's history.
type TwinChange struct {
	Side        string          `json:"side"`
	Version     int64           `json:"version"`
	TwinVersion int64           `json:"twinVersion"`
	Time        time.Time       `json:"time"`
	Source      string          `json:"source"`
	Patch       json.RawMessage `json:"patch"`
}

// HistoryStartHeader is the history response header naming the time before
// which the twin's changes were trimmed: the history lists every change
// from then on, and ?asOf= reads from then on. It is absent when nothing
// was trimmed.
const HistoryStartHeader = "Ferry-History-Start"

// historyStarter is a Twins that can trim history (twin.Service).
type historyStarter interface {
	HistoryStart(ctx context.Context, deviceID, moduleID string) (time.Time, error)
}

func (h *Handler) twinHistory(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var from, to time.Time
	var err error
	if s := q.Get("from"); s != "" {
		if from, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fault.Invalidf("from must be an RFC 3339 time")
		}
	}
	if s := q.Get("to"); s != "" {
		if to, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fault.Invalidf("to must be an RFC 3339 time")
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	changes, err := h.cfg.Twins.History(r.Context(), r.PathValue("id"), r.PathValue("mid"), from, to, limit)
	if err != nil {
		return err
	}
	// Older changes may have been trimmed (ferry serve
	// --twin-history-max-changes, --twin-history-max-age): a header says
	// since when the history is whole, so the array keeps its shape.
	if hs, ok := h.cfg.Twins.(historyStarter); ok {
		start, err := hs.HistoryStart(r.Context(), r.PathValue("id"), r.PathValue("mid"))
		if err != nil {
			return err
		}
		if !start.IsZero() {
			w.Header().Set(HistoryStartHeader, start.UTC().Format(time.RFC3339Nano))
		}
	}
	out := make([]TwinChange, 0, len(changes))
	for _, c := range changes {
		out = append(out, TwinChange{Side: string(c.Side), Version: c.Version, TwinVersion: c.TwinVersion, Time: c.Time, Source: c.Source, Patch: c.Patch})
	}
	return writeJSON(w, http.StatusOK, out)
}
