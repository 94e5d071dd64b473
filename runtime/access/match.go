package access

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
)

// DenyAll is the SQL predicate of a rule that allows no row.
func DenyAll(s *sql.Selector) { s.Where(sql.False()) }

// MustUUID parses a UUID literal of a rule.
func MustUUID(s string) uuid.UUID { return uuid.MustParse(s) }

// MustTime parses an RFC 3339 literal of a rule.
func MustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Norm turns a record value or a rule literal into a comparable form: a
// string, float64, bool or time.Time, and false for null.
func Norm(x any) (any, bool) {
	if x == nil {
		return nil, false
	}
	rv := reflect.ValueOf(x)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, false
		}
		rv = rv.Elem()
	}
	switch v := rv.Interface().(type) {
	case time.Time:
		return v, true
	case uuid.UUID:
		return v.String(), true
	}
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	case reflect.Bool:
		return rv.Bool(), true
	}
	return fmt.Sprint(rv.Interface()), true
}

// IsNil reports whether a record value is null (SQL NULL).
func IsNil(x any) bool {
	_, ok := Norm(x)
	return !ok
}

// Match compares like SQL, with op one of eq, neq, gt, gte, lt, lte: a
// null on either side never matches.
func Match(a any, op string, b any) bool {
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok { // the common case, without reflection
			return matchOrder(strings.Compare(x, y), op)
		}
	}
	x, ok1 := Norm(a)
	y, ok2 := Norm(b)
	if !ok1 || !ok2 {
		return false
	}
	c, ok := compare(x, y)
	if !ok {
		return false
	}
	return matchOrder(c, op)
}

// matchOrder reports whether the comparison result c satisfies op.
func matchOrder(c int, op string) bool {
	switch op {
	case "eq":
		return c == 0
	case "neq":
		return c != 0
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	case "lte":
		return c <= 0
	}
	return false
}

// MatchAny reports whether a equals one of bs (SQL IN).
func MatchAny(a any, bs ...any) bool {
	for _, b := range bs {
		if Match(a, "eq", b) {
			return true
		}
	}
	return false
}

func compare(x, y any) (int, bool) {
	switch a := x.(type) {
	case float64:
		b, ok := y.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case a < b:
			return -1, true
		case a > b:
			return 1, true
		}
		return 0, true
	case string:
		b, ok := y.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(a, b), true
	case time.Time:
		b, ok := y.(time.Time)
		if !ok {
			return 0, false
		}
		return a.Compare(b), true
	case bool:
		b, ok := y.(bool)
		if !ok || a != b {
			return 1, ok
		}
		return 0, true
	}
	return 0, false
}
