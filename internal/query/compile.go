package query

import (
	"strings"

	"github.com/ferry-iot/ferry/internal/fault"
)

// StarColumns are the columns of a SELECT * row after the device id and
// module id, in order: the twin's JSON documents and versions, then the
// registry fields (NULL FROM devices.modules). Documents and versions are
// NULL for a registered device that has no twin row yet.
var StarColumns = []string{"tags", "desired", "reported", "desired_version", "reported_version",
	"version", "etag", "status", "connection_state", "last_activity", "model_id"}

// Compile compiles q to one SQL statement for dialect d over schema s.
// Every literal and every JSON path is a bound argument in args; the SQL
// text holds only names from s and fixed syntax.
//
// The statement's rows are:
//   - SELECT *: device id, module id, then StarColumns.
//   - SELECT fields: device id, module id, then one column per field, in
//     order, holding the field's JSON text, or NULL when it is undefined.
//   - COUNT(): one column per SELECT item, in order: a grouped field's
//     JSON text (NULL for devices where it is undefined, which form one
//     group) or the count. Rows are ordered by the GROUP BY fields.
//
// Non-aggregate rows are ordered by the ORDER BY items, then by device id
// and module id in the direction of the last item (ascending without
// ORDER BY), and page selects a window of them. With ORDER BY, the row's
// sort key values follow its columns (one per scalar item, two per JSON
// item, then the ids), for Run to build the next page's token.
// Aggregates accept page.Limit but not page.After. Errors in q or page are
// fault.Invalid; a bad schema is an internal error.
//
// Ordering by a registry column (deviceId, status, connectionState,
// lastActivityTime, modelId) reads Ferry's indexes on (column, device id),
// so a page costs its own rows whichever page it is. Ordering by a JSON
// field (tags, properties) or a $version has no index: every page reads
// and sorts all rows that match the condition.
func Compile(q *Query, s Schema, d Dialect, page Page) (sql string, args []any, err error) {
	c, err := compile(q, s, d, page)
	if err != nil {
		return "", nil, err
	}
	return c.b.String(), c.args, nil
}

func compile(q *Query, s Schema, d Dialect, page Page) (*compiler, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if page.Limit < 0 {
		return nil, fault.Invalidf("query: negative page limit %d", page.Limit)
	}
	c := &compiler{s: s, d: d, q: q, index: map[any]int{}}
	if err := c.compile(page); err != nil {
		return nil, err
	}
	return c, nil
}

// compiler holds the state of one compilation.
type compiler struct {
	s     Schema
	d     Dialect
	q     *Query
	b     strings.Builder
	args  []any
	index map[any]int // argument value -> its number, so repeats bind once
	keys  []sortKey   // the row order of a non-aggregate query
	extra int         // trailing columns holding the sort keys (with ORDER BY)
}

// arg binds v and returns its placeholder.
func (c *compiler) arg(v any) string {
	n, ok := c.index[v]
	if !ok {
		c.args = append(c.args, v)
		n = len(c.args)
		c.index[v] = n
	}
	return c.d.Placeholder(n)
}

// key returns the device id and module id expressions of a row.
func (c *compiler) key() (dev, mod string) {
	if c.q.From == Modules {
		return "t." + c.s.TwinDeviceID, "t." + c.s.TwinModuleID
	}
	return "d." + c.s.DeviceID, "''"
}

func (c *compiler) compile(page Page) error {
	q := c.q
	if q.From != Devices && q.From != Modules {
		return fault.Invalidf("query: unknown source %d", int(q.From))
	}
	if !q.Star && len(q.Select) == 0 {
		return fault.Invalidf("query: nothing selected")
	}
	agg := q.Aggregate()
	if agg && page.After != "" {
		return fault.Invalidf("query: a COUNT() query has a single page")
	}
	if agg && len(q.OrderBy) > 0 {
		return fault.Invalidf("query: ORDER BY cannot be used with COUNT()")
	}
	if !agg {
		keys, err := c.orderKeys()
		if err != nil {
			return err
		}
		c.keys = keys
	}
	dev, mod := c.key()
	var cols []string
	if !agg {
		cols = append(cols, dev, mod)
	}
	if q.Star {
		cols = append(cols, c.starColumns()...)
	}
	for _, it := range q.Select {
		if it.Count {
			cols = append(cols, "COUNT(*)")
			continue
		}
		o, err := c.operand(it.Field)
		if err != nil {
			return err
		}
		cols = append(cols, c.json(o))
	}
	if len(q.OrderBy) > 0 {
		for _, k := range c.keys {
			cols = append(cols, k.expr)
		}
		c.extra = len(c.keys)
	}
	c.b.WriteString("SELECT ")
	c.b.WriteString(strings.Join(cols, ", "))
	c.from()
	var conds []string
	if q.From == Modules {
		conds = append(conds, mod+" <> ''")
	}
	if q.Where != nil {
		w, err := c.expr(q.Where, 0)
		if err != nil {
			return err
		}
		conds = append(conds, w)
	}
	if page.After != "" {
		vals, err := decodeToken(q, c.keys, page.After)
		if err != nil {
			return err
		}
		conds = append(conds, c.afterKeys(c.keys, vals))
	}
	if len(conds) > 0 {
		c.b.WriteString(" WHERE ")
		c.b.WriteString(strings.Join(conds, " AND "))
	}
	if agg {
		var groups []string
		for _, f := range q.GroupBy {
			o, err := c.operand(f)
			if err != nil {
				return err
			}
			groups = append(groups, c.json(o))
		}
		if len(groups) > 0 {
			c.b.WriteString(" GROUP BY ")
			c.b.WriteString(strings.Join(groups, ", "))
			c.b.WriteString(" ORDER BY ")
			c.b.WriteString(strings.Join(groups, ", "))
		}
	} else {
		c.b.WriteString(" ORDER BY ")
		c.b.WriteString(orderBy(c.keys))
	}
	if page.Limit > 0 {
		c.b.WriteString(" LIMIT ")
		c.b.WriteString(c.arg(int64(page.Limit)))
	}
	return nil
}

// from writes the FROM clause. FROM devices reads every registered device
// with its device twin, if any; FROM devices.modules reads module twins.
func (c *compiler) from() {
	s := c.s
	if c.q.From == Modules {
		c.b.WriteString(" FROM " + s.Twins + " AS t")
		return
	}
	c.b.WriteString(" FROM " + s.Devices + " AS d LEFT JOIN " + s.Twins + " AS t ON t." +
		s.TwinDeviceID + " = d." + s.DeviceID + " AND t." + s.TwinModuleID + " = ''")
}

func (c *compiler) starColumns() []string {
	s := c.s
	cols := []string{"t." + s.Tags, "t." + s.Desired, "t." + s.Reported, "t." + s.DesiredVersion,
		"t." + s.ReportedVersion, "t." + s.Version, "t." + s.ETag}
	for _, n := range []string{s.Status, s.ConnectionState, s.LastActivity, s.ModelID} {
		if c.q.From == Modules {
			cols = append(cols, "NULL")
		} else {
			cols = append(cols, "d."+n)
		}
	}
	return cols
}
