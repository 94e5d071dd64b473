// Package graphqlapi serves the generated GraphQL schema over HTTP (POST,
// and GET for queries, per GraphQL-over-HTTP), runs each mutation in one
// transaction, and turns errors into GraphQL errors with extensions.code,
// masking internal ones.
package graphqlapi

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strings"

	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"kiln/ent"
	"kiln/ent/schema/validate"
	"kiln/graph"
	"kiln/server/internal/auth"
	"kiln/server/internal/database"
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
)

// RequestIDFunc returns the request id stored in a context.
type RequestIDFunc func(context.Context) string

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
}

// New returns the GraphQL HTTP handler.
func New(r *graph.Resolver, log *slog.Logger, requestID RequestIDFunc, o Options) http.Handler {
	srv := handler.New(graph.NewSchema(r))
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
		srv.Use(allowList{ops: o.AllowList})
	} else {
		srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	}
	srv.Use(introspection{production: o.Production})
	srv.Use(shapeLimits{o.Limits})
	if o.Limits.MaxComplexity > 0 {
		srv.Use(extension.FixedComplexityLimit(o.Limits.MaxComplexity))
	}
	srv.Use(r.Transactioner())
	srv.Use(graph.Resync{})
	srv.AroundFields(pageSize(o.Limits.MaxPageSize))
	srv.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		return present(ctx, err, log, requestID)
	})
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(v), "request_id", requestID(ctx), "stack", string(debug.Stack()))
		return errors.New("internal error")
	})
	if o.MaxBodyBytes <= 0 {
		return srv
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		limit := o.MaxBodyBytes
		if o.MaxMultipartBytes > 0 && strings.HasPrefix(req.Header.Get("Content-Type"), "multipart/form-data") {
			limit = o.MaxMultipartBytes
		}
		if req.ContentLength > limit {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"errors":[{"message":"the request body is larger than %d bytes","extensions":{"code":"REQUEST_TOO_LARGE"}}]}`, limit)
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, limit)
		srv.ServeHTTP(w, req)
	})
}

var camel = gen.Funcs["camel"].(func(string) string)

// present maps an error to a GraphQL error with a code.
func present(ctx context.Context, err error, log *slog.Logger, requestID RequestIDFunc) *gqlerror.Error {
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
	var (
		verr  *validate.Error
		eval  *ent.ValidationError
		conf  *graph.ConflictError
		nf    *graph.NotFoundError
		cons  *ent.ConstraintError
		enf   *ent.NotFoundError
		forb  *graph.ForbiddenError
		rl    *auth.RateLimitedError
		ierr  *auth.InputError
		coded interface{ Code() string }
		unau  *graph.UnauthenticatedError
	)
	switch {
	case errors.As(err, &verr):
		field := verr.Field
		if field == "" && len(ge.Path) > 0 {
			if name, ok := ge.Path[len(ge.Path)-1].(ast.PathName); ok {
				field = string(name)
			}
		}
		set(CodeBadUserInput, (&validate.Error{Field: field, Rule: verr.Rule}).Error())
		ge.Extensions["field"] = field
		return ge
	case errors.As(err, &eval):
		set(CodeBadUserInput, fmt.Sprintf("%s is invalid", camel(eval.Name)))
		ge.Extensions["field"] = camel(eval.Name)
		return ge
	case errors.As(err, &conf):
		set(CodeConflict, conf.Error())
		if conf.Current >= 0 {
			ge.Extensions["currentVersion"] = conf.Current
		}
		return ge
	case errors.As(err, &rl):
		set(CodeRateLimited, rl.Error())
		ge.Extensions["retryAfter"] = int(math.Ceil(rl.RetryAfter.Seconds()))
		return ge
	case errors.As(err, &ierr):
		set(CodeBadUserInput, ierr.Field+" "+ierr.Message)
		ge.Extensions["field"] = ierr.Field
		return ge
	case errors.As(err, &coded) && coded.Code() != "":
		var ext interface{ Extensions() map[string]any }
		if !errors.As(err, &ext) {
			return set(coded.Code(), err.Error())
		}
		set(coded.Code(), fmt.Sprint(coded))
		{
			for k, v := range ext.Extensions() {
				ge.Extensions[k] = v
			}
		}
		return ge
	case errors.As(err, &forb):
		return set(CodeForbidden, forb.Error())
	case errors.As(err, &unau):
		return set(CodeUnauthenticated, unau.Error())
	case errors.As(err, &nf):
		return set(CodeNotFound, nf.Error())
	case errors.As(err, &enf):
		return set(CodeNotFound, "not found")
	case errors.As(err, &cons):
		return constraint(set, ge, cons)
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
	if strings.Contains(err.Error(), "cursor values length") {
		return set(CodeBadUserInput, "the cursor was made for another orderBy; use cursors with the ordering that produced them")
	}
	if strings.Contains(err.Error(), "empty predicate") {
		return set(CodeBadUserInput, "where has an empty condition (an empty and, or or object)")
	}
	if errors.Is(err, database.ErrPoolExhausted) {
		log.WarnContext(ctx, "database pool exhausted", "err", err, "request_id", requestID(ctx))
		return set(CodeUnavailable, "the server is busy (no database connection free); retry shortly")
	}
	if unavailable(err) {
		log.WarnContext(ctx, "database unavailable", "err", err, "request_id", requestID(ctx))
		return set(CodeUnavailable, "the database is unavailable; retry shortly")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return set("TIMEOUT", "the request was cancelled or took too long")
	}
	userID := ""
	if v := graph.ViewerFrom(ctx); v != nil {
		userID = v.ID.String()
	}
	log.ErrorContext(ctx, "internal error", "err", err, "path", ge.Path.String(), "request_id", requestID(ctx), "user_id", userID)
	set(CodeInternal, "internal error")
	ge.Extensions["requestId"] = requestID(ctx)
	return ge
}

// constraint classifies a database constraint violation without exposing SQL.
func constraint(set func(code, msg string) *gqlerror.Error, ge *gqlerror.Error, c *ent.ConstraintError) *gqlerror.Error {
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
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "conn closed") || strings.Contains(msg, "broken pipe")
}
