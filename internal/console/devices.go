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
	Sort   string // a key of sortColumns or "tags.<path>"; "" is "id"
	Desc   bool   // order=desc
	After  string // continuation token
	Size   int
}

// sortColumn is a column of the list the server can order by.
type sortColumn struct {
	Key, Label, Field string
	Desc              bool // the direction a first click sorts in
}

// sortColumns are the list's sortable columns, in table order. The
// registry columns have indexes on (column, device id), so every page is a
// seek; ordering by a tag reads and sorts every matching device.
var sortColumns = []sortColumn{
	{"id", "Device id", "deviceId", false},
	{"conn", "Connection", "connectionState", false},
	{"status", "Status", "status", false},
	{"activity", "Last activity", "lastActivityTime", true},
	{"model", "Model id", "modelId", false},
}

func parseListParams(r *http.Request) listParams {
	q := r.URL.Query()
	p := listParams{Search: strings.TrimSpace(q.Get("q")), Where: strings.TrimSpace(q.Get("where")),
		State: q.Get("state"), Sort: q.Get("sort"), After: q.Get("after")}
	p.Size, _ = strconv.Atoi(q.Get("size"))
	if p.Size != 25 && p.Size != 100 {
		p.Size = 50
	}
	if p.sortField() == "" || p.Sort == "id" {
		p.Sort = ""
	}
	p.Desc = q.Get("order") == "desc"
	return p
}

// sortField is the query-language field p sorts by, or "" for an unknown
// sort key. A tag path is letters, digits and '_' between dots, so it
// cannot change the query's text around it.
func (p listParams) sortField() string {
	if p.Sort == "" {
		return "deviceId"
	}
	for _, c := range sortColumns {
		if c.Key == p.Sort {
			return c.Field
		}
	}
	path, ok := strings.CutPrefix(p.Sort, "tags.")
	if !ok || len(path) > 200 {
		return ""
	}
	for _, k := range strings.Split(path, ".") {
		if k == "" || strings.IndexFunc(k, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0 {
			return ""
		}
	}
	return p.Sort
}

// sortHeader is one column header's sort link.
type sortHeader struct {
	Label    string
	Href     string
	AriaSort string // "ascending", "descending" or "" when the list is not sorted by it
	Next     string // what following the link does, for screen readers
}

// headers returns the sort links of the list's columns: following the
// sorted column's link reverses its direction; another column's link sorts
// by it in its first direction, from the first page.
func (p listParams) headers() []sortHeader {
	out := make([]sortHeader, 0, len(sortColumns))
	for _, c := range sortColumns {
		h := sortHeader{Label: c.Label}
		q := p
		q.Sort, q.Desc = c.Key, c.Desc
		if c.Key == "id" {
			q.Sort = ""
		}
		if q.Sort == p.Sort {
			h.AriaSort = "ascending"
			if p.Desc {
				h.AriaSort = "descending"
			}
			q.Desc = !p.Desc
		}
		h.Next = "sort ascending"
		if q.Desc {
			h.Next = "sort descending"
		}
		h.Href = q.link("")
		out = append(out, h)
	}
	return out
}

// orderText describes the list's order for its caption.
func (p listParams) orderText() string {
	name := p.sortField()
	for _, c := range sortColumns {
		if c.Field == name {
			name = strings.ToLower(c.Label)
		}
	}
	if p.Desc {
		return name + ", descending"
	}
	return name + ", ascending"
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
	if p.Sort != "" || p.Desc {
		text += " ORDER BY " + p.sortField()
		if p.Desc {
			text += " DESC"
		}
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
	v := make([]string, 0, 7)
	add := func(k, val string) {
		if val != "" {
			v = append(v, k+"="+urlQuery(val))
		}
	}
	add("q", p.Search)
	add("where", p.Where)
	add("state", p.State)
	add("sort", p.Sort)
	if p.Desc {
		add("order", "desc")
	}
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
		"Headers": p.headers(), "Order": p.orderText(), "TagSort": "",
	}
	if strings.HasPrefix(p.Sort, "tags.") {
		data["TagSort"] = map[bool]string{false: "ascending", true: "descending"}[p.Desc]
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
