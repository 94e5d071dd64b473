package graph

// Hand-written (not generated): ViewerIndependent on the example schema.

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"kiln/ent"
	"kiln/ent/post"
	"kiln/runtime/access"
)

func TestViewerIndependent(t *testing.T) {
	for q, want := range map[string]bool{
		`subscription { postCreated { id body createdAt } }`:                        true,
		`subscription S { p: postUpdated { __typename id title visibility tags } }`: true,
		`subscription { postDeleted }`:                                              true,
		`subscription { commentCreated { id body postID } }`:                        true,
		// Filters may need SQL run as the viewer.
		`subscription { postCreated(where: {bodyHasPrefix: "a"}) { id } }`:   false,
		`subscription($w: PostWhereInput) { postCreated(where: $w) { id } }`: false,
		// Relations and files are read per viewer.
		`subscription { postCreated { id author { email } } }`:     false,
		`subscription { postCreated { id attachments { id } } }`:   false,
		`subscription { postCreated { comments { totalCount } } }`: false,
		// Fragments, directives, unknown fields and roots: not decided.
		`subscription { postCreated { ...F } } fragment F on Post { id }`: false,
		`subscription { postCreated { ... on Post { id } } }`:             false,
		`subscription { postCreated { id @include(if: true) } }`:          false,
		`subscription @x { postCreated { id } }`:                          false,
		`subscription { postCreated { id secret } }`:                      false,
		`subscription { postCreated }`:                                    false,
		`subscription { postDeleted { id } }`:                             false,
		`subscription { somethingElse { id } }`:                           false,
		`query { postCreated { id } }`:                                    false,
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		rc := &graphql.OperationContext{Operation: doc.Operations[0], Doc: doc}
		if got := ViewerIndependent(rc); got != want {
			t.Errorf("ViewerIndependent(%s) = %v, want %v", q, got, want)
		}
	}
	if ViewerIndependent(nil) || ViewerIndependent(&graphql.OperationContext{}) {
		t.Error("no operation is not viewer-independent")
	}
}

// TestRealtimeViewerFreeExcludesProtected: no field with its own read rule
// (field-level @auth) is ever listed as viewer-free.
func TestRealtimeViewerFreeExcludesProtected(t *testing.T) {
	for root, fields := range realtimeViewerFree {
		for typ, protected := range protectedFields {
			for _, p := range protected {
				if fields[p] {
					t.Errorf("%s lists %s, protected on %s", root, p, typ)
				}
			}
		}
	}
}

// TestEventGate: each value watch would send is matched, in order, with
// the check for its record, evaluated with the member's viewer.
func TestEventGate(t *testing.T) {
	ctx, next := WithEventGate(context.Background())
	g := ctx.Value(gateKey{}).(*eventGate)
	owner := &access.Viewer{ID: uuid.New()}
	other := &access.Viewer{ID: uuid.New()}
	private := &ent.Post{OwnerID: owner.ID.String(), Visibility: "PRIVATE"}
	public := &ent.Post{OwnerID: owner.ID.String(), Visibility: post.DefaultVisibility}
	for _, n := range []*ent.Post{private, public} {
		g.push(func(subject any) bool {
			r := readerOf(subject)
			return r.bypass || postAllows(r.viewer, access.OpRead, n)
		})
	}
	// Checks take a GateSubject, or a connection context.
	as := func(v *access.Viewer) any { return GateSubject(access.With(context.Background(), v)) }
	g.push(nil) // a record that a rule naming no viewer allows
	c, ok := next()
	if !ok || !c(as(owner)) || c(as(other)) || c(context.Background()) || c(GateSubject(context.Background())) ||
		!c(as(&access.Viewer{Admin: true})) || !c(access.With(context.Background(), owner)) || c(nil) {
		t.Error("private post: only the owner and admins")
	}
	c, ok = next()
	if !ok || !c(as(owner)) || !c(as(other)) || !c(context.Background()) {
		t.Error("public post: everyone")
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
}
