package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

var _ registry.CAStore = (*DB)(nil)

const caColumns = `name, certificate, thumbprint, verified, verification_code, created_at, updated_at, etag`

// CreateCA implements registry.CAStore.
func (db *DB) CreateCA(ctx context.Context, c *registry.StoredCA) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO certificate_authorities (`+caColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Name, c.Certificate, c.Thumbprint, c.Verified, c.VerificationCode,
		formatTime(c.Created), formatTime(c.Updated), c.ETag)
	if isUniqueViolation(err) {
		err = registry.CAExistsError(c.Name)
	}
	return wrap("create certificate authority", err)
}

// GetCA implements registry.CAStore.
func (db *DB) GetCA(ctx context.Context, name string) (*registry.StoredCA, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+caColumns+` FROM certificate_authorities WHERE name = ?`, name)
	c, err := scanCA(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = registry.CANotFoundError(name)
	}
	if err != nil {
		return nil, wrap("get certificate authority", err)
	}
	return c, nil
}

// ListCAs implements registry.CAStore.
func (db *DB) ListCAs(ctx context.Context) ([]registry.StoredCA, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+caColumns+` FROM certificate_authorities ORDER BY name`)
	if err != nil {
		return nil, wrap("list certificate authorities", err)
	}
	defer rows.Close()
	var out []registry.StoredCA
	for rows.Next() {
		c, err := scanCA(rows)
		if err != nil {
			return nil, wrap("list certificate authorities", err)
		}
		out = append(out, *c)
	}
	return out, wrap("list certificate authorities", rows.Err())
}

// UpdateCA implements registry.CAStore.
func (db *DB) UpdateCA(ctx context.Context, c *registry.StoredCA, ifMatch string) error {
	res, err := db.w.ExecContext(ctx, `UPDATE certificate_authorities
		SET verified = ?, verification_code = ?, updated_at = ?, etag = ?
		WHERE name = ? AND etag = ?`,
		c.Verified, c.VerificationCode, formatTime(c.Updated), c.ETag, c.Name, ifMatch)
	if err != nil {
		return wrap("update certificate authority", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("update certificate authority", err)
	}
	if n == 0 {
		if _, err := db.GetCA(ctx, c.Name); err != nil {
			return err
		}
		return wrap("update certificate authority", fault.New(fault.PreconditionFailed, "PreconditionFailed", 412002,
			"certificate authority %q was changed meanwhile; try again", c.Name))
	}
	return nil
}

// DeleteCA implements registry.CAStore.
func (db *DB) DeleteCA(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM certificate_authorities WHERE name = ?`, name)
	if err != nil {
		return wrap("delete certificate authority", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap("delete certificate authority", err)
	} else if n == 0 {
		return wrap("delete certificate authority", registry.CANotFoundError(name))
	}
	return nil
}

type caRowScanner interface {
	Scan(dest ...any) error
}

func scanCA(r caRowScanner) (*registry.StoredCA, error) {
	var (
		c                registry.StoredCA
		created, updated string
	)
	if err := r.Scan(&c.Name, &c.Certificate, &c.Thumbprint, &c.Verified, &c.VerificationCode, &created, &updated, &c.ETag); err != nil {
		return nil, err
	}
	var err error
	if c.Created, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("certificate authority %s: bad created_at: %w", c.Name, err)
	}
	if c.Updated, err = parseTime(updated); err != nil {
		return nil, fmt.Errorf("certificate authority %s: bad updated_at: %w", c.Name, err)
	}
	return &c, nil
}
