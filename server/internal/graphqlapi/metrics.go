package graphqlapi

import (
	"context"
	"regexp"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Metrics are the Prometheus metrics of the GraphQL endpoint.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	names    sync.Map // operation names seen, to bound label cardinality
	nNames   int
	mu       sync.Mutex
}

// maxOperationNames bounds distinct operation-name labels; later names are
// counted as "other".
const maxOperationNames = 500

var operationName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_graphql_requests_total",
			Help: "GraphQL operations by operation name, type and outcome (ok, error, rejected).",
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

func (m *Metrics) label(name string) string {
	switch {
	case name == "":
		return "anonymous"
	case !operationName.MatchString(name):
		return "other"
	}
	if _, ok := m.names.Load(name); ok {
		return name
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nNames >= maxOperationNames {
		return "other"
	}
	m.nNames++
	m.names.Store(name, true)
	return name
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = (*Metrics)(nil)

// ExtensionName implements graphql.HandlerExtension.
func (*Metrics) ExtensionName() string { return "KilnMetrics" }

// Validate implements graphql.HandlerExtension.
func (*Metrics) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse counts every response (each event of a subscription
// counts as one).
func (m *Metrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	start := time.Now()
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	oc := graphql.GetOperationContext(ctx)
	typ, name := "unknown", oc.OperationName
	if oc.Operation != nil {
		typ, name = string(oc.Operation.Operation), oc.Operation.Name
	}
	outcome := "ok"
	if len(resp.Errors) > 0 {
		outcome = "error"
		if resp.Data == nil && rejected(resp.Errors) {
			outcome = "rejected"
		}
	}
	m.requests.WithLabelValues(m.label(name), typ, outcome).Inc()
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
