package graphqlapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"kiln/graph"
)

// Limits bound what one request may ask for. Every limit is checked after
// parsing and validation and before any resolver runs.
type Limits struct {
	MaxDepth      int // selection depth, through fragments
	MaxAliases    int // aliased fields in the operation, through fragments
	MaxRootFields int // top-level fields of the operation
	MaxComplexity int // gqlgen complexity (one per field by default)
	MaxTokens     int // parser tokens
	MaxPageSize   int // largest first/last; missing both means first: MaxPageSize
}

// DefaultLimits are safe for mobile apps and GraphiQL.
var DefaultLimits = Limits{MaxDepth: 12, MaxAliases: 30, MaxRootFields: 20, MaxComplexity: 2000, MaxTokens: 15000, MaxPageSize: 100}

// Error codes of the limits.
const (
	CodeTooDeep          = "QUERY_TOO_DEEP"
	CodeTooManyAliases   = "TOO_MANY_ALIASES"
	CodeTooManyRoots     = "TOO_MANY_ROOT_FIELDS"
	CodePageSizeTooLarge = "PAGE_SIZE_TOO_LARGE"
)

// shapeLimits checks depth, aliases and root fields of the operation.
type shapeLimits struct{ Limits }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = shapeLimits{}

func (shapeLimits) ExtensionName() string { return "KilnShapeLimits" }

func (shapeLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l shapeLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	op := oc.Operation
	if op == nil {
		return nil
	}
	if l.MaxRootFields > 0 {
		if n := countRoots(op.SelectionSet, oc.Doc, map[string]bool{}); n > l.MaxRootFields {
			return limitError(CodeTooManyRoots, "the operation has %d top-level fields; the limit is %d", n, l.MaxRootFields)
		}
	}
	w := walker{doc: oc.Doc, vars: oc.Variables, maxPage: l.MaxPageSize}
	w.walk(op.SelectionSet, 1, map[string]bool{})
	if w.badCursor != "" {
		return &gqlerror.Error{Message: fmt.Sprintf("%s is not a valid cursor", w.badCursor),
			Extensions: map[string]any{"code": CodeBadUserInput, "field": w.badCursor}}
	}
	if w.badPage != "" {
		return limitError(CodePageSizeTooLarge, "%s: first and last must be between 0 and %d", w.badPage, l.MaxPageSize)
	}
	if l.MaxDepth > 0 && w.depth > l.MaxDepth {
		return limitError(CodeTooDeep, "the operation is %d levels deep; the limit is %d", w.depth, l.MaxDepth)
	}
	if l.MaxAliases > 0 && w.aliases > l.MaxAliases {
		return limitError(CodeTooManyAliases, "the operation has %d aliased fields; the limit is %d", w.aliases, l.MaxAliases)
	}
	return nil
}

func limitError(code, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": code}}
}

type walker struct {
	doc            *ast.QueryDocument
	vars           map[string]any
	maxPage        int
	depth, aliases int
	badPage        string // a field asking for too large a page
	badCursor      string // an argument with a malformed cursor
}

// validCursor reports whether v decodes as a connection cursor (entgql's
// decoder can panic on some malformed input; nothing reaches it unchecked).
func validCursor(v any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	var c entgql.Cursor[uuid.UUID]
	return c.UnmarshalGQL(v) == nil
}

func (w *walker) checkCursors(f *ast.Field) {
	if w.badCursor != "" {
		return
	}
	for _, name := range []string{"after", "before"} {
		a := f.Arguments.ForName(name)
		if a == nil {
			continue
		}
		v, err := a.Value.Value(w.vars)
		if err != nil || v == nil {
			continue
		}
		if !validCursor(v) {
			w.badCursor = f.Name + "." + name
		}
	}
}

func (w *walker) checkPage(f *ast.Field) {
	w.checkCursors(f)
	if w.maxPage <= 0 || w.badPage != "" {
		return
	}
	for _, name := range []string{"first", "last"} {
		a := f.Arguments.ForName(name)
		if a == nil {
			continue
		}
		v, err := a.Value.Value(w.vars)
		if err != nil || v == nil {
			continue
		}
		var n float64
		switch x := v.(type) {
		case int:
			n = float64(x)
		case int64:
			n = float64(x)
		case float64:
			n = x
		case json.Number:
			n, _ = x.Float64()
		default:
			continue
		}
		if n < 0 || n > float64(w.maxPage) {
			w.badPage = f.Name
		}
	}
}

// walk visits selections; fragments on the current path are not entered
// twice (validation already rejects fragment cycles).
func (w *walker) walk(set ast.SelectionSet, depth int, path map[string]bool) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				// Introspection (its standard query nests TypeRef 8 levels)
				// is not data: production mode limits it to admins instead.
				continue
			}
			if s.Alias != "" && s.Alias != s.Name {
				w.aliases++
			}
			w.checkPage(s)
			if depth > w.depth {
				w.depth = depth
			}
			if len(s.SelectionSet) > 0 {
				w.walk(s.SelectionSet, depth+1, path)
			}
		case *ast.InlineFragment:
			w.walk(s.SelectionSet, depth, path)
		case *ast.FragmentSpread:
			if path[s.Name] {
				continue
			}
			if f := w.doc.Fragments.ForName(s.Name); f != nil {
				path[s.Name] = true
				w.walk(f.SelectionSet, depth, path)
				delete(path, s.Name)
			}
		}
	}
}

func countRoots(set ast.SelectionSet, doc *ast.QueryDocument, seen map[string]bool) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			n++
		case *ast.InlineFragment:
			n += countRoots(s.SelectionSet, doc, seen)
		case *ast.FragmentSpread:
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			if f := doc.Fragments.ForName(s.Name); f != nil {
				n += countRoots(f.SelectionSet, doc, seen)
			}
		}
	}
	return n
}

// pageSize caps first/last of every connection field: larger values are
// refused, and a connection asked for without either gets first = max.
func pageSize(limit int) graphql.FieldMiddleware {
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || fc.Args == nil || limit <= 0 {
			return next(ctx)
		}
		first, hasFirst := fc.Args["first"]
		last, hasLast := fc.Args["last"]
		if !hasFirst && !hasLast {
			return next(ctx)
		}
		if _, paged := fc.Args["after"]; !paged {
			return next(ctx)
		}
		f, _ := first.(*int)
		l, _ := last.(*int)
		for _, p := range []*int{f, l} {
			if p != nil && (*p < 0 || *p > limit) {
				return nil, &gqlerror.Error{Message: fmt.Sprintf("first and last must be between 0 and %d", limit),
					Extensions: map[string]any{"code": CodePageSizeTooLarge}}
			}
		}
		if f == nil && l == nil {
			n := limit
			fc.Args["first"] = &n
		}
		return next(ctx)
	}
}

// introspection allows introspection to everyone outside production, and to
// admins only in production.
type introspection struct{ production bool }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = introspection{}

func (introspection) ExtensionName() string { return "KilnIntrospection" }

func (introspection) Validate(graphql.ExecutableSchema) error { return nil }

func (i introspection) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	v := graph.ViewerFrom(ctx)
	oc.DisableIntrospection = i.production && (v == nil || !v.Admin)
	return nil
}

// CodeNotAllowed is the error code of an operation outside the allow-list.
const CodeNotAllowed = "PERSISTED_QUERY_NOT_ALLOWED"

// allowList accepts only registered operations (admins excepted): by text,
// or by the sha256 hash of the automatic-persisted-query extension.
type allowList struct{ ops map[string]string }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = allowList{}

func (allowList) ExtensionName() string { return "KilnAllowList" }

func (allowList) Validate(graphql.ExecutableSchema) error { return nil }

func (a allowList) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if v := graph.ViewerFrom(ctx); v != nil && v.Admin {
		return nil
	}
	if p.Query == "" {
		if pq, ok := p.Extensions["persistedQuery"].(map[string]any); ok {
			if h, _ := pq["sha256Hash"].(string); h != "" {
				if q, ok := a.ops[h]; ok {
					p.Query = q
					return nil
				}
			}
		}
		return limitError(CodeNotAllowed, "only registered operations are accepted")
	}
	sum := sha256.Sum256([]byte(p.Query))
	if _, ok := a.ops[hex.EncodeToString(sum[:])]; ok {
		return nil
	}
	return limitError(CodeNotAllowed, "only registered operations are accepted; add it to schema/operations and regenerate")
}
