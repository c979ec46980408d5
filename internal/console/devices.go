package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
	"github.com/ferry-iot/ferry/internal/registry"
)

// deviceRow is one line of the device list.
type deviceRow struct {
	ID           string
	Status       string
	Connected    bool
	LastActivity time.Time
	ModelID      string
	Tags         map[string]any
}

// twinItem is the part of a SELECT * query item the list shows.
type twinItem struct {
	DeviceID         string         `json:"deviceId"`
	Status           string         `json:"status"`
	ConnectionState  string         `json:"connectionState"`
	LastActivityTime string         `json:"lastActivityTime"`
	ModelID          string         `json:"modelId"`
	Tags             map[string]any `json:"tags"`
	Properties       struct {
		Desired  map[string]json.RawMessage `json:"desired"`
		Reported map[string]json.RawMessage `json:"reported"`
	} `json:"properties"`
}

// listParams are the device list's query-string parameters.
type listParams struct {
	Search string // device id prefix
	Where  string // a query-language condition
	State  string // "", "connected", "disconnected"
	After  string // continuation token
	Size   int
}

func parseListParams(r *http.Request) listParams {
	q := r.URL.Query()
	p := listParams{Search: strings.TrimSpace(q.Get("q")), Where: strings.TrimSpace(q.Get("where")),
		State: q.Get("state"), After: q.Get("after")}
	p.Size, _ = strconv.Atoi(q.Get("size"))
	if p.Size != 25 && p.Size != 100 {
		p.Size = 50
	}
	return p
}

// queryText builds the query-language text for p.
func (p listParams) queryText() string {
	var conds []string
	if p.Search != "" {
		conds = append(conds, "STARTS_WITH(deviceId, "+quote(p.Search)+")")
	}
	switch p.State {
	case "connected":
		conds = append(conds, "connectionState = 'Connected'")
	case "disconnected":
		conds = append(conds, "connectionState = 'Disconnected'")
	}
	if p.Where != "" {
		conds = append(conds, "("+p.Where+")")
	}
	text := "SELECT * FROM devices"
	if len(conds) > 0 {
		text += " WHERE " + strings.Join(conds, " AND ")
	}
	return text
}

// quote writes s as a query-language string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

// link returns the list URL for p with the continuation after.
func (p listParams) link(after string) string {
	v := make([]string, 0, 5)
	add := func(k, val string) {
		if val != "" {
			v = append(v, k+"="+urlQuery(val))
		}
	}
	add("q", p.Search)
	add("where", p.Where)
	add("state", p.State)
	if p.Size != 50 {
		add("size", strconv.Itoa(p.Size))
	}
	add("after", after)
	if len(v) == 0 {
		return Prefix + "devices"
	}
	return Prefix + "devices?" + strings.Join(v, "&")
}

func (c *Console) devicesPage(w http.ResponseWriter, r *http.Request) {
	if !sessionFrom(r.Context()).can(registry.RegistryRead) {
		c.forbidden(w, r, registry.RegistryRead)
		return
	}
	start := time.Now()
	p := parseListParams(r)
	rows, next, qerr := c.listDevices(r, p)
	total, err := c.cfg.Devices.Count(r.Context())
	if err != nil {
		c.cfg.Logger.Error("console: count devices", "error", err)
	}
	data := map[string]any{
		"P": p, "Rows": rows, "Total": total, "Query": p.queryText(), "Error": qerr,
		"Next": "", "First": "", "Connected": c.cfg.Presence.ConnectedCount(),
	}
	if next != "" {
		data["Next"] = p.link(next)
	}
	if p.After != "" {
		data["First"] = p.link("")
	}
	w.Header().Set("Server-Timing", "list;dur="+strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 1, 64))
	status := http.StatusOK
	if qerr != "" {
		status = http.StatusBadRequest
	}
	c.render(w, r, status, "devices", data)
}

// listDevices runs one page of the list's query. A query the language
// refuses comes back as a message for the page.
func (c *Console) listDevices(r *http.Request, p listParams) ([]deviceRow, string, string) {
	res, err := query.Run(r.Context(), c.cfg.Query, p.queryText(), query.Page{Limit: p.Size, After: p.After})
	if err != nil {
		if fault.Is(err, fault.Invalid) {
			return nil, "", fault.Public(err)
		}
		c.cfg.Logger.Error("console: list devices", "error", err)
		return nil, "", "The device list could not be read; see the hub's log."
	}
	rows := make([]deviceRow, 0, len(res.Items))
	for _, raw := range res.Items {
		var it twinItem
		if err := json.Unmarshal(raw, &it); err != nil {
			continue
		}
		row := deviceRow{ID: it.DeviceID, Status: it.Status, ModelID: it.ModelID, Tags: it.Tags,
			Connected: it.ConnectionState == registry.Connected}
		row.LastActivity, _ = time.Parse(time.RFC3339Nano, it.LastActivityTime)
		// The broker knows more recent state than the batched registry row.
		if on, _, last := c.cfg.Presence.Presence(it.DeviceID); on || last.After(row.LastActivity) {
			row.Connected = on
			if last.After(row.LastActivity) {
				row.LastActivity = last
			}
		}
		rows = append(rows, row)
	}
	return rows, res.Continuation, ""
}

// presenceItem is one device's live state for the list's refresh.
type presenceItem struct {
	Connected    bool      `json:"connected"`
	LastActivity time.Time `json:"lastActivity,omitzero"`
}

// presence answers the list's poll: ?id=a&id=b (at most 200 ids).
func (c *Console) presence(w http.ResponseWriter, r *http.Request) {
	ids := r.URL.Query()["id"]
	if len(ids) > 200 {
		ids = ids[:200]
	}
	out := make(map[string]presenceItem, len(ids))
	for _, id := range ids {
		on, _, last := c.cfg.Presence.Presence(id)
		out[id] = presenceItem{Connected: on, LastActivity: last}
	}
	writeJSON(w, map[string]any{"devices": out, "connected": c.cfg.Presence.ConnectedCount()})
}

func (c *Console) devicePage(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r.Context())
	if !s.can(registry.RegistryRead) {
		c.forbidden(w, r, registry.RegistryRead)
		return
	}
	id := r.PathValue("id")
	res, err := query.Run(r.Context(), c.cfg.Query, "SELECT * FROM devices WHERE deviceId = "+quote(id), query.Page{Limit: 1})
	if err != nil || len(res.Items) == 0 {
		if err != nil {
			c.cfg.Logger.Error("console: device page", "device", id, "error", err)
		}
		c.render(w, r, http.StatusNotFound, "notfound", map[string]any{"Device": id})
		return
	}
	var it twinItem
	_ = json.Unmarshal(res.Items[0], &it)
	on, since, last := c.cfg.Presence.Presence(id)
	la, _ := time.Parse(time.RFC3339Nano, it.LastActivityTime)
	if last.After(la) {
		la = last
	}
	c.render(w, r, http.StatusOK, "device", map[string]any{
		"D": it, "Connected": on, "Since": since, "LastActivity": la,
		"Charts": c.cfg.Telemetry != nil,
		"Model":  c.cfg.Models != nil && it.ModelID != "",
	})
}

func urlQuery(s string) string { return url.QueryEscape(s) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
