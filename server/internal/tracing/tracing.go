// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables. It is off unless OTEL_TRACES_EXPORTER is "otlp"
// (OTLP over HTTP; OTEL_EXPORTER_OTLP_ENDPOINT and friends apply) or
// "console" (spans as JSON on standard output). It also provides the
// GraphQL extension that traces operations and resolvers; SQL statements
// are traced by the database driver through the global tracer.
package tracing

import (
	"context"
	"fmt"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Setup installs the tracer provider the environment asks for. It returns
// whether tracing is on and a function that flushes and stops it.
func Setup(ctx context.Context, getenv func(string) string, stdout io.Writer) (bool, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	var exp sdktrace.SpanExporter
	var err error
	switch v := getenv("OTEL_TRACES_EXPORTER"); v {
	case "", "none":
		return false, noop, nil
	case "otlp":
		exp, err = otlptracehttp.New(ctx)
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(stdout))
	default:
		return false, noop, fmt.Errorf("OTEL_TRACES_EXPORTER must be otlp, console or none, got %q", v)
	}
	if err != nil {
		return false, noop, fmt.Errorf("tracing exporter: %w", err)
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "kiln"
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return true, tp.Shutdown, nil
}

var tracer = otel.Tracer("kiln/graphql")

// GraphQL traces operations and the fields that run resolvers.
type GraphQL struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.FieldInterceptor
} = GraphQL{}

// ExtensionName implements graphql.HandlerExtension.
func (GraphQL) ExtensionName() string { return "KilnTracing" }

// Validate implements graphql.HandlerExtension.
func (GraphQL) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation starts a span per operation.
func (GraphQL) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	name, typ := oc.OperationName, "unknown"
	if oc.Operation != nil {
		name, typ = oc.Operation.Name, string(oc.Operation.Operation)
	}
	ctx, span := tracer.Start(ctx, "graphql."+typ+" "+name, trace.WithAttributes(
		attribute.String("graphql.operation.name", name), attribute.String("graphql.operation.type", typ)))
	if typ != "subscription" {
		defer span.End()
	} else {
		go func() { <-ctx.Done(); span.End() }()
	}
	return next(ctx)
}

// InterceptField starts a span per resolver (not per plain field access).
func (GraphQL) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !fc.IsResolver {
		return next(ctx)
	}
	ctx, span := tracer.Start(ctx, "graphql.resolve "+fc.Object+"."+fc.Field.Name)
	defer span.End()
	res, err := next(ctx)
	if err != nil {
		span.SetStatus(codes.Error, "resolver error")
	}
	return res, err
}
