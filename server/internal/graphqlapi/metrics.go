package graphqlapi

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Metrics are the Prometheus metrics of the GraphQL endpoint.
//
// The operation label is bounded whatever clients send (over HTTP or
// WebSocket): it is the operation's name when the allow-list (the
// registered operations) has an operation of that name, the built-in root
// field (such as signIn) for an operation made of Kiln's built-in fields
// only, "anonymous" for another unnamed operation, and "other" for any
// other name.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	names    map[string]bool // names of the registered operations
	builtin  builtins        // filled by Validate
}

// NewMetrics registers the metrics on reg. operations are the registered
// operations (graph.Operations) whose names may label requests.
func NewMetrics(reg prometheus.Registerer, operations map[string]string) *Metrics {
	names := map[string]bool{}
	for _, text := range operations {
		doc, err := parser.ParseQuery(&ast.Source{Input: text})
		if err != nil {
			continue
		}
		for _, op := range doc.Operations {
			if op.Name != "" {
				names[op.Name] = true
			}
		}
	}
	m := &Metrics{names: names, builtin: builtins{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_graphql_requests_total",
			Help: "GraphQL operations by operation name, type and outcome (ok, error, rejected, cancelled).",
		}, []string{"operation", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_graphql_request_duration_seconds",
			Help:    "Time to produce a GraphQL response, by operation type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"type"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// label is the operation label of an operation (see Metrics).
func (m *Metrics) label(oc *graphql.OperationContext) string {
	op := oc.Operation
	if op == nil {
		if m.names[oc.OperationName] {
			return oc.OperationName
		}
		return "other"
	}
	if m.names[op.Name] {
		return op.Name
	}
	if f := m.builtin.rootField(oc.Doc, op); f != "" {
		return f
	}
	if op.Name == "" {
		return "anonymous"
	}
	return "other"
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = (*Metrics)(nil)

// ExtensionName implements graphql.HandlerExtension.
func (*Metrics) ExtensionName() string { return "KilnMetrics" }

// Validate implements graphql.HandlerExtension: it reads the built-in root
// fields from the schema.
func (m *Metrics) Validate(es graphql.ExecutableSchema) error {
	m.builtin.fill(es.Schema())
	return nil
}

// InterceptResponse counts every response (each event of a subscription
// counts as one).
func (m *Metrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	start := time.Now()
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	oc := graphql.GetOperationContext(ctx)
	typ := "unknown"
	if oc.Operation != nil {
		typ = string(oc.Operation.Operation)
	}
	outcome := "ok"
	if len(resp.Errors) > 0 {
		outcome = "error"
		if resp.Data == nil && rejected(resp.Errors) {
			outcome = "rejected"
		}
	}
	if ctx.Err() != nil {
		outcome = "cancelled" // the client went away (or the server is stopping)
	}
	m.requests.WithLabelValues(m.label(oc), typ, outcome).Inc()
	if typ != "subscription" {
		m.duration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	}
	return resp
}

// rejected reports whether the errors are refusals before execution (limits).
func rejected(errs gqlerror.List) bool {
	for _, e := range errs {
		switch e.Extensions["code"] {
		case CodeTooDeep, CodeTooManyAliases, CodeTooManyRoots, CodePageSizeTooLarge, "COMPLEXITY_LIMIT_EXCEEDED":
			return true
		}
	}
	return false
}
