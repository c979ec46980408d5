package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// ListPolicies implements registry.Store.
func (db *DB) ListPolicies(ctx context.Context) ([]registry.Policy, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT key_name, primary_key, secondary_key, rights
		FROM policies ORDER BY key_name`)
	if err != nil {
		return nil, wrap("list policies", err)
	}
	defer rows.Close()
	var ps []registry.Policy
	for rows.Next() {
		var (
			p      registry.Policy
			rights []byte
		)
		if err := rows.Scan(&p.KeyName, &p.PrimaryKey, &p.SecondaryKey, &rights); err != nil {
			return nil, wrap("list policies", err)
		}
		if err := json.Unmarshal(rights, &p.Rights); err != nil {
			return nil, wrap("list policies", fmt.Errorf("policy %s: bad stored rights: %w", p.KeyName, err))
		}
		ps = append(ps, p)
	}
	return ps, wrap("list policies", rows.Err())
}

// PutPolicy implements registry.Store.
func (db *DB) PutPolicy(ctx context.Context, p registry.Policy) error {
	if p.KeyName == "" {
		return wrap("put policy", fault.Invalidf("policy name is required"))
	}
	rights := p.Rights
	if rights == nil {
		rights = []registry.Right{} // store [] so the column always holds an array
	}
	b, err := json.Marshal(rights)
	if err != nil {
		return wrap("put policy "+p.KeyName, err)
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO policies (key_name, primary_key, secondary_key, rights)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (key_name) DO UPDATE SET primary_key = excluded.primary_key,
			secondary_key = excluded.secondary_key, rights = excluded.rights`,
		p.KeyName, p.PrimaryKey, p.SecondaryKey, string(b))
	return wrap("put policy "+p.KeyName, err)
}
