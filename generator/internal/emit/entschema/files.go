package entschema

import (
	"fmt"
	"strings"

	"kiln/generator/internal/ir"
)

// FilesTable is the table of the built-in File model.
const FilesTable = "kiln_files"

// LinkType is the ent type of the join table of a list file field
// (Post.attachments -> PostAttachmentsLink).
func LinkType(m *ir.Model, f *ir.FileField) string {
	return m.Name + strings.ToUpper(f.Name[:1]) + f.Name[1:] + "Link"
}

// LinkTable is the SQL table of a list file field's join table.
func LinkTable(m *ir.Model, f *ir.FileField) string {
	return "kiln_" + m.Table + "_" + Column(f.Name)
}

// LinkEdge is the ent edge from a model to the join rows of a list file
// field (kept out of GraphQL).
func LinkEdge(f *ir.FileField) string { return "kiln_" + Column(f.Name) }

// FileBackEdge is the ent edge from File to the records (single fields) or
// join rows (list fields) that reference it: profile_avatar, post_attachments.
func FileBackEdge(m *ir.Model, f *ir.FileField) string {
	return Column(m.Name) + "_" + Column(f.Name)
}

// FileColumn is the foreign-key field of a single file field (avatar_id).
func FileColumn(f *ir.FileField) string { return Column(f.Name) + "_id" }

// fileFields returns the ent fields and edges a model gets for its file
// fields: a foreign key and an edge to File for single fields, an edge to
// the join rows for lists.
func fileFields(m *ir.Model) (fields, edges, indexes []string) {
	for _, f := range m.Files {
		if f.List {
			edges = append(edges, fmt.Sprintf("edge.To(%q, %s.Type).\n\t\t\tAnnotations(entgql.Skip(), entsql.OnDelete(entsql.Cascade)).\n\t\t\tComment(%q)",
				LinkEdge(f), LinkType(m, f), "Join rows of the file list "+f.Name+" (in order)."))
			continue
		}
		c := fmt.Sprintf("field.UUID(%q, uuid.UUID{})", FileColumn(f))
		if f.Nullable {
			c += ".Optional().Nillable()"
		}
		fields = append(fields, c+".\n\t\t\tAnnotations(entgql.Skip())")
		indexes = append(indexes, fmt.Sprintf("index.Fields(%q)", FileColumn(f)))
		e := fmt.Sprintf("edge.From(%q, File.Type).Ref(%q).Field(%q).Unique()", Column(f.Name), FileBackEdge(m, f), FileColumn(f))
		if !f.Nullable {
			e += ".Required()"
		}
		if f.Description != "" {
			e += ".\n\t\t\tComment(" + fmt.Sprintf("%q", f.Description) + ")"
		}
		edges = append(edges, e)
	}
	return fields, edges, indexes
}

// filesSource is the ent schema of the built-in File model and of the join
// tables of list file fields.
func filesSource(s *ir.Schema) string {
	var b strings.Builder
	b.WriteString(`package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	storeschema "kiln/runtime/store/schema"
)

// File is an uploaded file (the kiln_files table, defined in
// kiln/runtime/store/schema), with the references from the schema's File
// fields.
type File struct {
	storeschema.File
}

// Edges of File: the references from File fields.
func (File) Edges() []ent.Edge {
	return []ent.Edge{
`)
	for _, m := range s.Models {
		for _, f := range m.Files {
			target := m.Name
			if f.List {
				target = LinkType(m, f)
			}
			fmt.Fprintf(&b, "\t\tedge.To(%q, %s.Type).Annotations(entgql.Skip(), entsql.OnDelete(entsql.Restrict)),\n", FileBackEdge(m, f), target)
		}
	}
	b.WriteString("\t}\n}\n")
	for _, m := range s.Models {
		for _, f := range m.Files {
			if !f.List {
				continue
			}
			fmt.Fprintf(&b, `
// %[1]s keeps the files of %[2]s.%[3]s in order.
type %[1]s struct {
	ent.Schema
}

// Annotations of %[1]s.
func (%[1]s) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: %[4]q}, entgql.Skip(entgql.SkipAll)}
}

// Fields of %[1]s.
func (%[1]s) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable(),
		field.UUID("record_id", uuid.UUID{}),
		field.UUID("file_id", uuid.UUID{}),
		field.Int("position"),
	}
}

// Edges of %[1]s.
func (%[1]s) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("record", %[2]s.Type).Ref(%[5]q).Field("record_id").Unique().Required(),
		edge.From("file", File.Type).Ref(%[6]q).Field("file_id").Unique().Required(),
	}
}

// Indexes of %[1]s.
func (%[1]s) Indexes() []ent.Index {
	return []ent.Index{index.Fields("record_id", "position").Unique(), index.Fields("file_id")}
}
`, LinkType(m, f), m.Name, f.Name, LinkTable(m, f), LinkEdge(f), FileBackEdge(m, f))
		}
	}
	return b.String()
}
