package graphql

import (
	"sort"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"

	"kiln/generator/internal/ir"
)

// filesHook adds what entgql cannot derive for files: File.url, list file
// fields on their models, and @kilnFieldAuth on file fields with rules.
func filesHook(s *ir.Schema, as *ast.Schema) {
	if t := as.Types["File"]; t != nil && t.Fields.ForName("url") == nil {
		t.Fields = append(t.Fields, &ast.FieldDefinition{
			Name:        "url",
			Description: "A signed download URL valid for expiresIn seconds (clamped to the server's maximum); with transform, the URL of a resized rendition of an image file.",
			Arguments: ast.ArgumentDefinitionList{{Name: "expiresIn", Type: ast.NamedType("Int", nil),
				DefaultValue: &ast.Value{Kind: ast.IntValue, Raw: "900"}},
				{Name: "transform", Type: ast.NamedType("ImageTransform", nil),
					Description: "A box from the server's allowed sizes; JPEG, PNG, GIF and WebP originals."}},
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

// filesFile is graph/files.go: the schema's File fields described to the
// file runtime (kiln/runtime/files), their join rows and list loaders
// (templates/files.go.tmpl).
func filesFile(s *ir.Schema, module string) string {
	d := filesData{Module: module}
	pkgs := map[string]bool{}
	for _, m := range s.Models {
		pkg := m.Package()
		for _, f := range m.Files {
			v := fileFieldView{Model: m, Field: f, Key: m.Name + "." + f.Name, Input: f.Input(), Pkg: pkg,
				Back: ir.EntName(m.FileBackEdge(f))}
			pkgs[pkg] = true
			if f.List {
				v.LinkType = m.LinkType(f)
				v.LinkPkg = strings.ToLower(v.LinkType)
				v.LinkEdge = ir.EntName(f.LinkEdge())
				pkgs[v.LinkPkg] = true
			} else if f.Nullable {
				d.IDsOf = true
			}
			d.Fields = append(d.Fields, v)
		}
	}
	for p := range pkgs {
		d.Imports = append(d.Imports, p)
	}
	sort.Strings(d.Imports)
	return render("files.go.tmpl", d)
}

type filesData struct {
	Module  string
	Fields  []fileFieldView
	Imports []string // ent packages the code names
	// IDsOf: a nullable single File field needs fileIDsOf.
	IDsOf bool
}

type fileFieldView struct {
	Model    *ir.Model
	Field    *ir.FileField
	Key      string // "Post.attachments"
	Input    string // "attachmentIDs"
	Pkg      string // ent package of the model
	Back     string // ent name of the File edge back to the model
	LinkType string // list fields: the join type, e.g. PostAttachmentsLink
	LinkPkg  string
	LinkEdge string // ent name of the model's edge to its join rows
}

// filesResolvers is graph/files.resolvers.go: the upload API's resolvers.
func filesResolvers(module string) string {
	return render("files.resolvers.go.tmpl", struct{ Module string }{module})
}
