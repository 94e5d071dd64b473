package clientapi

import (
	"strings"
	"testing"

	"kiln/generator/internal/ir"
)

func field(m *Model, list []Field, name string) *Field {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// TestModelShape checks what the SDKs get for a model: required and
// optional create fields, Patch on nullable update fields, readonly fields
// left out of updates, field-level @auth fields left out of the selection,
// and many-to-many id fields.
func TestModelShape(t *testing.T) {
	post := &ir.Model{Name: "Post", Fields: []*ir.Field{
		{Name: "body", Kind: ir.String},
		{Name: "title", Kind: ir.String, Nullable: true, Sortable: true},
		{Name: "likeCount", Kind: ir.Int, Readonly: true, Default: &ir.Value{Raw: "0"}},
		{Name: "secret", Kind: ir.String, Nullable: true, Rules: []ir.Rule{{Allow: "owner"}}},
		{Name: "ownerID", Kind: ir.ID, Owner: true},
	}, Edges: []*ir.Edge{{Name: "tags", Relation: ir.ManyToMany, Target: "Tag"}}, Realtime: []string{"created"}}
	api := Build(&ir.Schema{Models: []*ir.Model{post}}, nil)
	m := api.Models[0]
	if m.List != "posts" || m.Single != "post" {
		t.Fatalf("names %s %s", m.List, m.Single)
	}
	if f := field(m, m.Create, "body"); f == nil || f.Nullable {
		t.Errorf("body must be required on create: %+v", f)
	}
	if f := field(m, m.Create, "ownerID"); f == nil || !f.Nullable {
		t.Errorf("owner is optional on create: %+v", f)
	}
	if f := field(m, m.Update, "title"); f == nil || !f.Patch {
		t.Errorf("a nullable field is a Patch on update: %+v", f)
	}
	if f := field(m, m.Update, "body"); f == nil || f.Patch {
		t.Errorf("a non-null field is a plain optional on update: %+v", f)
	}
	if field(m, m.Update, "likeCount") != nil {
		t.Error("readonly field in the update input")
	}
	if field(m, m.Fields, "secret") != nil || strings.Contains(m.Selection, "secret") {
		t.Error("a field with its own read rules is in the default selection")
	}
	if field(m, m.Create, "tagIDs") == nil || field(m, m.Update, "addTagIDs") == nil || field(m, m.Update, "removeTagIDs") == nil {
		t.Error("many-to-many id fields missing")
	}
	if strings.Join(m.OrderBy, ",") != "CREATED_AT,UPDATED_AT,TITLE" {
		t.Errorf("order fields %v", m.OrderBy)
	}
	if got := m.EventDoc("created").Text; !strings.Contains(got, "postCreated(where: $where) { id ") {
		t.Errorf("created subscription: %s", got)
	}
	if got := m.EventDoc("deleted").Text; strings.Contains(got, "{ id") {
		t.Errorf("deleted events carry only the id: %s", got)
	}
}

// TestFileFields checks File fields (ir.Model.Files): reads select the
// File, writes take ids, fields with their own @auth stay out of the
// default selection, readonly ones out of updates.
func TestFileFields(t *testing.T) {
	profile := &ir.Model{Name: "Profile", Fields: []*ir.Field{{Name: "handle", Kind: ir.String}}, Files: []*ir.FileField{
		{Name: "avatar", Nullable: true},
		{Name: "attachments", List: true},
		{Name: "passport", Nullable: true, Rules: []ir.Rule{{Allow: "owner"}}},
		{Name: "badge", Readonly: true},
	}}
	m := Build(&ir.Schema{Models: []*ir.Model{profile}}, nil).Models[0]
	if f := field(m, m.Fields, "avatar"); f == nil || f.Type.Kind != FileKind || !f.Nullable {
		t.Errorf("avatar output: %+v", f)
	}
	if f := field(m, m.Fields, "attachments"); f == nil || !f.Type.List || f.Nullable {
		t.Errorf("attachments output: %+v", f)
	}
	if f := field(m, m.Fields, "badge"); f == nil || f.Nullable {
		t.Errorf("badge output: %+v", f)
	}
	if !strings.Contains(m.Selection, "avatar "+FileSelection) || !strings.Contains(m.Selection, "attachments "+FileSelection) {
		t.Errorf("selection: %s", m.Selection)
	}
	if field(m, m.Fields, "passport") != nil || strings.Contains(m.Selection, "passport") {
		t.Error("a File field with its own read rules is in the default selection")
	}
	if f := field(m, m.Create, "avatarID"); f == nil || f.Type.Kind != ir.ID || !f.Nullable {
		t.Errorf("avatarID create: %+v", f)
	}
	if f := field(m, m.Create, "attachmentIDs"); f == nil || !f.Type.List {
		t.Errorf("attachmentIDs create: %+v", f)
	}
	if f := field(m, m.Create, "badgeID"); f == nil || f.Nullable {
		t.Errorf("badgeID create (required): %+v", f)
	}
	if field(m, m.Create, "passportID") == nil || field(m, m.Update, "passportID") == nil {
		t.Error("a File field with read rules can still be set")
	}
	if f := field(m, m.Update, "avatarID"); f == nil || !f.Patch {
		t.Errorf("avatarID update (null detaches): %+v", f)
	}
	if f := field(m, m.Update, "attachmentIDs"); f == nil || f.Patch || !f.Type.List {
		t.Errorf("attachmentIDs update (replaces the list): %+v", f)
	}
	if field(m, m.Update, "badgeID") != nil {
		t.Error("a readonly File field is in the update input")
	}
	if field(m, m.Create, "avatar") != nil || field(m, m.Update, "attachments") != nil {
		t.Error("File fields themselves are not inputs")
	}
	for _, f := range m.Filters {
		if strings.HasPrefix(f.Name, "avatar") || strings.HasPrefix(f.Name, "attachments") {
			t.Errorf("File field filter %s", f.Name)
		}
	}
}
