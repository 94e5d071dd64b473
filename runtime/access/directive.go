package access

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
)

// FieldAuth returns the @kilnFieldAuth directive of an app: a field with its
// own read rules resolves to null, with a FORBIDDEN error, for viewers that
// allowed (the app's field rules for a parent record) hides it from.
func FieldAuth(allowed func(ctx context.Context, obj any, field string) bool) func(ctx context.Context, obj any, next graphql.Resolver) (any, error) {
	return func(ctx context.Context, obj any, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc != nil && !allowed(ctx, obj, fc.Field.Name) {
			return nil, &ForbiddenError{Reason: fmt.Sprintf("not allowed to read %s.%s", fc.Object, fc.Field.Name)}
		}
		return next(ctx)
	}
}

// UsesField reports whether an entgql where input (a struct or a pointer to
// one) sets any predicate of the field with the given Go name (Email,
// EmailNEQ, EmailIn, ...).
func UsesField(w any, goName string) bool {
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
