package graphql

import (
	"go/format"
	"strings"
	"testing"

	"kiln/generator/internal/ir"
)

// TestRuleEveryRowToEveryone: a rule allowing every row to everyone for
// every operation makes the SQL form return all=true and nothing else (no
// statement after it, so no unreachable code for vet to report).
func TestRuleEveryRowToEveryone(t *testing.T) {
	m := &ir.Model{Name: "Board", Fields: []*ir.Field{{Name: "title", Kind: ir.String}}, Rules: []ir.Rule{
		{Allow: "authenticated", Operations: []string{ir.OpRead}},
		{Allow: "public", Operations: ir.AllOps},
	}}
	out := authzFile(&ir.Schema{Models: []*ir.Model{m}}, "example.com/app")
	if _, err := format.Source([]byte(out)); err != nil {
		t.Fatalf("authz.go does not parse: %v\n%s", err, out)
	}
	body := out[strings.Index(out, "func boardRule("):]
	body = body[:strings.Index(body, "\n}\n")]
	if strings.Count(body, "\n") != 1 || !strings.Contains(body, "return nil, true") {
		t.Errorf("boardRule is not only return nil, true:\n%s", body)
	}
	if !strings.Contains(out, "func boardAllows(v *access.Viewer, op string, n *ent.Board) bool {\n\treturn true\n}") {
		t.Errorf("boardAllows is not true:\n%s", out)
	}
}

// TestRuleNoPlaceholders: rules granting every operation, or with no
// viewer condition, compile without if true, and rules that never add a
// predicate without an ors slice.
func TestRuleNoPlaceholders(t *testing.T) {
	m := &ir.Model{Name: "Post", Fields: []*ir.Field{{Name: "ownerID", Kind: ir.ID, Owner: true}, {Name: "public", Kind: ir.Boolean}}, Rules: []ir.Rule{
		{Allow: "owner", Operations: ir.AllOps, OwnerField: "ownerID"},
		{Allow: "public", Operations: []string{ir.OpRead}, Where: []ir.Cond{{Field: "public", Op: "eq", Literal: &ir.Value{Kind: ir.Boolean, Raw: "true"}}}},
	}}
	n := &ir.Model{Name: "Tag", Rules: []ir.Rule{{Allow: "authenticated", Operations: []string{ir.OpRead}}}}
	out := authzFile(&ir.Schema{Models: []*ir.Model{m, n}}, "example.com/app")
	for _, no := range []string{"if true", "_ = ors", "_ = v", "_ = n", "var _", "_ = sql"} {
		if strings.Contains(out, no) {
			t.Errorf("authz.go has %q:\n%s", no, out)
		}
	}
	tag := out[strings.Index(out, "func tagRule("):]
	tag = tag[:strings.Index(tag, "\n}\n")]
	if strings.Contains(tag, "ors") {
		t.Errorf("tagRule keeps an ors slice it never fills:\n%s", tag)
	}
}

// TestRefsOnlyWhereLinked: checkRefs<Model> exists only for the models a
// write links to.
func TestRefsOnlyWhereLinked(t *testing.T) {
	author := &ir.Model{Name: "Author"}
	fk := &ir.Field{Name: "authorID", Kind: ir.ID}
	book := &ir.Model{Name: "Book", Fields: []*ir.Field{fk}, Edges: []*ir.Edge{{Name: "author", Relation: ir.BelongsTo, Target: "Author", FK: fk}}}
	fk.Edge = book.Edges[0]
	author.Edges = []*ir.Edge{{Name: "books", Relation: ir.HasMany, Target: "Book", Inverse: "author"}}
	out := authzFile(&ir.Schema{Models: []*ir.Model{author, book}}, "example.com/app")
	if !strings.Contains(out, "func checkRefsAuthor(") || strings.Contains(out, "func checkRefsBook(") {
		t.Errorf("want checkRefsAuthor only:\n%s", out)
	}
}

// TestNullableListBounds: the update resolver checks the bounds of a
// nullable list (an Omittable) through its value.
func TestNullableListBounds(t *testing.T) {
	max := 3
	m := &ir.Model{Name: "Card", Fields: []*ir.Field{{Name: "nums", Kind: ir.Int, List: true, Nullable: true, Validate: ir.Validation{MaxLen: &max}}}}
	out := render("model.resolvers.go.tmpl", resolversView(&ir.Schema{Models: []*ir.Model{m}}, m, "example.com/app"))
	if !strings.Contains(out, "if l, ok := input.Nums.ValueOK(); ok && l != nil {\n\t\tif err := checkList(\"Card.nums\", \"nums\", len(l)); err != nil {") {
		t.Errorf("nullable list bounds not checked through ValueOK:\n%s", out)
	}
}
