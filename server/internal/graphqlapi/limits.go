package graphqlapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"kiln/runtime/access"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Limits bound what one request may ask for. Every limit is checked after
// parsing and validation and before any resolver runs.
type Limits struct {
	MaxDepth      int // selection depth, through fragments
	MaxAliases    int // aliased fields in the operation, through fragments
	MaxRootFields int // top-level fields of the operation
	MaxComplexity int // cost: one per field, times the items of the lists it is in
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
	CodeTooComplex       = "COMPLEXITY_LIMIT_EXCEEDED"
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
	cost := w.walk(op.SelectionSet, 1, false, map[string]bool{})
	if w.badCursor != "" {
		return &gqlerror.Error{Message: fmt.Sprintf("%s is not a valid cursor", w.badCursor),
			Extensions: map[string]any{"code": CodeBadUserInput, "field": w.badCursor}}
	}
	if w.otherOrder != "" {
		return &gqlerror.Error{Message: "the cursor was made for another orderBy; use cursors with the ordering that produced them",
			Extensions: map[string]any{"code": CodeBadUserInput, "field": w.otherOrder}}
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
	if l.MaxComplexity > 0 && cost > l.MaxComplexity {
		e := limitError(CodeTooComplex, "the operation may cost %d (each field 1, times the page size or number of ids of the lists it is in); the limit is %d", cost, l.MaxComplexity)
		e.Extensions["cost"], e.Extensions["limit"] = cost, l.MaxComplexity
		return e
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
	otherOrder     string // a cursor made for another orderBy
}

// decodeCursor decodes a connection cursor (entgql's decoder can panic on
// some malformed input; nothing reaches it unchecked).
func decodeCursor(v any) (c entgql.Cursor[uuid.UUID], ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return c, c.UnmarshalGQL(v) == nil
}

// orderCount is the number of orderings of a connection field: its
// orderBy items, or one (the default order by id).
func (w *walker) orderCount(f *ast.Field) int {
	a := f.Arguments.ForName("orderBy")
	if a == nil {
		return 1
	}
	v, err := a.Value.Value(w.vars)
	if err != nil || v == nil {
		return 1
	}
	if list, ok := v.([]any); ok {
		return max(len(list), 1)
	}
	return 1 // a single ordering given without a list
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
		c, ok := decodeCursor(v)
		if !ok {
			w.badCursor = f.Name + "." + name
			continue
		}
		// A cursor holds one value per ordering of the page it came from.
		if values, isList := c.Value.([]any); c.Value != nil && (!isList || len(values) != w.orderCount(f)) {
			w.otherOrder = f.Name + "." + name
		}
	}
}

// checkPage checks first and last of f and returns the number of items f
// may return per list: first or last (the page size when the connection
// has neither), the number of ids of nodes(ids:), else 1.
func (w *walker) checkPage(f *ast.Field) int {
	w.checkCursors(f)
	n := 1
	if f.Definition != nil && f.Definition.Arguments.ForName("first") != nil && w.maxPage > 0 {
		n = w.maxPage // without first and last, a connection returns a full page
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
		var x float64
		switch y := v.(type) {
		case int:
			x = float64(y)
		case int64:
			x = float64(y)
		case float64:
			x = y
		case json.Number:
			x, _ = y.Float64()
		default:
			continue
		}
		if w.maxPage > 0 && (x < 0 || x > float64(w.maxPage)) && w.badPage == "" {
			w.badPage = f.Name
		}
		if x >= 0 && x < float64(n) || w.maxPage <= 0 {
			n = int(min(x, 1e6))
		}
	}
	if a := f.Arguments.ForName("ids"); a != nil {
		if v, err := a.Value.Value(w.vars); err == nil {
			if ids, ok := v.([]any); ok {
				n = max(len(ids), 1)
			}
		}
	}
	return n
}

// walk visits selections and returns their cost: each field costs one, and
// what a list returns costs once per item (the edges and nodes of a
// connection times its page size, the fields of nodes(ids:) times the
// number of ids), so nested lists multiply. Fragments on the current path
// are not entered twice (validation already rejects fragment cycles).
// Introspection fields count for aliases and cost, not for depth (the
// standard introspection query nests TypeRef 8 levels).
func (w *walker) walk(set ast.SelectionSet, depth int, introspection bool, path map[string]bool) int {
	cost := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				w.aliases++
			}
			intro := introspection || strings.HasPrefix(s.Name, "__") && s.Name != "__typename"
			per := 1
			if !intro {
				per = w.checkPage(s)
				if depth > w.depth {
					w.depth = depth
				}
			}
			cost++
			if len(s.SelectionSet) == 0 {
				continue
			}
			if s.Arguments.ForName("ids") != nil {
				cost = satAdd(cost, satMul(per, w.walk(s.SelectionSet, depth+1, intro, path)))
				continue
			}
			// A connection: its edges and nodes come once per item.
			for _, c := range s.SelectionSet {
				cc := w.walk(ast.SelectionSet{c}, depth+1, intro, path)
				if f, ok := c.(*ast.Field); ok && (f.Name == "edges" || f.Name == "nodes") {
					cc = satMul(cc, per)
				}
				cost = satAdd(cost, cc)
			}
		case *ast.InlineFragment:
			cost = satAdd(cost, w.walk(s.SelectionSet, depth, introspection, path))
		case *ast.FragmentSpread:
			if path[s.Name] {
				continue
			}
			if f := w.doc.Fragments.ForName(s.Name); f != nil {
				path[s.Name] = true
				cost = satAdd(cost, w.walk(f.SelectionSet, depth, introspection, path))
				delete(path, s.Name)
			}
		}
	}
	return cost
}

const maxCost = 1 << 40

func satAdd(a, b int) int { return min(a+b, maxCost) }

func satMul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > maxCost/b {
		return maxCost
	}
	return a * b
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

// ErrClientGone is the error of the fields left when the client went away
// (its request's context is cancelled): no more work is done for it.
var ErrClientGone = errors.New("the client went away")

// fieldGuard runs before every field: once the request's context is
// cancelled (the client disconnected, or the server shuts down) no field is
// resolved any more; and it caps first/last of every connection field:
// larger values are refused, and a connection asked for without either
// gets first = max.
func fieldGuard(limit int) graphql.FieldMiddleware {
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		if ctx.Err() != nil {
			return nil, ErrClientGone
		}
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
	v := access.From(ctx)
	oc.DisableIntrospection = i.production && (v == nil || !v.Admin)
	if oc.DisableIntrospection && oc.Operation != nil && introspects(oc.Operation.SelectionSet, oc.Doc, map[string]bool{}) {
		return limitError(CodeIntrospectionDisabled, "introspection is off in production (admins keep it: send X-Kiln-Admin-Secret)")
	}
	return nil
}

// CodeIntrospectionDisabled answers __schema and __type in production.
const CodeIntrospectionDisabled = "INTROSPECTION_DISABLED"

// introspects reports whether a selection (through fragments) asks for
// __schema or __type (__typename is not introspection).
func introspects(set ast.SelectionSet, doc *ast.QueryDocument, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" || introspects(s.SelectionSet, doc, seen) {
				return true
			}
		case *ast.InlineFragment:
			if introspects(s.SelectionSet, doc, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if !seen[s.Name] {
				seen[s.Name] = true
				if f := doc.Fragments.ForName(s.Name); f != nil && introspects(f.SelectionSet, doc, seen) {
					return true
				}
			}
		}
	}
	return false
}

// plainKey marks requests over plain HTTP (not a WebSocket, not SSE).
type plainKey struct{}

// streams refuses subscriptions sent over plain HTTP: they would wait for
// the first event and end there. They need a WebSocket or SSE.
type streams struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = streams{}

func (streams) ExtensionName() string { return "KilnStreams" }

func (streams) Validate(graphql.ExecutableSchema) error { return nil }

func (streams) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if plain, _ := ctx.Value(plainKey{}).(bool); plain && oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		return limitError(CodeBadRequest, "subscriptions need a WebSocket (graphql-transport-ws) or Server-Sent Events (POST with Accept: text/event-stream)")
	}
	return nil
}

// CodeNotAllowed is the error code of an operation outside the allow-list.
const CodeNotAllowed = "PERSISTED_QUERY_NOT_ALLOWED"

// allowList accepts only registered operations (admins excepted): by text,
// or by the sha256 hash of the automatic-persisted-query extension. Kiln's
// built-in operations (every root field from auth.graphql and
// files.graphql: signIn, refreshSession, createUpload, viewer, ...) are
// always accepted as text, so that apps keep signing in and uploading.
type allowList struct {
	ops     map[string]string
	builtin *builtinCheck // filled from the schema by Validate
}

func newAllowList(ops map[string]string, maxTokens int) allowList {
	return allowList{ops: ops, builtin: newBuiltinCheck(maxTokens)}
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = allowList{}

func (allowList) ExtensionName() string { return "KilnAllowList" }

func (a allowList) Validate(es graphql.ExecutableSchema) error {
	a.builtin.load(es)
	return nil
}

func (a allowList) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if v := access.From(ctx); v != nil && v.Admin {
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
	hash := hex.EncodeToString(sum[:])
	if _, ok := a.ops[hash]; ok {
		return nil
	}
	if a.builtin.allows(ctx, hash, p.Query) {
		return nil
	}
	return limitError(CodeNotAllowed, "only registered operations are accepted; add it to schema/operations and regenerate")
}
