// Package paging is the keyset (cursor) pagination of the generated ent
// code: the ORDER BY terms of a connection and the predicates that keep the
// rows after an `after` cursor and before a `before` cursor.
//
// NULL sorts the same way on SQLite and PostgreSQL: after every value in
// ascending order and before every value in descending order (PostgreSQL's
// default; SQLite is told so with NULLS LAST / NULLS FIRST). A cursor
// carries a row's values, NULLs included, and the row's id, which breaks
// ties, so paging through any order visits every row exactly once, forwards
// and backwards. (entgql's own predicates compare with = and >, which no
// NULL satisfies, and so stopped at the first NULL.)
package paging

import (
	"fmt"
	"reflect"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect/sql"
)

// Key is one term of an order: a column, its direction, and whether the
// column can hold NULL.
type Key struct {
	Column    string
	Direction entgql.OrderDirection
	Nullable  bool
}

// Terms returns the ORDER BY options of a column in direction d: the
// direction and, for a nullable column, where its NULLs go.
func Terms(d entgql.OrderDirection, nullable bool) []sql.OrderTermOption {
	opts := []sql.OrderTermOption{d.OrderTermOption()}
	if nullable {
		if d == entgql.OrderDirectionDesc {
			opts = append(opts, sql.OrderNullsFirst())
		} else {
			opts = append(opts, sql.OrderNullsLast())
		}
	}
	return opts
}

// WriteTerm writes one ORDER BY term, as Terms orders it, for the window
// functions of nested connections (entgql.LimitPerRow).
func WriteTerm(b *sql.Builder, column string, d entgql.OrderDirection, nullable bool) {
	b.Ident(column).Pad().WriteString(string(d))
	if nullable {
		if d == entgql.OrderDirectionDesc {
			b.WriteString(" NULLS FIRST")
		} else {
			b.WriteString(" NULLS LAST")
		}
	}
}

// Predicates returns the predicates that keep the rows strictly after the
// `after` cursor and strictly before the `before` cursor in the order keys
// (as requested, not reversed for `last`), ended by id, the unique key that
// breaks ties (left out when keys already hold it). A cursor's Value holds
// one value per key ([]any), or, with single is true, the value of the one
// key (nil when that key is id).
func Predicates[T any](after, before *entgql.Cursor[T], keys []Key, id Key, single bool) ([]func(*sql.Selector), error) {
	var preds []func(*sql.Selector)
	for _, c := range []struct {
		cursor  *entgql.Cursor[T]
		reverse bool
	}{{after, false}, {before, true}} {
		if c.cursor == nil {
			continue
		}
		values, err := cursorValues(c.cursor, keys, single)
		if err != nil {
			return nil, err
		}
		ks := append([]Key(nil), keys...)
		hasID := false
		for i, k := range ks {
			if k.Column == id.Column {
				hasID, values[i] = true, c.cursor.ID // an order by id carries it as the cursor's ID
			}
		}
		if !hasID {
			ks = append(ks, id)
			values = append(values, c.cursor.ID)
		}
		if c.reverse {
			for i := range ks {
				ks[i].Direction = ks[i].Direction.Reverse()
			}
		}
		preds = append(preds, func(s *sql.Selector) { s.Where(beyond(s, ks, values)) })
	}
	return preds, nil
}

// cursorValues returns the values of keys a cursor carries.
func cursorValues[T any](c *entgql.Cursor[T], keys []Key, single bool) ([]any, error) {
	var values []any
	switch {
	case single && len(keys) == 1:
		values = []any{c.Value}
	case single:
		values = nil
	default:
		vs, ok := c.Value.([]any)
		if !ok && c.Value != nil {
			return nil, fmt.Errorf("cursor value %T is not a list", c.Value)
		}
		values = vs
	}
	if len(values) != len(keys) {
		return nil, fmt.Errorf("the cursor has %d values for an order of %d fields: it was made for another orderBy", len(values), len(keys))
	}
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = normalize(v)
	}
	return out, nil
}

// normalize turns a nil pointer into nil and a time into UTC (msgpack
// decodes times in the local zone; SQLite compares the text it stores).
func normalize(v any) any {
	if v == nil {
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		v = rv.Elem().Interface()
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC()
	}
	return v
}

// beyond is the predicate of the rows that come after values in the order
// keys: (k1 beyond v1) OR (k1 = v1 AND k2 beyond v2) OR ..., where a NULL
// is greater than every value. To look before a cursor, the keys come
// reversed: NULL stays the greatest value, so it moves to the other end.
func beyond(s *sql.Selector, keys []Key, values []any) *sql.Predicate {
	var or []*sql.Predicate
	for i, k := range keys {
		p := beyondOne(column(s, k.Column), k, values[i])
		if p == nil {
			continue
		}
		ands := make([]*sql.Predicate, 0, i+1)
		for j := 0; j < i; j++ {
			ands = append(ands, equal(column(s, keys[j].Column), values[j]))
		}
		or = append(or, sql.And(append(ands, p)...))
	}
	if len(or) == 0 {
		return sql.False()
	}
	return sql.Or(or...)
}

// beyondOne is the predicate of the values of one key that come after v,
// or nil when none does. NULL is the greatest value: in ascending order,
// after v come the greater values and NULL, and nothing after NULL; in
// descending order, after v come the smaller values, and after NULL every
// value.
func beyondOne(col string, k Key, v any) *sql.Predicate {
	up := k.Direction == entgql.OrderDirectionAsc
	if v == nil {
		if !k.Nullable || up {
			return nil
		}
		return sql.NotNull(col)
	}
	var p *sql.Predicate
	if up {
		p = sql.GT(col, v)
	} else {
		p = sql.LT(col, v)
	}
	if k.Nullable && up {
		p = sql.Or(p, sql.IsNull(col))
	}
	return p
}

// equal is col = v, or col IS NULL.
func equal(col string, v any) *sql.Predicate {
	if v == nil {
		return sql.IsNull(col)
	}
	return sql.EQ(col, v)
}

// column is the selector's column named c, or the one selection that
// matches it (an order term may select it under a join).
func column(s *sql.Selector, c string) string {
	if matches := s.FindSelection(c); len(matches) == 1 {
		return matches[0]
	}
	return s.C(c)
}
