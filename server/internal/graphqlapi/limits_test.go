package graphqlapi

import (
	"context"
	"errors"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestFieldGuardStopsWhenClientGone: once the request's context is
// cancelled no field resolver runs any more.
func TestFieldGuardStopsWhenClientGone(t *testing.T) {
	guard := fieldGuard(100)
	ran := 0
	next := func(context.Context) (any, error) { ran++; return "x", nil }
	if _, err := guard(context.Background(), next); err != nil || ran != 1 {
		t.Fatalf("live request: err %v, resolver ran %d times", err, ran)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 3; i++ {
		if _, err := guard(ctx, next); !errors.Is(err, ErrClientGone) {
			t.Fatalf("cancelled request: err %v", err)
		}
	}
	if ran != 1 {
		t.Fatalf("a resolver ran %d times after the client went away", ran-1)
	}
	var _ graphql.FieldMiddleware = guard
}
