package graphql

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"

	"kiln/generator/internal/emit/entschema"
	"kiln/generator/internal/ir"
)

// fileInput is the create/update input field of a file field: avatarID,
// attachmentIDs.
func fileInput(f *ir.FileField) string {
	if f.List {
		return IDsName(f.Name)
	}
	return f.Name + "ID"
}

// filesHook adds what entgql cannot derive for files: File.url, list file
// fields on their models, and @kilnFieldAuth on file fields with rules.
func filesHook(s *ir.Schema, as *ast.Schema) {
	if t := as.Types["File"]; t != nil && t.Fields.ForName("url") == nil {
		t.Fields = append(t.Fields, &ast.FieldDefinition{
			Name:        "url",
			Description: "A signed download URL valid for expiresIn seconds (clamped to the server's maximum).",
			Arguments: ast.ArgumentDefinitionList{{Name: "expiresIn", Type: ast.NamedType("Int", nil),
				DefaultValue: &ast.Value{Kind: ast.IntValue, Raw: "900"}}},
			Type: ast.NonNullNamedType("String", nil),
		})
	}
	for _, m := range s.Models {
		t := as.Types[m.Name]
		if t == nil {
			continue
		}
		for _, f := range m.Files {
			fd := t.Fields.ForName(f.Name)
			if f.List && fd == nil {
				fd = &ast.FieldDefinition{Name: f.Name, Description: f.Description,
					Type: ast.NonNullListType(ast.NonNullNamedType("File", nil), nil)}
				t.Fields = append(t.Fields, fd)
			}
			if fd != nil && len(f.Rules) > 0 {
				fd.Directives = append(fd.Directives, &ast.Directive{Name: "kilnFieldAuth", Location: ast.LocationFieldDefinition})
			}
		}
	}
}

// filesFile is graph/files.go: the schema's File fields (limits, references,
// join rows).
func filesFile(s *ir.Schema, module string) string {
	var b strings.Builder
	imports := map[string]bool{"context": true, "github.com/google/uuid": true, module + "/ent": true,
		module + "/ent/file": true, module + "/ent/predicate": true}
	var body strings.Builder
	body.WriteString("\n// fileFields are the File fields of the schema, by Type.field.\nvar fileFields = map[string]fileSpec{\n")
	for _, m := range s.Models {
		for _, f := range m.Files {
			acc := "nil"
			if len(f.Accept) > 0 {
				q := make([]string, len(f.Accept))
				for i, a := range f.Accept {
					q[i] = fmt.Sprintf("%q", a)
				}
				acc = "[]string{" + strings.Join(q, ", ") + "}"
			}
			fmt.Fprintf(&body, "\t%q: {Input: %q, Accept: %s, MaxSize: %d},\n", m.Name+"."+f.Name, fileInput(f), acc, f.MaxSize)
		}
	}
	body.WriteString("}\n")
	var refs []string
	for _, m := range s.Models {
		for _, f := range m.Files {
			refs = append(refs, "file.Has"+entName(entschema.FileBackEdge(m, f))+"()")
		}
	}
	body.WriteString("\n// fileReferenced matches files that a record references.\nfunc fileReferenced() predicate.File {\n")
	if len(refs) == 0 {
		imports["entgo.io/ent/dialect/sql"] = true
		body.WriteString("\treturn func(s *sql.Selector) { s.Where(sql.False()) }\n}\n")
	} else {
		fmt.Fprintf(&body, "\treturn file.Or(%s)\n}\n", strings.Join(refs, ", "))
	}
	body.WriteString(`
// fileReadableRecord reports whether the viewer may read a record that
// references the file, through a field whose own rules let them read it.
func fileReadableRecord(ctx context.Context, client *ent.Client, id uuid.UUID) (bool, error) {
`)
	for _, m := range s.Models {
		pkg := strings.ToLower(m.Name)
		for _, f := range m.Files {
			imports[module+"/ent/"+pkg] = true
			pred := fmt.Sprintf("%s.%sID(id)", pkg, entName(f.Name))
			if f.List {
				lpkg := strings.ToLower(entschema.LinkType(m, f))
				imports[module+"/ent/"+lpkg] = true
				pred = fmt.Sprintf("%s.Has%sWith(%s.FileID(id))", pkg, entName(entschema.LinkEdge(f)), lpkg)
			}
			fmt.Fprintf(&body, `	{
		recs, err := client.%[1]s.Query().Where(%[2]s).Limit(50).All(ctx)
		if err != nil {
			return false, err
		}
		for _, rec := range recs {
			if fieldAllowed(ctx, rec, %[3]q) {
				return true, nil
			}
		}
	}
`, m.Name, pred, f.Name)
		}
	}
	body.WriteString("\treturn false, nil\n}\n")
	for _, m := range s.Models {
		for _, f := range m.Files {
			if !f.List {
				continue
			}
			lt := entschema.LinkType(m, f)
			lpkg := strings.ToLower(lt)
			fmt.Fprintf(&body, `
// set%[1]s%[2]s writes the join rows of %[1]s.%[3]s in order (replacing
// the current ones when replace is set).
func set%[1]s%[2]s(ctx context.Context, client *ent.Client, id uuid.UUID, ids []uuid.UUID, replace bool) error {
	if replace {
		if _, err := client.%[4]s.Delete().Where(%[5]s.RecordID(id)).Exec(ctx); err != nil {
			return err
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows := make([]*ent.%[4]sCreate, len(ids))
	for i, f := range ids {
		rows[i] = client.%[4]s.Create().SetRecordID(id).SetFileID(f).SetPosition(i)
	}
	return client.%[4]s.CreateBulk(rows...).Exec(ctx)
}

// files%[1]s%[2]s loads the files of %[1]s.%[3]s of many records, in order.
var files%[1]s%[2]s = &fileListLoader{fetch: func(ctx context.Context, client *ent.Client, ids []uuid.UUID) (map[uuid.UUID][]*ent.File, error) {
	links, err := client.%[4]s.Query().Where(%[5]s.RecordIDIn(ids...)).Order(%[5]s.ByPosition()).WithFile().All(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID][]*ent.File, len(ids))
	for _, l := range links {
		if l.Edges.File != nil {
			out[l.RecordID] = append(out[l.RecordID], l.Edges.File)
		}
	}
	return out, nil
}}

// ids%[1]s%[2]s returns the ids of the files of %[1]s.%[3]s.
func ids%[1]s%[2]s(ctx context.Context, client *ent.Client, id uuid.UUID) ([]uuid.UUID, error) {
	links, err := client.%[4]s.Query().Where(%[5]s.RecordID(id)).All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]uuid.UUID, len(links))
	for i, l := range links {
		out[i] = l.FileID
	}
	return out, nil
}
`, m.Name, upperFirst(f.Name), f.Name, lt, lpkg)
		}
	}
	body.WriteString(`
// fileIDsOf returns the id a nullable reference holds, if any.
func fileIDsOf(p *uuid.UUID) []uuid.UUID {
	if p == nil {
		return nil
	}
	return []uuid.UUID{*p}
}
`)
	var std, other []string
	for i := range imports {
		if strings.Contains(strings.Split(i, "/")[0], ".") || strings.HasPrefix(i, module+"/") || strings.HasPrefix(i, "kiln/") {
			other = append(other, i)
		} else {
			std = append(std, i)
		}
	}
	sort.Strings(std)
	sort.Strings(other)
	b.WriteString("package graph\n\nimport (\n")
	for _, i := range std {
		fmt.Fprintf(&b, "\t%q\n", i)
	}
	b.WriteString("\n")
	for _, i := range other {
		fmt.Fprintf(&b, "\t%q\n", i)
	}
	b.WriteString(")\n")
	b.WriteString(body.String())
	return b.String()
}
