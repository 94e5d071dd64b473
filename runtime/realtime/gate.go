package realtime

import (
	"context"
	"reflect"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"kiln/runtime/access"
)

// Subscriptions shared by viewers.
//
// A subscription whose selection reads only the record's own columns
// without field-level @auth (ViewerIndependent) returns the same response
// to every viewer who may read the event's record. The server may then run
// it once for many viewers, in a context from WithEventGate: watch then
// forwards every event that matches, and queues for each the check that a
// viewer may read its record; the server takes the check of each response
// (the next function of WithEventGate) and runs it for each subscriber,
// with that subscriber's GateSubject, before delivering.

type gateKey struct{}

// gateReader is what a check needs of a subscriber, taken once from its
// connection context: looking it up there for every event and subscriber
// walked thousands of cold context chains per event.
type gateReader struct {
	viewer *access.Viewer
	bypass bool
}

// GateSubject returns what the checks of WithEventGate take for the
// subscriber whose connection context is ctx. Compute it once per
// connection context, and again whenever that context changes (a token
// switch).
func GateSubject(ctx context.Context) any {
	v, skip := access.Bypass(ctx)
	return &gateReader{viewer: v, bypass: skip}
}

// readerOf accepts a GateSubject, or a connection context itself.
func readerOf(subject any) *gateReader {
	switch s := subject.(type) {
	case *gateReader:
		return s
	case context.Context:
		return GateSubject(s).(*gateReader)
	}
	return &gateReader{} // unknown: the anonymous viewer
}

// eventGate is the queue of checks of a shared subscription: one per value
// that watch sends, in the same order.
type eventGate struct {
	mu     sync.Mutex
	checks []func(any) bool
	closed bool
}

// gateLimit bounds the checks waiting for their response: watch's channel
// holds 16 values and the executor works on one.
const gateLimit = 64

func (g *eventGate) push(check func(any) bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || len(g.checks) >= gateLimit {
		g.closed = true // out of step: deliver nothing more
		return false
	}
	g.checks = append(g.checks, check)
	return true
}

func (g *eventGate) next() (check func(any) bool, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.checks) == 0 {
		return nil, false
	}
	c := g.checks[0]
	g.checks[0] = nil
	g.checks = g.checks[1:]
	return c, true
}

// WithEventGate returns the context to run a subscription that viewers
// share (ViewerIndependent must have accepted it), and next, which returns
// the check of each response in turn: check(subject) reports whether the
// subscriber whose GateSubject (or connection context) is subject may
// receive it; a nil check means that every subscriber may. next returns
// ok false for a response that no event produced (an error before the
// first event): callers must then deliver it to nobody, or only when it
// carries no data.
func WithEventGate(ctx context.Context) (context.Context, func() (check func(any) bool, ok bool)) {
	g := &eventGate{}
	return context.WithValue(ctx, gateKey{}, g), g.next
}

// ViewerIndependent reports whether the subscription operation of rc
// returns the same response to every viewer who may read an event's
// record, so that it may run once for many viewers (WithEventGate): one
// root field, a generated subscription without arguments, whose selection
// names only fields listed in free (the generated table of the fields that
// read only the record's own columns: no relations, files,
// field-level @auth, fragments, directives or arguments). Anything else,
// or anything it does not know, is false.
func ViewerIndependent(free map[string]map[string]bool, rc *graphql.OperationContext) bool {
	if rc == nil || rc.Operation == nil || rc.Operation.Operation != ast.Subscription || len(rc.Operation.Directives) > 0 {
		return false
	}
	sel := rc.Operation.SelectionSet
	if len(sel) != 1 {
		return false
	}
	root, ok := sel[0].(*ast.Field)
	if !ok || len(root.Arguments) > 0 || len(root.Directives) > 0 {
		return false
	}
	fields, known := free[root.Name]
	if !known {
		return false
	}
	if fields == nil { // an ID
		return len(root.SelectionSet) == 0
	}
	if len(root.SelectionSet) == 0 {
		return false
	}
	for _, s := range root.SelectionSet {
		f, ok := s.(*ast.Field)
		if !ok || len(f.Arguments) > 0 || len(f.Directives) > 0 || len(f.SelectionSet) > 0 || !fields[f.Name] {
			return false
		}
	}
	return true
}

// isNilWhere reports whether a where argument is absent.
func isNilWhere(where any) bool {
	wv := reflect.ValueOf(where)
	return !wv.IsValid() || wv.Kind() == reflect.Pointer && wv.IsNil()
}
