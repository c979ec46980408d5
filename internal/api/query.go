package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/query"
)

// Querier runs the IoT Hub query language.
type Querier interface {
	Run(ctx context.Context, text string, page query.Page) (query.Result, error)
}

// QueryRequest is Azure's body for POST /devices/query.
type QueryRequest struct {
	Query string `json:"query"`
}

const maxItemCountHdr = "x-ms-max-item-count"

// runQuery answers POST /devices/query as Azure does: a JSON array, the page
// size from x-ms-max-item-count, the next page's token in x-ms-continuation.
// The token is bound to the query text it came with (ORDER BY included): a
// different query refuses it with 400 rather than read from a wrong place.
func (h *Handler) runQuery(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Query == nil {
		return fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "queries are not available")
	}
	var req QueryRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	page := query.Page{Limit: 100, After: r.Header.Get(continuationHdr)}
	if s := r.Header.Get(maxItemCountHdr); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return fault.Invalidf("%s must be a number from 1 to 1000", maxItemCountHdr)
		}
		page.Limit = n
	}
	res, err := h.cfg.Query.Run(r.Context(), req.Query, page)
	if err != nil {
		return err
	}
	if res.Continuation != "" {
		w.Header().Set(continuationHdr, res.Continuation)
	}
	if res.Items == nil {
		res.Items = []json.RawMessage{}
	}
	return writeJSON(w, http.StatusOK, res.Items)
}
