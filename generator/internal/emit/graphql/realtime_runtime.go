package graphql

// realtimeRuntimeSource is graph/realtime_runtime.go: the schema-independent
// part of subscriptions.
const realtimeRuntimeSource = `package graph

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
)

// Event is one published message.
type Event struct {
	Topic string
	Data  []byte
	// Memo, when set, is shared by every subscription of this instance that
	// receives the same message: the record is decoded once through it, and
	// is then read-only.
	Memo Memo
}

// Memo computes a value once for all its callers.
type Memo interface {
	Do(f func() any) any
}

// Events is the pub/sub the resolvers publish to and subscribe through; the
// server provides it (in memory, or Redis across instances).
type Events interface {
	Publish(ctx context.Context, topic string, data []byte) error
	Subscribe(ctx context.Context, topics ...string) (Stream, error)
}

// Stream is one subscription to topics.
type Stream interface {
	// Next waits for the next event. It returns ErrEventsLost when events
	// may have been missed, ctx's error when ctx is done, and another error
	// when the stream ended.
	Next(ctx context.Context) (Event, error)
	Close() error
}

// ErrEventsLost is returned by Stream.Next when events may have been missed.
var ErrEventsLost = errors.New("realtime: events may have been missed")

// SQLFilterQuota may be implemented by Events to cap the subscriptions
// whose where needs SQL (relation predicates, or predicates that protect
// fields): each of them runs one statement per event of its topic, so a
// client with many of them multiplies the cost of every write. The server
// counts them per client address and per user.
type SQLFilterQuota interface {
	// AcquireSQLFilter is called with the subscriber's context before such
	// a subscription starts. It returns the function to call when the
	// subscription ends, or the error that refuses it (sent to the
	// client).
	AcquireSQLFilter(ctx context.Context) (release func(), err error)
}

// pendingEvent is published after the transaction of its write commits.
type pendingEvent struct {
	typ, event string
	record     any
	reload     func(context.Context) ([]any, error)
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func unseen(ids []uuid.UUID, seen map[uuid.UUID]bool) []uuid.UUID {
	var out []uuid.UUID
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// afterCommit publishes pending events once the mutation's transaction
// commits, or now when it runs outside a transaction.
func afterCommit(ctx context.Context, m ent.Mutation, events Events, pending []pendingEvent) {
	if len(pending) == 0 {
		return
	}
	publish := func() {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, p := range pending {
			records := []any{p.record}
			if p.reload != nil {
				var err error
				if records, err = p.reload(pctx); err != nil {
					slog.ErrorContext(pctx, "realtime: reload for publish", "type", p.typ, "err", err)
					continue
				}
			}
			for _, r := range records {
				data, err := json.Marshal(r)
				if err == nil {
					err = events.Publish(pctx, Topic(p.typ, p.event), data)
				}
				if err != nil {
					slog.ErrorContext(pctx, "realtime: publish", "type", p.typ, "event", p.event, "err", err)
				}
			}
		}
	}
	if txm, ok := m.(interface{ Tx() (*ent.Tx, error) }); ok {
		if tx, err := txm.Tx(); err == nil {
			tx.OnCommit(func(next ent.Committer) ent.Committer {
				return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
					err := next.Commit(ctx, tx)
					if err == nil {
						publish()
					}
					return err
				})
			})
			return
		}
	}
	publish()
}

// watch subscribes to a model's event and delivers the records the viewer
// may read and that match where, converted by conv (the record itself, or
// its id). Where is matched in memory; filters that need SQL (relations,
// protected fields) run sqlMatch. When events may have been lost, the
// subscription ends with a RESYNC error. One goroutine per subscription:
// it waits on the stream, decodes (once per event for all the
// subscriptions of the instance), authorizes and filters. A subscription
// whose where needs SQL first takes a slot of the Events' SQLFilterQuota,
// when it has one.
func watch[T, R any](ctx context.Context, r *Resolver, typ, event string, where any, allows func(*access.Viewer, string, *T) bool, sqlMatch func(context.Context, *T) (bool, error), conv func(*T) R) (<-chan R, error) {
	if r.Events == nil {
		return nil, errors.New("realtime is not configured on this server")
	}
	gate, _ := ctx.Value(gateKey{}).(*eventGate)
	anyone, _ := allowsAnyone[typ].(func(string, *T) bool)
	if gate != nil && !isNilWhere(where) {
		// ViewerIndependent never shares a subscription with arguments:
		// filters may need SQL run as a viewer.
		return nil, errors.New("realtime: a subscription shared by viewers cannot filter")
	}
	var release func()
	if q, ok := r.Events.(SQLFilterQuota); ok && sqlMatch != nil && whereNeedsSQL[T](where) {
		var err error
		if release, err = q.AcquireSQLFilter(ctx); err != nil {
			return nil, err
		}
	}
	stream, err := r.Events.Subscribe(ctx, Topic(typ, event))
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	out := make(chan R, 16)
	go func() {
		defer close(out)
		defer stream.Close()
		if release != nil {
			defer release()
		}
		for {
			ev, err := stream.Next(ctx)
			if err != nil {
				if ctx.Err() == nil { // events lost, or the stream ended under us
					if gate != nil && !gate.push(nil) { // the error goes to all
						return
					}
					resync(ctx, out)
				}
				return
			}
			n := decode[T](ev, r.Client)
			if n == nil {
				continue
			}
			if gate != nil {
				// Shared by viewers: every event goes on, with the check
				// that each member's viewer may read it (none, nil, when a
				// rule that names no viewer allows it).
				var check func(any) bool
				if anyone == nil || !anyone(access.OpRead, n) {
					check = func(subject any) bool {
						r := readerOf(subject)
						return r.bypass || allows(r.viewer, access.OpRead, n)
					}
				}
				if !gate.push(check) {
					return
				}
				select {
				case out <- conv(n):
				case <-ctx.Done():
					return
				}
				continue
			}
			v, skip := access.Bypass(ctx)
			if !skip && !allows(v, access.OpRead, n) {
				continue
			}
			match, needSQL := matchWhere(where, n)
			if needSQL {
				if sqlMatch == nil {
					match = true // a deleted record is gone: relation filters cannot apply
				} else if match, err = sqlMatch(ctx, n); err != nil {
					continue
				}
			}
			if !match {
				continue
			}
			select {
			case out <- conv(n):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

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
// names only fields listed in realtimeViewerFree (no relations, files,
// field-level @auth, fragments, directives or arguments). Anything else,
// or anything it does not know, is false.
func ViewerIndependent(rc *graphql.OperationContext) bool {
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
	fields, known := realtimeViewerFree[root.Name]
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

// decode returns the record of ev, decoded once per event when ev has a
// memo (then shared: read-only), or nil when it does not decode. The record
// is attached to client, so the subscription's selection can load its
// edges (through the subscriber's rules: the context is theirs).
func decode[T any](ev Event, client *ent.Client) *T {
	one := func() any {
		n := new(T)
		if err := json.Unmarshal(ev.Data, n); err != nil {
			return nil
		}
		if a, ok := any(n).(interface{ Attach(*ent.Client) }); ok && client != nil {
			a.Attach(client)
		}
		return n
	}
	if ev.Memo == nil {
		n, _ := one().(*T)
		return n
	}
	if n, ok := ev.Memo.Do(one).(*T); ok {
		return n
	}
	n, _ := one().(*T) // a memo of another type: not shared
	return n
}

// record is watch's conv for subscriptions that deliver whole records.
func record[T any](n *T) *T { return n }

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

// matchWhere evaluates a where input against a record in memory. needSQL is
// true when it uses relation predicates or extra predicates (rules added to
// protect fields), which only SQL can evaluate.
func matchWhere(where any, n any) (match, needSQL bool) {
	wv := reflect.ValueOf(where)
	if !wv.IsValid() || wv.Kind() == reflect.Pointer && wv.IsNil() {
		return true, false
	}
	return matchValue(wv.Elem(), reflect.ValueOf(n).Elem())
}

// whereNeedsSQL reports whether a where argument on records of type T has
// a predicate that only SQL can evaluate (for some record, matchWhere
// would report needSQL): a relation predicate, or extra predicates.
func whereNeedsSQL[T any](where any) bool {
	if isNilWhere(where) {
		return false
	}
	return needsSQL(reflect.ValueOf(where).Elem(), reflect.TypeFor[T]())
}

func needsSQL(w reflect.Value, rt reflect.Type) bool {
	wt := w.Type()
	for i := 0; i < wt.NumField(); i++ {
		f := wt.Field(i)
		fv := w.Field(i)
		if !f.IsExported() {
			if f.Name == "predicates" && fv.Len() > 0 {
				return true
			}
			continue
		}
		if fv.IsZero() {
			continue
		}
		switch f.Name {
		case "Not":
			if needsSQL(fv.Elem(), rt) {
				return true
			}
			continue
		case "And", "Or":
			for j := 0; j < fv.Len(); j++ {
				if e := fv.Index(j); !e.IsNil() && needsSQL(e.Elem(), rt) {
					return true
				}
			}
			continue
		}
		base := f.Name
		for _, suf := range whereSuffixes {
			if b, ok := strings.CutSuffix(f.Name, suf); ok {
				if _, known := rt.FieldByName(b); known {
					base = b
					break
				}
			}
		}
		if _, known := rt.FieldByName(base); !known {
			return true // a relation predicate (HasX, HasXWith), or Predicates
		}
	}
	return false
}

var whereSuffixes = []string{"ContainsFold", "EqualFold", "HasPrefix", "HasSuffix", "Contains", "NotNil", "IsNil", "NotIn", "NEQ", "GTE", "LTE", "GT", "LT", "In"}

func matchValue(w, n reflect.Value) (bool, bool) {
	wt := w.Type()
	need := false
	for i := 0; i < wt.NumField(); i++ {
		f := wt.Field(i)
		fv := w.Field(i)
		if !f.IsExported() {
			if f.Name == "predicates" && fv.Len() > 0 {
				need = true
			}
			continue
		}
		if fv.IsZero() {
			continue
		}
		switch f.Name {
		case "Not":
			ok, sql := matchValue(fv.Elem(), n)
			need = need || sql
			if !sql && ok {
				return false, need
			}
			continue
		case "And":
			for j := 0; j < fv.Len(); j++ {
				ok, sql := matchValue(fv.Index(j).Elem(), n)
				need = need || sql
				if !sql && !ok {
					return false, need
				}
			}
			continue
		case "Or":
			any := false
			for j := 0; j < fv.Len(); j++ {
				ok, sql := matchValue(fv.Index(j).Elem(), n)
				need = need || sql
				any = any || ok || sql
			}
			if !any {
				return false, need
			}
			continue
		}
		base, op := f.Name, "EQ"
		for _, suf := range whereSuffixes {
			if b, ok := strings.CutSuffix(f.Name, suf); ok && n.FieldByName(b).IsValid() {
				base, op = b, suf
				break
			}
		}
		field := n.FieldByName(base)
		if !field.IsValid() {
			need = true // a relation predicate (HasX, HasXWith)
			continue
		}
		if !matchOp(op, field.Interface(), fv.Interface()) {
			return false, need
		}
	}
	return true, need
}

func matchOp(op string, field, arg any) bool {
	switch op {
	case "IsNil":
		return access.IsNil(field)
	case "NotNil":
		return !access.IsNil(field)
	case "In", "NotIn":
		av := reflect.ValueOf(arg)
		found := false
		for i := 0; i < av.Len(); i++ {
			found = found || access.Match(field, "eq", av.Index(i).Interface())
		}
		return found == (op == "In")
	case "EQ":
		return access.Match(field, "eq", arg)
	case "NEQ":
		return access.Match(field, "neq", arg)
	case "GT", "GTE", "LT", "LTE":
		return access.Match(field, strings.ToLower(op), arg)
	}
	fs, ok1 := access.Norm(field)
	as, ok2 := access.Norm(arg)
	s, _ := fs.(string)
	a, _ := as.(string)
	if !ok1 || !ok2 {
		return false
	}
	switch op {
	case "Contains":
		return strings.Contains(s, a)
	case "HasPrefix":
		return strings.HasPrefix(s, a)
	case "HasSuffix":
		return strings.HasSuffix(s, a)
	case "EqualFold":
		return strings.EqualFold(s, a)
	case "ContainsFold":
		return strings.Contains(strings.ToLower(s), strings.ToLower(a))
	}
	return false
}
`
