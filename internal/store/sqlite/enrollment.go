package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/ferry-iot/ferry/internal/provision"
)

var _ provision.EnrollmentStore = (*DB)(nil)

// putDoc inserts or replaces one enrollment row of table, keyed by column key.
func (db *DB) putDoc(ctx context.Context, table, key, kind, id, status string, v any, replace bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return wrap("put "+kind, err)
	}
	q := `INSERT INTO ` + table + ` (` + key + `, status, doc) VALUES (?, ?, ?)`
	if replace {
		q += ` ON CONFLICT (` + key + `) DO UPDATE SET status = excluded.status, doc = excluded.doc`
	}
	_, err = db.w.ExecContext(ctx, q, id, status, string(b))
	if isUniqueViolation(err) {
		err = provision.EnrollmentExistsError(kind, id)
	}
	return wrap("put "+kind, err)
}

func (db *DB) getDoc(ctx context.Context, table, key, kind, id string, v any) error {
	var doc string
	err := db.r.QueryRowContext(ctx, `SELECT doc FROM `+table+` WHERE `+key+` = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		err = provision.EnrollmentNotFoundError(kind, id)
	}
	if err == nil {
		err = json.Unmarshal([]byte(doc), v)
	}
	return wrap("get "+kind, err)
}

func (db *DB) deleteDoc(ctx context.Context, table, key, kind, id string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+key+` = ?`, id)
	if err == nil {
		if n, _ := res.RowsAffected(); n == 0 {
			err = provision.EnrollmentNotFoundError(kind, id)
		}
	}
	return wrap("delete "+kind, err)
}

// listDocs calls add with each row's document, in key order.
func (db *DB) listDocs(ctx context.Context, table, key, kind string, add func([]byte) error) error {
	rows, err := db.r.QueryContext(ctx, `SELECT doc FROM `+table+` ORDER BY `+key)
	if err != nil {
		return wrap("list "+kind, err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return wrap("list "+kind, err)
		}
		if err := add([]byte(doc)); err != nil {
			return wrap("list "+kind, err)
		}
	}
	return wrap("list "+kind, rows.Err())
}

// PutEnrollmentGroup implements provision.EnrollmentStore.
func (db *DB) PutEnrollmentGroup(ctx context.Context, g *provision.EnrollmentGroup, replace bool) error {
	return db.putDoc(ctx, "enrollment_groups", "id", "enrollment group", g.EnrollmentGroupID, g.ProvisioningStatus, g, replace)
}

// GetEnrollmentGroup implements provision.EnrollmentStore.
func (db *DB) GetEnrollmentGroup(ctx context.Context, id string) (*provision.EnrollmentGroup, error) {
	var g provision.EnrollmentGroup
	if err := db.getDoc(ctx, "enrollment_groups", "id", "enrollment group", id, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// ListEnrollmentGroups implements provision.EnrollmentStore.
func (db *DB) ListEnrollmentGroups(ctx context.Context) ([]provision.EnrollmentGroup, error) {
	var out []provision.EnrollmentGroup
	err := db.listDocs(ctx, "enrollment_groups", "id", "enrollment groups", func(b []byte) error {
		var g provision.EnrollmentGroup
		err := json.Unmarshal(b, &g)
		out = append(out, g)
		return err
	})
	return out, err
}

// DeleteEnrollmentGroup implements provision.EnrollmentStore.
func (db *DB) DeleteEnrollmentGroup(ctx context.Context, id string) error {
	return db.deleteDoc(ctx, "enrollment_groups", "id", "enrollment group", id)
}

// PutEnrollment implements provision.EnrollmentStore.
func (db *DB) PutEnrollment(ctx context.Context, e *provision.IndividualEnrollment, replace bool) error {
	return db.putDoc(ctx, "individual_enrollments", "registration_id", "enrollment", e.RegistrationID, e.ProvisioningStatus, e, replace)
}

// GetEnrollment implements provision.EnrollmentStore.
func (db *DB) GetEnrollment(ctx context.Context, registrationID string) (*provision.IndividualEnrollment, error) {
	var e provision.IndividualEnrollment
	if err := db.getDoc(ctx, "individual_enrollments", "registration_id", "enrollment", registrationID, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ListEnrollments implements provision.EnrollmentStore.
func (db *DB) ListEnrollments(ctx context.Context) ([]provision.IndividualEnrollment, error) {
	var out []provision.IndividualEnrollment
	err := db.listDocs(ctx, "individual_enrollments", "registration_id", "enrollments", func(b []byte) error {
		var e provision.IndividualEnrollment
		err := json.Unmarshal(b, &e)
		out = append(out, e)
		return err
	})
	return out, err
}

// DeleteEnrollment implements provision.EnrollmentStore.
func (db *DB) DeleteEnrollment(ctx context.Context, registrationID string) error {
	return db.deleteDoc(ctx, "individual_enrollments", "registration_id", "enrollment", registrationID)
}
