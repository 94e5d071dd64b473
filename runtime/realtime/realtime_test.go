package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"kiln/runtime/access"
)

// note is a record as ent generates them: exported fields, JSON tags.
type note struct {
	ID     uuid.UUID `json:"id"`
	Owner  string    `json:"owner_id"`
	Body   string    `json:"body"`
	Public bool      `json:"public"`
	Title  *string   `json:"title"`
}

// noteWhere is shaped like an entgql where input.
type noteWhere struct {
	Not           *noteWhere
	Or, And       []*noteWhere
	Body          *string
	BodyNEQ       *string
	BodyHasPrefix *string
	BodyIn        []string
	TitleIsNil    bool
	HasAuthor     *bool
	HasAuthorWith []*struct{}
	Predicates    []func()
}

func noteAllows(v *access.Viewer, _ string, n *note) bool {
	return n.Public || v != nil && n.Owner == v.ID.String()
}

var notes = Model[note]{Type: "Note", Allows: noteAllows,
	AllowsAnyone: func(_ string, n *note) bool { return n.Public },
	Decode: func(data []byte) (*note, error) {
		n := new(note)
		return n, json.Unmarshal(data, n)
	}}

// bus is Events in memory, for these tests: every subscriber of a topic
// gets every event, or ErrEventsLost when told so.
type bus struct {
	mu   sync.Mutex
	subs map[string][]chan Event
}

func (b *bus) Publish(_ context.Context, topic string, data []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.subs[topic] {
		c <- Event{Topic: topic, Data: data}
	}
	return nil
}

func (b *bus) Subscribe(_ context.Context, topics ...string) (Stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(chan Event, 64)
	if b.subs == nil {
		b.subs = map[string][]chan Event{}
	}
	b.subs[topics[0]] = append(b.subs[topics[0]], c)
	return stream(c), nil
}

type stream chan Event

var errLost = Event{Topic: "lost"}

func (s stream) Next(ctx context.Context) (Event, error) {
	select {
	case ev := <-s:
		if ev.Topic == "lost" {
			return Event{}, ErrEventsLost
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

func (s stream) Close() error { return nil }

// TestWatch: a subscription gets the records its viewer may read that match
// where, in order; a where that needs SQL asks sqlMatch.
func TestWatch(t *testing.T) {
	b := &bus{}
	alice := &access.Viewer{ID: uuid.New()}
	ctx, cancel := context.WithCancel(access.With(context.Background(), alice))
	defer cancel()
	prefix := "a"
	ch, err := Watch(ctx, b, notes, "created", &noteWhere{BodyHasPrefix: &prefix}, nil, Record[note])
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n note) {
		data, _ := json.Marshal(n)
		b.Publish(ctx, Topic("Note", "created"), data)
	}
	publish(note{Body: "a private one of bob's", Owner: uuid.NewString()}) // not readable
	publish(note{Body: "b public", Public: true})                          // does not match
	publish(note{Body: "a public", Public: true})
	publish(note{Body: "a mine", Owner: alice.ID.String()})
	for _, want := range []string{"a public", "a mine"} {
		if n := recv(t, ch); n == nil || n.Body != want {
			t.Fatalf("got %+v, want %q", n, want)
		}
	}
	// A relation filter needs SQL: sqlMatch decides.
	yes := true
	asked := 0
	ch2, err := Watch(ctx, b, notes, "created", &noteWhere{HasAuthor: &yes}, func(context.Context, *note) (bool, error) { asked++; return asked == 2, nil }, Record[note])
	if err != nil {
		t.Fatal(err)
	}
	publish(note{Body: "x1", Public: true})
	publish(note{Body: "x2", Public: true})
	if n := recv(t, ch2); n.Body != "x2" || asked != 2 {
		t.Fatalf("sqlMatch: got %+v after %d calls", n, asked)
	}
}

// TestWatchResync: when events may have been lost, the subscription ends
// with a value whose response Resync turns into a RESYNC error.
func TestWatchResync(t *testing.T) {
	b := &bus{}
	oc := &graphql.OperationContext{}
	ctx := graphql.WithOperationContext(context.Background(), oc)
	ch, err := Watch(ctx, b, notes, "created", nil, nil, Record[note])
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.subs[Topic("Note", "created")][0] <- errLost
	b.mu.Unlock()
	if n := recv(t, ch); n != nil {
		t.Fatalf("want the zero value before the end, got %+v", n)
	}
	if _, ok := <-ch; ok {
		t.Fatal("the subscription goes on after lost events")
	}
	resp := Resync{}.InterceptResponse(ctx, func(context.Context) *graphql.Response { return &graphql.Response{} })
	if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "RESYNC" {
		t.Fatalf("want RESYNC, got %+v", resp)
	}
}

func TestWatchWithoutEvents(t *testing.T) {
	if _, err := Watch(context.Background(), nil, notes, "created", nil, nil, Record[note]); err == nil {
		t.Fatal("a subscription without realtime configured")
	}
}

// TestMatchWhere: the in-memory form of a where input, and what needs SQL.
func TestMatchWhere(t *testing.T) {
	s, a, yes := "hello", "he", true
	n := &note{Body: "hello"}
	for _, c := range []struct {
		name      string
		where     *noteWhere
		match     bool
		needSQL   bool
		needsSQLT bool
	}{
		{"nil", nil, true, false, false},
		{"eq", &noteWhere{Body: &s}, true, false, false},
		{"neq", &noteWhere{BodyNEQ: &s}, false, false, false},
		{"prefix", &noteWhere{BodyHasPrefix: &a}, true, false, false},
		{"in", &noteWhere{BodyIn: []string{"x", "hello"}}, true, false, false},
		{"is nil", &noteWhere{TitleIsNil: true}, true, false, false},
		{"not", &noteWhere{Not: &noteWhere{Body: &s}}, false, false, false},
		{"or", &noteWhere{Or: []*noteWhere{{BodyNEQ: &s}, {Body: &s}}}, true, false, false},
		{"relation", &noteWhere{HasAuthor: &yes}, true, true, true},
		{"relation with", &noteWhere{HasAuthorWith: []*struct{}{{}}}, true, true, true},
		{"extra predicates", &noteWhere{Predicates: []func(){func() {}}}, true, true, true},
		{"under not", &noteWhere{Not: &noteWhere{HasAuthor: &yes}}, true, true, true},
	} {
		var where any = c.where
		if c.where == nil {
			where = (*noteWhere)(nil)
		}
		match, need := matchWhere(where, n)
		if match != c.match || need != c.needSQL {
			t.Errorf("%s: matchWhere = %v, %v; want %v, %v", c.name, match, need, c.match, c.needSQL)
		}
		if got := whereNeedsSQL[note](where); got != c.needsSQLT {
			t.Errorf("%s: whereNeedsSQL = %v", c.name, got)
		}
	}
}

func TestViewerIndependent(t *testing.T) {
	free := map[string]map[string]bool{
		"noteCreated": {"__typename": true, "id": true, "body": true},
		"noteDeleted": nil,
	}
	for q, want := range map[string]bool{
		`subscription { noteCreated { id body } }`:                         true,
		`subscription S { n: noteCreated { __typename id } }`:              true,
		`subscription { noteDeleted }`:                                     true,
		`subscription { noteCreated(where: {bodyHasPrefix: "a"}) { id } }`: false, // filters may need SQL as the viewer
		`subscription { noteCreated { id author { id } } }`:                false, // relations are read per viewer
		`subscription { noteCreated { id secret } }`:                       false, // not listed
		`subscription { noteCreated { ...F } } fragment F on Note { id }`:  false,
		`subscription { noteCreated { id @include(if: true) } }`:           false,
		`subscription { noteCreated }`:                                     false,
		`subscription { noteDeleted { id } }`:                              false,
		`subscription { other { id } }`:                                    false,
		`query { noteCreated { id } }`:                                     false,
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		rc := &graphql.OperationContext{Operation: doc.Operations[0], Doc: doc}
		if got := ViewerIndependent(free, rc); got != want {
			t.Errorf("ViewerIndependent(%s) = %v, want %v", q, got, want)
		}
	}
	if ViewerIndependent(free, nil) || ViewerIndependent(free, &graphql.OperationContext{}) {
		t.Error("no operation is not viewer-independent")
	}
}

// TestEventGate: each value a shared subscription sends is matched, in
// order, with the check for its record, evaluated with the member's viewer.
func TestEventGate(t *testing.T) {
	ctx, next := WithEventGate(context.Background())
	g := ctx.Value(gateKey{}).(*eventGate)
	owner := &access.Viewer{ID: uuid.New()}
	other := &access.Viewer{ID: uuid.New()}
	private := &note{Owner: owner.ID.String()}
	public := &note{Owner: owner.ID.String(), Public: true}
	for _, n := range []*note{private, public} {
		g.push(func(subject any) bool {
			r := readerOf(subject)
			return r.bypass || noteAllows(r.viewer, access.OpRead, n)
		})
	}
	as := func(v *access.Viewer) any { return GateSubject(access.With(context.Background(), v)) }
	g.push(nil) // a record that a rule naming no viewer allows
	c, ok := next()
	if !ok || !c(as(owner)) || c(as(other)) || c(context.Background()) || c(GateSubject(context.Background())) ||
		!c(as(&access.Viewer{Admin: true})) || !c(access.With(context.Background(), owner)) || c(nil) {
		t.Error("private note: only the owner and admins")
	}
	c, ok = next()
	if !ok || !c(as(owner)) || !c(as(other)) || !c(context.Background()) {
		t.Error("public note: everyone")
	}
	if c, ok = next(); !ok || c != nil {
		t.Error("a check-free value: want a nil check")
	}
	if _, ok = next(); ok {
		t.Error("a check without a value")
	}
	for range gateLimit {
		g.push(nil)
	}
	if g.push(nil) || g.push(nil) {
		t.Error("an overfull gate still accepts checks")
	}
	var lost error = ErrEventsLost
	if !errors.Is(lost, ErrEventsLost) {
		t.Fatal("ErrEventsLost")
	}
}

// recv waits for the next value; a subscription that never delivers fails
// the test instead of hanging it.
func recv(t *testing.T, ch <-chan *note) *note {
	t.Helper()
	select {
	case n, ok := <-ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no value from the subscription")
	}
	return nil
}
