package realtime

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// resyncs marks subscriptions whose next response is the RESYNC error.
var resyncs sync.Map // *graphql.OperationContext -> struct{}

func resync[R any](ctx context.Context, out chan<- R) {
	if oc := graphql.GetOperationContext(ctx); oc != nil {
		resyncs.Store(oc, struct{}{})
	}
	var zero R
	select {
	case out <- zero:
	case <-ctx.Done():
	}
}

// Resync is a gqlgen extension: it turns the last response of a
// subscription that lost events into a RESYNC error, so clients reload and
// subscribe again instead of waiting in silence.
type Resync struct{}

// ExtensionName implements graphql.HandlerExtension.
func (Resync) ExtensionName() string { return "KilnResync" }

// Validate implements graphql.HandlerExtension.
func (Resync) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse implements graphql.ResponseInterceptor.
func (Resync) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	if _, lost := resyncs.LoadAndDelete(graphql.GetOperationContext(ctx)); lost {
		return &graphql.Response{Errors: gqlerror.List{{
			Message:    "events may have been missed: reload the data and subscribe again",
			Extensions: map[string]any{"code": "RESYNC"},
		}}}
	}
	return resp
}
