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
	out := realtimeFile(&ir.Schema{Models: []*ir.Model{m}}, "example.com/app")
	if !strings.Contains(out, `"noteCreated": {"__typename": true, "id": true, "createdAt": true, "updatedAt": true, "version": true, "body": true},`) {
		t.Errorf("noteCreated is not listed with its own unprotected fields:\n%s", out)
	}
	if !strings.Contains(out, `"noteDeleted": nil,`) {
		t.Errorf("noteDeleted is not listed:\n%s", out)
	}
	free := out[strings.Index(out, "var RealtimeViewerFree"):]
	for _, no := range []string{"secret", "author", "photo", "noteUpdated"} {
		if strings.Contains(free, no) {
			t.Errorf("%s is listed:\n%s", no, out)
		}
	}
}
