package graphql

import (
	"strings"
	"testing"

	"kiln/generator/internal/ir"
)

// TestViewerFreeFields: a field with its own read rule (field-level @auth)
// is never listed as viewer-free, so a selection naming it is not shared
// across viewers; relations and files are not fields, so never listed.
func TestViewerFreeFields(t *testing.T) {
	m := &ir.Model{
		Name:     "Note",
		Realtime: []string{"created", "deleted"},
		Fields: []*ir.Field{
			{Name: "body", Kind: ir.String},
			{Name: "secret", Kind: ir.String, Rules: []ir.Rule{{}}},
		},
		Edges: []*ir.Edge{{Name: "author"}},
		Files: []*ir.FileField{{Name: "photo"}},
	}
	var b strings.Builder
	viewerFreeFields(&b, []*ir.Model{m})
	out := b.String()
	if !strings.Contains(out, `"noteCreated": {"__typename": true, "id": true, "createdAt": true, "updatedAt": true, "version": true, "body": true},`) {
		t.Errorf("noteCreated is not listed with its own unprotected fields:\n%s", out)
	}
	if !strings.Contains(out, `"noteDeleted": nil,`) {
		t.Errorf("noteDeleted is not listed:\n%s", out)
	}
	for _, no := range []string{"secret", "author", "photo", "noteUpdated"} {
		if strings.Contains(out, no) {
			t.Errorf("%s is listed:\n%s", no, out)
		}
	}
}
