package entschema

import "kiln/generator/internal/ir"

// fileView is one File field, for ent/schema/kiln_files.go
// (templates/kiln_files.go.tmpl): File's edge back to the records that
// reference it and, for lists, the join table.
type fileView struct {
	Model    *ir.Model
	Field    *ir.FileField
	BackEdge string // File's edge: profile_avatar, post_attachments
	// LinkType and LinkTable are the join type and table of a list field.
	LinkType, LinkTable string
}

func fileViews(s *ir.Schema) []fileView {
	var out []fileView
	for _, m := range s.Models {
		for _, f := range m.Files {
			v := fileView{Model: m, Field: f, BackEdge: m.FileBackEdge(f)}
			if f.List {
				v.LinkType, v.LinkTable = m.LinkType(f), m.LinkTable(f)
			}
			out = append(out, v)
		}
	}
	return out
}
