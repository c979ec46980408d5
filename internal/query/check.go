package query

// check enforces the rules that are not grammar: moduleId only FROM
// devices.modules, COUNT() with GROUP BY as in Azure IoT Hub, and ORDER BY
// fields named once and only in queries that do not count.
func check(q *Query) error {
	var fields []Field
	for _, it := range q.Select {
		if !it.Count {
			fields = append(fields, it.Field)
		}
	}
	fields = append(fields, q.GroupBy...)
	for _, it := range q.OrderBy {
		fields = append(fields, it.Field)
	}
	fields = exprFields(q.Where, fields)
	if q.From == Devices {
		for _, f := range fields {
			if f.Root == ModuleID {
				return errorAt(f.Pos, "moduleId is defined only FROM devices.modules")
			}
		}
	}
	for i, it := range q.OrderBy {
		if q.Aggregate() {
			return errorAt(it.Field.Pos, "ORDER BY cannot be used with COUNT(); groups come ordered by the GROUP BY fields")
		}
		for _, prev := range q.OrderBy[:i] {
			if sameField(prev.Field, it.Field) {
				return errorAt(it.Field.Pos, "%s appears twice in ORDER BY", it.Field)
			}
		}
	}
	if !q.Aggregate() {
		if len(q.GroupBy) > 0 {
			return errorAt(q.GroupBy[0].Pos, "GROUP BY needs COUNT() in the SELECT list")
		}
		return nil
	}
	for _, it := range q.Select {
		if it.Count {
			continue
		}
		grouped := false
		for _, g := range q.GroupBy {
			grouped = grouped || sameField(it.Field, g)
		}
		if !grouped {
			return errorAt(it.Pos, "%s must be in GROUP BY to be selected with COUNT()", it.Field)
		}
	}
	return nil
}

// exprFields appends the fields that e refers to.
func exprFields(e Expr, fields []Field) []Field {
	switch e := e.(type) {
	case *Logic:
		return exprFields(e.R, exprFields(e.L, fields))
	case *Not:
		return exprFields(e.X, fields)
	case *Compare:
		return append(fields, e.Field)
	case *In:
		return append(fields, e.Field)
	case *Call:
		return append(fields, e.Field)
	}
	return fields
}
