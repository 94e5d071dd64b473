// Package graphql emits Kiln's GraphQL layer for an IR: SDL for single-record
// queries, mutations and their inputs, the gqlgen configuration, the
// complete resolvers, the rules, realtime, files and the authorization
// matrix test. It is pure: IR in, files out. Every file comes from a
// template (templates/*.tmpl) rendered with a view model built here.
package graphql

import (
	"sort"
	"strings"

	"entgo.io/ent/entc/gen"
	"github.com/vektah/gqlparser/v2/ast"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/write"
)

// EntSchemaHook returns an entgql schema hook that adds what entgql leaves
// out: enums used only in lists, and the JSON scalar.
func EntSchemaHook(s *ir.Schema, module string) func(*gen.Graph, *ast.Schema) error {
	return func(_ *gen.Graph, as *ast.Schema) error {
		for _, e := range s.Enums {
			if _, ok := as.Types[e.Name]; ok {
				continue
			}
			def := &ast.Definition{Kind: ast.Enum, Name: e.Name, Description: e.Description,
				Directives: ast.DirectiveList{goModel(module + "/ent/schema/enum." + e.Name)}}
			for _, v := range e.Values {
				def.EnumValues = append(def.EnumValues, &ast.EnumValueDefinition{Name: v})
			}
			as.AddTypes(def)
		}
		// Fields with their own read rules resolve through @kilnFieldAuth.
		as.Directives["kilnFieldAuth"] = &ast.DirectiveDefinition{Name: "kilnFieldAuth",
			Description: "Applies a field's own @auth read rules (Kiln).",
			Locations:   []ast.DirectiveLocation{ast.LocationFieldDefinition}}
		for _, m := range s.Models {
			t := as.Types[m.Name]
			for _, f := range m.Fields {
				if len(f.Rules) == 0 || t == nil {
					continue
				}
				if fd := t.Fields.ForName(f.Name); fd != nil {
					fd.Directives = append(fd.Directives, &ast.Directive{Name: "kilnFieldAuth", Location: ast.LocationFieldDefinition})
				}
			}
		}
		// A required relation whose target the viewer may be unable to read
		// is nullable: the record is returned with the relation null.
		for _, m := range s.Models {
			t := as.Types[m.Name]
			for _, e := range m.Edges {
				if t == nil || !s.MayHide(m, e) {
					continue
				}
				if fd := t.Fields.ForName(e.Name); fd != nil {
					fd.Type.NonNull = false
					fd.Description = strings.TrimSpace(fd.Description + "\n\nNull when the viewer may not read the " + e.Target + " (its read rules are stricter than " + m.Name + "'s); " + e.FK.Name + " is always set.")
				}
			}
		}
		// Where and order inputs that could reach what the viewer may not
		// read are secured by @kilnSecure as gqlgen decodes them.
		as.Directives["kilnSecure"] = &ast.DirectiveDefinition{Name: "kilnSecure",
			Description: "Restricts a filter or ordering to what the viewer may read (Kiln).",
			Locations:   []ast.DirectiveLocation{ast.LocationInputObject}}
		for _, m := range s.Models {
			for name, on := range map[string]bool{m.Name + "WhereInput": SecuresWhere(m), m.Name + "Order": SecuresOrder(m)} {
				if t := as.Types[name]; t != nil && on {
					t.Directives = append(t.Directives, &ast.Directive{Name: "kilnSecure", Location: ast.LocationInputObject})
				}
			}
		}
		// Let input fields choose their Go type (ID fields that are not UUIDs).
		if d := as.Directives["goField"]; d != nil && d.Arguments.ForName("type") == nil {
			d.Arguments = append(d.Arguments, &ast.ArgumentDefinition{Name: "type", Type: ast.NamedType("String", nil)})
		}
		filesHook(s, as)
		if _, ok := as.Types["JSON"]; !ok {
			as.AddTypes(&ast.Definition{Kind: ast.Scalar, Name: "JSON", Description: "Any JSON object.",
				Directives: ast.DirectiveList{goModel("github.com/99designs/gqlgen/graphql.Map")}})
		}
		return nil
	}
}

func goModel(model string) *ast.Directive {
	return &ast.Directive{Name: "goModel", Arguments: ast.ArgumentList{{
		Name: "model", Value: &ast.Value{Kind: ast.StringValue, Raw: model},
	}}}
}

// Files returns the GraphQL layer's files: graph/*.graphql (Kiln's SDL
// and the developer's pass-through SDL), gqlgen.yml and graph/*.go.
func Files(s *ir.Schema, module string) []write.File {
	files := []write.File{
		{Path: "graph/kiln.graphql", Content: []byte(render("kiln.graphql.tmpl", sdlView(s)))},
		{Path: "gqlgen.yml", Content: []byte(render("gqlgen.yml.tmpl", gqlgenData(s, module)))},
		{Path: "graph/resolver.go", Content: []byte(render("resolver.go.tmpl", module))},
		{Path: "graph/kiln.go", Content: []byte(render("kiln.go.tmpl", kilnView(s, module)))},
		{Path: "graph/auth.graphql", Content: []byte(render("auth.graphql.tmpl", viewerLinks(s)))},
		{Path: "graph/auth.resolvers.go", Content: []byte(render("auth.resolvers.go.tmpl", authResolversView{Module: module, Links: viewerLinks(s)}))},
		{Path: "graph/authz.go", Content: []byte(authzFile(s, module))},
		{Path: "graph/account.go", Content: []byte(accountFile(s, module))},
		{Path: "graph/app.go", Content: []byte(appFile(s, module))},
		{Path: "graph/realtime.go", Content: []byte(realtimeFile(s, module))},
		{Path: "graph/hooks.go", Content: []byte(hooksFile(s, module))},
		{Path: "graph/authz_matrix_test.go", Content: []byte(matrixTest(s, module))},
		{Path: "graph/files.graphql", Content: []byte(render("files.graphql.tmpl", nil))},
		{Path: "graph/files.go", Content: []byte(filesFile(s, module))},
		{Path: "graph/files.resolvers.go", Content: []byte(filesResolvers(module))},
		{Path: "graph/jobs.graphql", Content: []byte(render("jobs.graphql.tmpl", nil))},
		{Path: "graph/jobs.resolvers.go", Content: []byte(render("jobs.resolvers.go.tmpl", nil))},
		{Path: "graph/push.graphql", Content: []byte(render("push.graphql.tmpl", nil))},
		{Path: "graph/push.resolvers.go", Content: []byte(render("push.resolvers.go.tmpl", nil))},
	}
	if usesRoles(s) {
		// The role parts of the rules, decided by a Casbin policy.
		files = append(files,
			write.File{Path: "graph/policy.go", Content: []byte(render("policy.go.tmpl", nil))},
			write.File{Path: "graph/authz_policy.csv", Content: []byte(CasbinPolicy(s))})
	}
	for _, m := range s.Models {
		files = append(files, write.File{
			Path:    "graph/" + m.Snake() + ".resolvers.go",
			Content: []byte(render("model.resolvers.go.tmpl", resolversView(s, m, module))),
		})
	}
	for _, x := range s.Extensions {
		name := x.Name[strings.LastIndex(x.Name, "/")+1:]
		files = append(files, write.File{
			Path:    "graph/ext_" + name,
			Content: []byte("# From " + x.Name + ". Resolvers for these fields are hand-written in graph/.\n\n" + x.Content),
		})
	}
	return files
}

// sdlData is graph/kiln.graphql (templates/kiln.graphql.tmpl).
type sdlData struct {
	Models []sdlModel
	// Realtime are the models with subscriptions.
	Realtime []*ir.Model
}

// sdlModel is one model's create and update inputs.
type sdlModel struct {
	Model          *ir.Model
	Create, Update []inputField
}

// inputField is one field of an input type.
type inputField struct {
	// Doc is the field's own description, indented for a block string;
	// Note a short description of Kiln's (one line).
	Doc, Note string
	Name      string
	Type      string // GraphQL type, e.g. "String!", "[ID!]"
	Directive string // e.g. ` @goField(omittable: true)`
}

func sdlView(s *ir.Schema) sdlData {
	d := sdlData{Realtime: realtimeModels(s)}
	for _, m := range s.Models {
		v := sdlModel{Model: m}
		v.Create = append(v.Create, inputField{Name: "id", Type: "ID", Note: "Optional client-chosen id (a UUID), so records created offline keep their id."})
		for _, f := range m.Fields {
			in := inputField{Doc: blockDoc(f.Description), Name: f.Name, Type: f.GraphQLType()}
			if t := s.ActorDefault(f); t != nil {
				in.Note = "Defaults to the viewer's " + t.Name + "."
			} else if s.CreateRequired(f) {
				in.Type += "!"
				if f.Kind == ir.ID && f.Edge == nil {
					in.Directive = ` @goField(type: "string")`
				}
			} else if f.Kind == ir.ID && f.Edge == nil {
				in.Directive = ` @goField(type: "*string")`
			}
			v.Create = append(v.Create, in)
		}
		for _, e := range m.Edges {
			if e.Relation == ir.ManyToMany {
				v.Create = append(v.Create, inputField{Name: e.IDsName(), Type: "[ID!]", Note: "Ids of " + e.Name + " to link."})
			}
		}
		for _, f := range m.Files {
			in := inputField{Name: f.Input(), Type: "ID!", Note: "A completed upload for " + f.Name + "."}
			switch {
			case f.List:
				in.Type, in.Note = "[ID!]", "Completed uploads for "+f.Name+", in order."
			case f.Nullable:
				in.Type = "ID"
			}
			v.Create = append(v.Create, in)
		}
		v.Update = append(v.Update, inputField{Name: "version", Type: "Int", Note: "The version the client last saw; the update fails with CONFLICT if the record changed since."})
		for _, f := range updatable(m) {
			in := inputField{Doc: blockDoc(f.Description), Name: f.Name, Type: f.GraphQLType()}
			switch {
			case f.Kind == ir.ID && f.Edge == nil && f.Nullable:
				in.Directive = ` @goField(omittable: true, type: "*string")`
			case f.Kind == ir.ID && f.Edge == nil:
				in.Directive = ` @goField(type: "*string")`
			case f.Nullable:
				in.Directive = " @goField(omittable: true)"
			}
			v.Update = append(v.Update, in)
		}
		for _, e := range m.Edges {
			if e.Relation == ir.ManyToMany {
				ids := ir.UpperFirst(e.IDsName())
				v.Update = append(v.Update, inputField{Name: "add" + ids, Type: "[ID!]"}, inputField{Name: "remove" + ids, Type: "[ID!]"})
			}
		}
		for _, f := range m.Files {
			in := inputField{Name: f.Input(), Type: "ID", Note: "A completed upload for " + f.Name + "."}
			switch {
			case f.Readonly:
				continue
			case f.List:
				in.Type, in.Note = "[ID!]", "Replaces the files of "+f.Name+" (in this order)."
			case f.Nullable:
				in.Note, in.Directive = "A completed upload for "+f.Name+"; null detaches the file.", " @goField(omittable: true)"
			}
			v.Update = append(v.Update, in)
		}
		d.Models = append(d.Models, v)
	}
	return d
}

// blockDoc is a description as the lines of an indented block string.
func blockDoc(d string) string { return strings.ReplaceAll(d, "\n", "\n  ") }

func updatable(m *ir.Model) []*ir.Field {
	var out []*ir.Field
	for _, f := range m.Fields {
		if !f.Readonly {
			out = append(out, f)
		}
	}
	return out
}

// kilnData is graph/kiln.go (templates/kiln.go.tmpl): setup, node
// resolution, list bounds.
type kilnData struct {
	Module string
	// Tables are the tables of the records node() resolves, sorted.
	Tables []string
	// Nodes are the types node() loads (the models and File).
	Nodes []nodeType
	// ListBounds are the @length bounds of list fields, if any.
	ListBounds []listBound
}

// nodeType is one type node() loads: its ent type and package.
type nodeType struct{ Name, Package string }

// listBound is the @length bounds of a list field (-1: none).
type listBound struct {
	Key      string // "Post.tags"
	Min, Max int
}

func kilnView(s *ir.Schema, module string) kilnData {
	d := kilnData{Module: module, Tables: []string{ir.FilesTable}}
	for _, m := range s.Models {
		d.Tables = append(d.Tables, m.Table)
		d.Nodes = append(d.Nodes, nodeType{m.Name, m.Package()})
		for _, f := range m.Fields {
			if f.List && !f.Validate.Empty() {
				d.ListBounds = append(d.ListBounds, listBound{m.Name + "." + f.Name, intOr(f.Validate.MinLen), intOr(f.Validate.MaxLen)})
			}
		}
	}
	d.Nodes = append(d.Nodes, nodeType{"File", "file"})
	sort.Strings(d.Tables)
	return d
}

func intOr(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// appFile emits graph/app.go: App, this app for Kiln's server
// (templates/app.go.tmpl).
func appFile(s *ir.Schema, module string) string {
	type field struct{ Column, Name string }
	d := struct {
		Module string
		Models []*ir.Model
		Fields []field
	}{Module: module, Models: s.Models}
	seen := map[string]bool{}
	for _, m := range s.Models {
		for _, f := range m.Fields {
			if c := f.Column(); !seen[c] {
				seen[c] = true
				d.Fields = append(d.Fields, field{c, f.Name})
			}
		}
	}
	sort.Slice(d.Fields, func(i, j int) bool { return d.Fields[i].Column < d.Fields[j].Column })
	return render("app.go.tmpl", d)
}

// gqlgenView is the data of gqlgen.yml.
type gqlgenView struct {
	Module string
	// Resolved are the fields Kiln resolves by hand (File.url, list File
	// fields), by type: gqlgen is told so instead of finding no method.
	Resolved []resolvedType
	// ViewerFields are Viewer's links to per-user records (resolved too).
	ViewerFields []string
}

type resolvedType struct {
	Type   string
	Fields []string
}

func gqlgenData(s *ir.Schema, module string) gqlgenView {
	v := gqlgenView{Module: module, Resolved: []resolvedType{{Type: "File", Fields: []string{"url"}}}}
	for _, l := range viewerLinks(s) {
		v.ViewerFields = append(v.ViewerFields, l.Field)
	}
	for _, m := range s.Models {
		var fields []string
		for _, f := range m.Files {
			if f.List {
				fields = append(fields, f.Name)
			}
		}
		if len(fields) > 0 {
			v.Resolved = append(v.Resolved, resolvedType{Type: m.Name, Fields: fields})
		}
	}
	return v
}

// viewerLink is a Viewer field to the viewer's record of a model with one
// record per user (Viewer.profile).
type viewerLink struct {
	Model *ir.Model
	// Field is the Viewer field and Method its resolver's Go name.
	Field, Method string
	// Owner is the owner field's Go name in ent predicates (OwnerID).
	Owner string
}

func viewerLinks(s *ir.Schema) []viewerLink {
	var out []viewerLink
	for _, m := range s.PerUserModels() {
		out = append(out, viewerLink{Model: m, Field: m.Var(), Method: m.GetMethod(), Owner: m.PerUserOwner().GoName()})
	}
	return out
}

// authResolversView is the data of graph/auth.resolvers.go.
type authResolversView struct {
	Module string
	Links  []viewerLink
}
