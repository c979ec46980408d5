package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/route"
	"github.com/ferry-iot/ferry/internal/schema"
)

var (
	_ route.Store  = (*DB)(nil)
	_ schema.Store = (*DB)(nil)
)

// CreateRoute implements route.Store.
func (db *DB) CreateRoute(ctx context.Context, r *route.Route) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return wrap("create route", err)
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO routes (name, doc, created_at, updated_at) VALUES (?, ?, ?, ?)`,
		r.Name, string(doc), formatTime(r.Created), formatTime(r.Updated))
	if isUniqueViolation(err) {
		return route.ExistsError(r.Name)
	}
	return wrap("create route", err)
}

// UpdateRoute implements route.Store.
func (db *DB) UpdateRoute(ctx context.Context, r *route.Route) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return wrap("update route", err)
	}
	res, err := db.w.ExecContext(ctx, `UPDATE routes SET doc = ?, updated_at = ? WHERE name = ?`,
		string(doc), formatTime(r.Updated), r.Name)
	if err != nil {
		return wrap("update route", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return route.NotFoundError(r.Name)
	}
	return nil
}

// GetRoute implements route.Store.
func (db *DB) GetRoute(ctx context.Context, name string) (*route.Route, error) {
	var doc string
	err := db.r.QueryRowContext(ctx, `SELECT doc FROM routes WHERE name = ?`, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, route.NotFoundError(name)
	}
	if err != nil {
		return nil, wrap("get route", err)
	}
	var r route.Route
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return nil, wrap("get route", err)
	}
	return &r, nil
}

// ListRoutes implements route.Store.
func (db *DB) ListRoutes(ctx context.Context) ([]route.Route, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT doc FROM routes ORDER BY name`)
	if err != nil {
		return nil, wrap("list routes", err)
	}
	defer rows.Close()
	var out []route.Route
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, wrap("list routes", err)
		}
		var r route.Route
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, wrap("list routes", err)
		}
		out = append(out, r)
	}
	return out, wrap("list routes", rows.Err())
}

// DeleteRoute implements route.Store.
func (db *DB) DeleteRoute(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM routes WHERE name = ?`, name)
	if err != nil {
		return wrap("delete route", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return route.NotFoundError(name)
	}
	return nil
}

// RouteSetting implements route.Store.
func (db *DB) RouteSetting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM route_settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return v, err == nil, wrap("route setting", err)
}

// PutRouteSetting implements route.Store.
func (db *DB) PutRouteSetting(ctx context.Context, key, value string) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO route_settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return wrap("put route setting", err)
}

// PutSchema implements schema.Store.
func (db *DB) PutSchema(ctx context.Context, s *schema.Schema) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO schemas (name, message, descriptor, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET message = excluded.message, descriptor = excluded.descriptor,
		created_at = excluded.created_at`, s.Name, s.Message, s.Descriptor, formatTime(s.Created))
	return wrap("put schema", err)
}

// ListSchemas implements schema.Store.
func (db *DB) ListSchemas(ctx context.Context) ([]schema.Schema, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT name, message, descriptor, created_at FROM schemas ORDER BY name`)
	if err != nil {
		return nil, wrap("list schemas", err)
	}
	defer rows.Close()
	var out []schema.Schema
	for rows.Next() {
		var s schema.Schema
		var at string
		if err := rows.Scan(&s.Name, &s.Message, &s.Descriptor, &at); err != nil {
			return nil, wrap("list schemas", err)
		}
		s.Created, _ = parseTime(at)
		out = append(out, s)
	}
	return out, wrap("list schemas", rows.Err())
}

// DeleteSchema implements schema.Store.
func (db *DB) DeleteSchema(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM schemas WHERE name = ?`, name)
	if err != nil {
		return wrap("delete schema", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fault.New(fault.NotFound, "SchemaNotFound", 404001, "schema %q not found", name)
	}
	return nil
}
