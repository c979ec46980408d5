package sqlite

import (
	"context"

	"github.com/ferry-iot/ferry/internal/model"
)

var _ model.Store = (*DB)(nil)

// PutModel implements model.Store.
func (db *DB) PutModel(ctx context.Context, m model.Stored) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO models (id, doc, created_at) VALUES (?, ?, ?)`,
		m.ID, string(m.Doc), formatTime(m.Created))
	if isUniqueViolation(err) {
		return model.ExistsError(m.ID)
	}
	return wrap("put model", err)
}

// ListModels implements model.Store.
func (db *DB) ListModels(ctx context.Context) ([]model.Stored, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, doc, created_at FROM models ORDER BY id`)
	if err != nil {
		return nil, wrap("list models", err)
	}
	defer rows.Close()
	var out []model.Stored
	for rows.Next() {
		var (
			m        model.Stored
			doc, crt string
		)
		if err := rows.Scan(&m.ID, &doc, &crt); err != nil {
			return nil, wrap("list models", err)
		}
		m.Doc = []byte(doc)
		if m.Created, err = parseTime(crt); err != nil {
			return nil, wrap("list models", err)
		}
		out = append(out, m)
	}
	return out, wrap("list models", rows.Err())
}

// DeleteModel implements model.Store.
func (db *DB) DeleteModel(ctx context.Context, id string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM models WHERE id = ?`, id)
	if err != nil {
		return wrap("delete model", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return model.NotFoundError(id)
	}
	return nil
}
