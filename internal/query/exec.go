package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Querier runs compiled statements. *sqlite.DB satisfies it.
type Querier interface {
	ReadQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Result is one page of a query's answer, in Azure's shapes: twins for
// SELECT *, objects of the selected fields otherwise.
type Result struct {
	Items        []json.RawMessage
	Continuation string // "" when there is no further page
}

// Run parses, compiles and runs text against db with the SQLite dialect and
// the default schema.
func Run(ctx context.Context, db Querier, text string, page Page) (Result, error) {
	q, err := Parse(text)
	if err != nil {
		return Result{}, err
	}
	if page.Limit <= 0 || page.Limit > 1000 {
		page.Limit = 100
	}
	limit := page.Limit
	if !q.Aggregate() {
		page.Limit++ // one more than asked tells whether another page exists
	}
	c, err := compile(q, DefaultSchema, SQLite{}, page)
	if err != nil {
		return Result{}, err
	}
	rows, err := db.ReadQuery(ctx, c.b.String(), c.args...)
	if err != nil {
		return Result{}, fmt.Errorf("query: run: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return Result{}, fmt.Errorf("query: run: %w", err)
	}
	var res Result
	n := len(cols) - c.extra
	vals := make([]sql.NullString, n)
	keys := make([]any, c.extra)
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for i := range keys {
		ptrs[n+i] = &keys[i]
	}
	var last []any // the sort key values of the last row read
	for rows.Next() {
		if !q.Aggregate() && len(res.Items) == limit {
			if res.Continuation, err = encodeToken(q, last); err != nil {
				return Result{}, err
			}
			break
		}
		if err := rows.Scan(ptrs...); err != nil {
			return Result{}, fmt.Errorf("query: read row: %w", err)
		}
		var item json.RawMessage
		switch {
		case q.Aggregate():
			item = renderAggregate(q, vals)
		case q.Star:
			item = renderTwin(q, vals)
		default:
			item = renderFields(q, vals)
		}
		switch {
		case c.extra > 0:
			last = slices.Clone(keys)
		case q.From == Modules:
			last = []any{vals[0].String, vals[1].String}
		default:
			last = []any{vals[0].String}
		}
		res.Items = append(res.Items, item)
	}
	if err := rows.Err(); err != nil {
		return Result{}, fmt.Errorf("query: run: %w", err)
	}
	return res, nil
}

func raw(v sql.NullString) json.RawMessage {
	if !v.Valid || v.String == "" {
		return nil
	}
	return json.RawMessage(v.String)
}

// renderTwin renders a SELECT * row (device id, module id, StarColumns) as a
// twin without $metadata, as Azure's query results carry it.
func renderTwin(q *Query, v []sql.NullString) json.RawMessage {
	doc := func(s sql.NullString) map[string]any {
		m := map[string]any{}
		if s.Valid && s.String != "" {
			_ = json.Unmarshal([]byte(s.String), &m)
		}
		return m
	}
	num := func(s sql.NullString) any {
		n, err := strconv.ParseInt(s.String, 10, 64)
		if err != nil {
			return nil
		}
		return n
	}
	// v: device id, module id, then StarColumns.
	desired, reported := doc(v[3]), doc(v[4])
	desired["$version"], reported["$version"] = num(v[5]), num(v[6])
	t := map[string]any{
		"deviceId":   v[0].String,
		"etag":       v[8].String,
		"version":    num(v[7]),
		"tags":       doc(v[2]),
		"properties": map[string]any{"desired": desired, "reported": reported},
	}
	if q.From == Modules {
		t["moduleId"] = v[1].String
	} else {
		t["status"], t["connectionState"], t["lastActivityTime"] = v[9].String, v[10].String, v[11].String
		if v[12].String != "" {
			t["modelId"] = v[12].String
		}
	}
	b, _ := json.Marshal(t)
	return b
}

// renderFields renders a projection: each field under its alias or its last
// name ({"deviceId":"d1","temp":21}); undefined fields are left out.
func renderFields(q *Query, v []sql.NullString) json.RawMessage {
	out := map[string]json.RawMessage{}
	for i, it := range q.Select {
		if r := raw(v[2+i]); r != nil {
			out[itemName(it, i)] = r
		}
	}
	b, _ := json.Marshal(out)
	return b
}

func renderAggregate(q *Query, v []sql.NullString) json.RawMessage {
	out := map[string]json.RawMessage{}
	for i, it := range q.Select {
		r := raw(v[i])
		if r == nil {
			r = json.RawMessage("null")
		}
		out[itemName(it, i)] = r
	}
	b, _ := json.Marshal(out)
	return b
}

// itemName is the JSON name of a selected item: its alias, the last key of
// its path, or Azure's "$1", "$2"... for an unnamed COUNT().
func itemName(it SelectItem, i int) string {
	switch {
	case it.Alias != "":
		return it.Alias
	case it.Count:
		return "$" + strconv.Itoa(i+1)
	case len(it.Field.Path) > 0:
		return it.Field.Path[len(it.Field.Path)-1]
	default:
		s := it.Field.String()
		for j := len(s) - 1; j >= 0; j-- {
			if s[j] == '.' {
				return s[j+1:]
			}
		}
		return s
	}
}
