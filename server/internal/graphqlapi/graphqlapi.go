// Package graphqlapi serves the generated GraphQL schema over HTTP (POST,
// and GET for queries, per GraphQL-over-HTTP), runs each mutation in one
// transaction, and turns errors into GraphQL errors with extensions.code,
// masking internal ones.
package graphqlapi

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"syscall"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"kiln/runtime/app"
	"kiln/runtime/realtime"
	"kiln/runtime/validate"
	"kiln/server/internal/database"
	"kiln/server/internal/request"
)

// Error codes in extensions.code.
const (
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeConflict        = "CONFLICT"
	CodeNotFound        = "NOT_FOUND"
	CodeInternal        = "INTERNAL_SERVER_ERROR"
	CodeForbidden       = "FORBIDDEN"
	CodeRateLimited     = "RATE_LIMITED"
	CodeUnavailable     = "UNAVAILABLE"
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodeBadRequest: the request is not a GraphQL request (a body that is
	// not a JSON object with a string query, object variables, ...).
	CodeBadRequest = "BAD_REQUEST"
	// CodeTooLarge: the request body is larger than the limit (HTTP 413).
	CodeTooLarge = "REQUEST_TOO_LARGE"
)

// Options configure the handler.
type Options struct {
	Limits Limits
	// Production turns introspection (except for admins) and field
	// suggestions off.
	Production bool
	// MaxBodyBytes bounds the request body; larger requests get 413.
	MaxBodyBytes int64
	// MaxMultipartBytes bounds multipart requests (file uploads, GraphQL
	// multipart request spec) instead of MaxBodyBytes; 0 turns them off.
	MaxMultipartBytes int64
	// WebSocket serves subscriptions over graphql-transport-ws (nil: none).
	WebSocket graphql.Transport
	// Metrics, when set, count operations and their latency.
	Metrics *Metrics
	// AllowList, when set, accepts only these operations (by sha256 of
	// their text) from everyone but admins.
	AllowList map[string]string
	// Tracing is the OpenTelemetry extension (nil: off).
	Tracing graphql.HandlerExtension
	// Idempotency, when set, runs after every other check, just before a
	// mutation executes (see the idempotency package).
	Idempotency graphql.HandlerExtension
}

// New returns the GraphQL HTTP handler.
func New(parts *app.Parts, log *slog.Logger, o Options) http.Handler {
	srv := handler.New(parts.Schema)
	if o.WebSocket != nil {
		srv.AddTransport(o.WebSocket)
	}
	srv.AddTransport(transport.SSE{})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	if o.MaxMultipartBytes > 0 {
		srv.AddTransport(transport.MultipartForm{MaxUploadSize: o.MaxMultipartBytes, MaxMemory: 1 << 20})
	}
	srv.AddTransport(unsupported{}) // last: what no transport above takes
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if o.Limits.MaxTokens > 0 {
		srv.SetParserTokenLimit(o.Limits.MaxTokens)
	}
	srv.SetDisableSuggestion(o.Production)
	if o.Metrics != nil {
		srv.Use(o.Metrics)
	}
	if o.Tracing != nil {
		srv.Use(o.Tracing)
	}
	if o.AllowList != nil {
		srv.Use(newAllowList(o.AllowList, o.Limits.MaxTokens))
	} else {
		srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	}
	srv.Use(introspection{production: o.Production})
	srv.Use(streams{})
	srv.Use(shapeLimits{o.Limits})
	srv.Use(newOperationTx(parts.Tx))
	srv.Use(realtime.Resync{})
	if o.Idempotency != nil {
		srv.Use(o.Idempotency)
	}
	srv.AroundFields(fieldGuard(o.Limits.MaxPageSize))
	srv.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		return present(ctx, err, parts.Error, log)
	})
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(v), "request_id", request.ID(ctx), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		limit := o.MaxBodyBytes
		if o.MaxMultipartBytes > 0 && strings.HasPrefix(req.Header.Get("Content-Type"), "multipart/form-data") {
			limit = o.MaxMultipartBytes
		}
		if limit > 0 {
			if req.ContentLength > limit {
				tooLarge(w, limit)
				return
			}
			req.Body = http.MaxBytesReader(w, req.Body, limit)
		}
		if req.Header.Get("Upgrade") == "" && !strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
			req = req.WithContext(context.WithValue(req.Context(), plainKey{}, true))
		}
		if req.Method == http.MethodPost && isJSON(req) {
			body, err := io.ReadAll(req.Body)
			var mb *http.MaxBytesError
			switch {
			case errors.As(err, &mb):
				// A chunked body (no Content-Length) over the limit.
				tooLarge(w, limit)
				return
			case err != nil:
				log.InfoContext(req.Context(), "bad request: the body could not be read", "err", err, "request_id", request.ID(req.Context()))
				writeError(w, http.StatusBadRequest, CodeBadRequest, "the request body could not be read")
				return
			}
			if msg := checkParams(body); msg != "" {
				log.InfoContext(req.Context(), "bad request", "reason", msg, "request_id", request.ID(req.Context()))
				writeError(w, http.StatusBadRequest, CodeBadRequest, msg)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		srv.ServeHTTP(w, req)
	})
}

// unsupported is the transport of last resort: a request no other
// transport takes gets an answer that says what to send.
type unsupported struct{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	msg := "send a POST with Content-Type: application/json (multipart/form-data for uploads), a GET with ?query= for queries, " +
		"a WebSocket (graphql-transport-ws) or Server-Sent Events (Accept: text/event-stream) for subscriptions"
	status := http.StatusUnsupportedMediaType
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		status = http.StatusMethodNotAllowed
	}
	writeError(w, status, CodeBadRequest, msg)
}

// operationTx is entgql's Transactioner, with two fixes: responses without
// an operation (a request refused before it was parsed, whose context
// entgql's would read and panic on) pass by, and its SkipTxFunc sees the
// root fields through fragments (entgql's SkipIfHasFields looks at the
// top-level selections only: a signIn inside a fragment ran under an outer
// transaction while opening its own, which on SQLite waited for the outer
// one's lock until busy_timeout).
type operationTx struct{ entgql.Transactioner }

func newOperationTx(t entgql.Transactioner) operationTx {
	if skip := t.SkipTxFunc; skip != nil {
		t.SkipTxFunc = func(op *ast.OperationDefinition) bool { return skip(flatRoots(op)) }
	}
	return operationTx{t}
}

// flatRoots returns op with its root fields gathered through inline
// fragments and fragment spreads (as validation resolved them).
func flatRoots(op *ast.OperationDefinition) *ast.OperationDefinition {
	flat := *op
	flat.SelectionSet = nil
	seen := map[*ast.FragmentDefinition]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				flat.SelectionSet = append(flat.SelectionSet, s)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Definition != nil && !seen[s.Definition] {
					seen[s.Definition] = true
					walk(s.Definition.SelectionSet)
				}
			}
		}
	}
	walk(op.SelectionSet)
	return &flat
}

// InterceptResponse implements graphql.ResponseInterceptor.
func (t operationTx) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	return t.Transactioner.InterceptResponse(ctx, next)
}

// isJSON reports whether the request body is JSON (POST, and Server-Sent
// Events subscriptions).
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// checkParams returns why body is not a GraphQL-over-HTTP request (a JSON
// object whose query and operationName are strings, and variables and
// extensions objects, each possibly null or missing), or "".
func checkParams(body []byte) string {
	const shape = `the request body must be a JSON object such as {"query": "...", "variables": {...}}`
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return shape
	}
	var p struct {
		Query         json.RawMessage `json:"query"`
		OperationName json.RawMessage `json:"operationName"`
		Variables     json.RawMessage `json:"variables"`
		Extensions    json.RawMessage `json:"extensions"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Sprintf("the request body is not valid JSON (at byte %d): %s", syn.Offset, shape)
		}
		return "the request body is not valid JSON: " + shape
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		kind byte
	}{{"query", p.Query, '"'}, {"operationName", p.OperationName, '"'}, {"variables", p.Variables, '{'}, {"extensions", p.Extensions, '{'}} {
		if len(f.raw) == 0 || string(f.raw) == "null" || f.raw[0] == f.kind {
			continue
		}
		if f.kind == '"' {
			return f.name + " must be a string"
		}
		return f.name + " must be a JSON object"
	}
	return ""
}

func tooLarge(w http.ResponseWriter, limit int64) {
	writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit))
}

// writeError answers a request refused before GraphQL execution with a
// GraphQL-shaped error.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"message": msg, "extensions": map[string]any{"code": code}}}})
}

var camel = gen.Funcs["camel"].(func(string) string)

// present maps an error to a GraphQL error with a code.
func present(ctx context.Context, err error, appError func(error) error, log *slog.Logger) *gqlerror.Error {
	var gqlErr *gqlerror.Error
	if errors.As(err, &gqlErr) && gqlErr.Err == nil {
		// Parse, validation and argument errors from gqlgen carry a code;
		// entgql's own (such as first with last) are about the input too.
		if _, ok := gqlErr.Extensions["code"]; !ok {
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{}
			}
			gqlErr.Extensions["code"] = CodeBadUserInput
		}
		return gqlErr
	}
	ge := graphql.DefaultErrorPresenter(ctx, err)
	set := func(code, msg string) *gqlerror.Error {
		ge.Message = msg
		if ge.Extensions == nil {
			ge.Extensions = map[string]any{}
		}
		ge.Extensions["code"] = code
		return ge
	}
	// A validator that does not know its field (a scalar such as ID) is
	// named by the error's path.
	var verr *validate.Error
	if errors.As(err, &verr) && verr.Field == "" && len(ge.Path) > 0 {
		if name, ok := ge.Path[len(ge.Path)-1].(ast.PathName); ok {
			err = &validate.Error{Field: string(name), Rule: verr.Rule}
		}
	}
	// The app's layers (ent) name their errors in the same contract.
	if appError != nil {
		err = appError(err)
	}
	// The one contract: an error that knows its code and extensions.
	var ae apierror.Error
	if errors.As(err, &ae) && ae.Code() != "" {
		set(ae.Code(), ae.Error())
		for k, v := range ae.Extensions() {
			ge.Extensions[k] = v
		}
		return ge
	}
	// Constraint violations come from the database driver.
	if c := constraintOf(err); c != nil {
		return constraint(set, ge, c)
	}
	if code, ok := ge.Extensions["code"]; ok && code != "" && ge.Err != nil {
		if _, isGQL := ge.Err.(*gqlerror.Error); isGQL {
			return ge
		}
	}
	// An argument or input value that fails to parse (a custom scalar such
	// as Time or Cursor, which validation cannot check) has a path below the
	// field's own path.
	if fc := graphql.GetFieldContext(ctx); fc != nil && len(ge.Path) > len(fc.Path()) {
		var inner error = err
		var g *gqlerror.Error
		if errors.As(err, &g) && g.Err != nil {
			inner = g.Err
		}
		field := ge.Path[len(fc.Path()):].String()
		set(CodeBadUserInput, fmt.Sprintf("invalid value for %s: %v", field, inner))
		ge.Extensions["field"] = field
		return ge
	}
	if errors.Is(err, database.ErrPoolExhausted) {
		log.WarnContext(ctx, "database pool exhausted", "err", err, "request_id", request.ID(ctx))
		return set(CodeUnavailable, "the server is busy (no database connection free); retry shortly")
	}
	if unavailable(err) {
		log.WarnContext(ctx, "database unavailable", "err", err, "request_id", request.ID(ctx))
		return set(CodeUnavailable, "the database is unavailable; retry shortly")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return set("TIMEOUT", "the request was cancelled or took too long")
	}
	userID := ""
	if v := access.From(ctx); v != nil {
		userID = v.ID.String()
	}
	log.ErrorContext(ctx, "internal error", "err", err, "path", ge.Path.String(), "request_id", request.ID(ctx), "user_id", userID)
	set(CodeInternal, "internal error")
	ge.Extensions["requestId"] = request.ID(ctx)
	return ge
}

// constraintOf returns the database constraint violation err holds, if any:
// a PostgreSQL integrity error (class 23) or an SQLite constraint error.
func constraintOf(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "23") {
		return pe
	}
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return se
	}
	return nil
}

// constraint classifies a database constraint violation without exposing SQL.
func constraint(set func(code, msg string) *gqlerror.Error, ge *gqlerror.Error, c error) *gqlerror.Error {
	msg := c.Error()
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "unique") || strings.Contains(low, "duplicate key") || strings.Contains(low, "23505"):
		set(CodeConflict, "a record with the same unique value already exists")
		if f := uniqueField(msg); f != "" {
			ge.Extensions["field"] = f
		}
		return ge
	case strings.Contains(low, "foreign key") || strings.Contains(low, "23503"):
		return set(CodeBadUserInput, "a referenced record does not exist, or other records still reference this one")
	}
	return set(CodeBadUserInput, "the change violates a constraint")
}

// uniqueField extracts the column from "UNIQUE constraint failed: t.col"
// (SQLite) or `constraint "t_col_key"` (PostgreSQL), as a GraphQL name.
func uniqueField(msg string) string {
	if i := strings.Index(msg, "UNIQUE constraint failed: "); i >= 0 {
		rest := msg[i+len("UNIQUE constraint failed: "):]
		rest, _, _ = strings.Cut(rest, ",")
		rest, _, _ = strings.Cut(rest, " ")
		if _, col, ok := strings.Cut(rest, "."); ok {
			return camel(strings.TrimRight(col, ")"))
		}
	}
	return ""
}

// unavailable reports whether err means the database cannot be reached
// (connection refused or lost, server shutting down or starting).
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	var ne *net.OpError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), pgconn.Timeout(err):
		return true
	case errors.As(err, &pe):
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err)
}
