package graphql

// authzRuntimeSource is graph/authz_runtime.go: the schema-independent part
// of rule enforcement.
const authzRuntimeSource = `package graph

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
)

// Operations a rule grants.
const (
	OpCreate = "create"
	OpRead   = "read"
	OpUpdate = "update"
	OpDelete = "delete"
)

// ForbiddenError is returned when the viewer may see a record but not do
// the operation, or sets a field only admins may set.
type ForbiddenError struct {
	Op, Type, Reason string
}

func (e *ForbiddenError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return fmt.Sprintf("not allowed to %s this %s", e.Op, e.Type)
}

// ActorError is returned when an @actor relation would point at a record
// the viewer does not own: writing as someone else.
type ActorError struct{ Field, Type string }

func (e *ActorError) Error() string {
	return fmt.Sprintf("%s must be a %s you own: you cannot act as someone else", e.Field, e.Type)
}

// Code is the error's extensions.code.
func (e *ActorError) Code() string { return "FORBIDDEN" }

// Extensions name the field.
func (e *ActorError) Extensions() map[string]any { return map[string]any{"field": e.Field} }

// UnauthenticatedError is returned when an operation needs a signed-in user.
type UnauthenticatedError struct{ Reason string }

func (e *UnauthenticatedError) Error() string { return e.Reason }

// denied is the error for an operation the rules refuse: unauthenticated
// for visitors, forbidden for signed-in users.
func denied(v *Viewer, op, typ string) error {
	if v == nil {
		return &UnauthenticatedError{Reason: fmt.Sprintf("sign in to %s a %s", op, typ)}
	}
	return &ForbiddenError{Op: op, Type: typ}
}

type systemKey struct{}

// SystemContext returns a context in which rules are not applied, for
// server-internal work. Never derive it from a request's context by default.
func SystemContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, systemKey{}, true)
}

// bypass returns the viewer, and whether rules are skipped (admin or system).
func bypass(ctx context.Context) (*Viewer, bool) {
	v := ViewerFrom(ctx)
	if sys, _ := ctx.Value(systemKey{}).(bool); sys {
		return v, true
	}
	return v, v != nil && v.Admin
}

func denyAll(s *sql.Selector) { s.Where(sql.False()) }

func (v *Viewer) hasAnyRole(roles ...string) bool {
	if v == nil {
		return false
	}
	for _, r := range roles {
		if slices.Contains(v.Roles, r) {
			return true
		}
	}
	return false
}

func (v *Viewer) hasClaim(name string) bool {
	if v == nil || v.Claims == nil {
		return false
	}
	_, ok := v.Claims[name]
	return ok
}

func mustUUID(s string) uuid.UUID { return uuid.MustParse(s) }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// norm turns a record value or a rule literal into a comparable form.
func norm(x any) (any, bool) {
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

func isNil(x any) bool {
	_, ok := norm(x)
	return !ok
}

// match compares like SQL: a null on either side never matches.
func match(a any, op string, b any) bool {
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok { // the common case, without reflection
			return matchOrder(strings.Compare(x, y), op)
		}
	}
	x, ok1 := norm(a)
	y, ok2 := norm(b)
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

func matchAny(a any, bs ...any) bool {
	for _, b := range bs {
		if match(a, "eq", b) {
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

// usesField reports whether a where input sets any predicate of the field
// with the given Go name (Email, EmailNEQ, EmailIn, ...).
func usesField(w any, goName string) bool {
	rv := reflect.ValueOf(w)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if !f.IsExported() || !strings.HasPrefix(f.Name, goName) {
			continue
		}
		rest := strings.TrimPrefix(f.Name, goName)
		if rest != "" && !slices.Contains(predicateSuffixes, rest) {
			continue
		}
		if !rv.Field(i).IsZero() {
			return true
		}
	}
	return false
}

var predicateSuffixes = []string{"NEQ", "In", "NotIn", "GT", "GTE", "LT", "LTE", "Contains", "HasPrefix", "HasSuffix", "EqualFold", "ContainsFold", "IsNil", "NotNil"}

// FieldAuth is the @kilnFieldAuth directive: a field with its own read
// rules resolves to null, with an error, for viewers it is hidden from.
func FieldAuth(ctx context.Context, obj any, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc != nil && !fieldAllowed(ctx, obj, fc.Field.Name) {
		return nil, &ForbiddenError{Reason: fmt.Sprintf("not allowed to read %s.%s", fc.Object, fc.Field.Name)}
	}
	return next(ctx)
}
`
