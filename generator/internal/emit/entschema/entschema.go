// Package entschema emits the ent schema (ent/schema/*.go) for an IR, with
// the entgql annotations that drive the GraphQL types, filters, ordering and
// pagination. It is pure: IR in, files out (from templates/*.go.tmpl).
package entschema

import (
	"fmt"
	"strconv"
	"strings"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/write"
)

// Files returns ent/schema/<model>.go for every model, the enum package,
// Kiln's own tables and the File model.
func Files(s *ir.Schema, module string) []write.File {
	var files []write.File
	for _, m := range s.Models {
		files = append(files, write.File{
			Path:    "ent/schema/" + m.Snake() + ".go",
			Content: []byte(render("model.go.tmpl", modelView(s, m, module))),
		})
	}
	files = append(files,
		write.File{Path: "ent/schema/enum/enum.go", Content: []byte(render("enum.go.tmpl", s.Enums))},
		write.File{Path: "ent/schema/kiln_auth.go", Content: []byte(render("kiln_auth.go.tmpl", nil))},
		write.File{Path: "ent/schema/kiln_files.go", Content: []byte(render("kiln_files.go.tmpl", fileViews(s)))})
	return files
}

// modelData is ent/schema/<model>.go (templates/model.go.tmpl).
type modelData struct {
	Module string
	Model  *ir.Model
	// Fields are the model's ent fields after the built-in ones (id,
	// created_at, updated_at, version): declared fields, then the foreign
	// keys of single file fields.
	Fields  []fieldView
	Edges   []edgeView
	Indexes []indexView
}

// fieldView is one ent field: field.<Builder>("<Column>"[, <Type>]) and
// its chained options, in this order.
type fieldView struct {
	Builder                    string // "Text", "UUID", "Enum", ...
	Column                     string
	Type                       string // the builder's second argument: "uuid.UUID{}", "[]enum.Color{}"
	GoType                     string // enums: enum.Color("")
	Optional, Nillable, Unique bool
	Default                    string   // the argument of Default, if any
	StorageKey                 string   // the SQL column when the name is too long
	Validators                 []string // the arguments of Validate, one call each
	// Annotations are entgql's: the GraphQL type, the order field.
	Annotations []string
	Comment     string
}

// edgeView is one ent edge: edge.To(Name, Target.Type), or
// edge.From(Name, Target.Type).Ref(Ref) when Ref is set, and its options.
type edgeView struct {
	Name, Target, Ref string
	Field             string // the foreign-key field of the edge
	Unique, Required  bool
	Annotations       []string
	// Inverse names the inverse edge of a self-referencing many-to-many,
	// declared with its owner (.From(Inverse)).
	Inverse string
	// JoinTable is the join table and its two columns of a many-to-many
	// owner whose default names are too long; nil for ent's defaults.
	JoinTable []string
	Comment   string
}

// indexView is index.Fields(Columns...), unique or not.
type indexView struct {
	Columns []string
	Unique  bool
}

func modelView(s *ir.Schema, m *ir.Model, module string) modelData {
	d := modelData{Module: module, Model: m}
	for _, f := range m.Fields {
		d.Fields = append(d.Fields, field(f))
		if f.Index && !f.Unique && !uniqueAlone(m, f.Name) {
			d.Indexes = append(d.Indexes, indexView{Columns: []string{f.Column()}})
		}
	}
	for _, e := range m.Edges {
		v := edgeView{Name: e.Column(), Target: e.Target, Comment: e.Description}
		switch e.Relation {
		case ir.BelongsTo:
			v.Ref, v.Field, v.Unique, v.Required = ir.Snake(e.Inverse), e.FK.Column(), true, !e.Nullable
		case ir.HasMany, ir.HasOne:
			v.Unique = e.Relation == ir.HasOne
			v.Annotations = []string{onDelete(s.Model(e.Target).Edge(e.Inverse).OnDelete)}
			if e.Relation == ir.HasMany {
				v.Annotations = append(v.Annotations, "entgql.RelayConnection()")
			}
		case ir.ManyToMany:
			self := e.Target == m.Name
			if self && !e.Owner {
				continue // declared together with its owner
			}
			v.Annotations = []string{"entgql.RelayConnection()"}
			if e.Owner {
				v.JoinTable = m.JoinTable(e)
			}
			switch {
			case self:
				v.Inverse = ir.Snake(e.Inverse)
			case !e.Owner:
				v.Ref = ir.Snake(e.Inverse)
			}
		}
		d.Edges = append(d.Edges, v)
	}
	for _, f := range m.Files {
		if f.List {
			d.Edges = append(d.Edges, edgeView{Name: f.LinkEdge(), Target: m.LinkType(f),
				Annotations: []string{"entgql.Skip()", "entsql.OnDelete(entsql.Cascade)"},
				Comment:     "Join rows of the file list " + f.Name + " (in order)."})
			continue
		}
		d.Fields = append(d.Fields, fieldView{Builder: "UUID", Column: f.FKColumn(), Type: "uuid.UUID{}", StorageKey: f.FKStorageKey(),
			Optional: f.Nullable, Nillable: f.Nullable, Annotations: []string{"entgql.Skip()"}})
		d.Indexes = append(d.Indexes, indexView{Columns: []string{f.FKColumn()}})
		d.Edges = append(d.Edges, edgeView{Name: f.Column(), Target: "File", Ref: m.FileBackEdge(f), Field: f.FKColumn(),
			Unique: true, Required: !f.Nullable, Comment: f.Description})
	}
	for _, u := range m.Uniques {
		d.Indexes = append(d.Indexes, indexView{Columns: columns(u), Unique: true})
	}
	for _, ix := range m.Indexes {
		d.Indexes = append(d.Indexes, indexView{Columns: columns(ix)})
	}
	return d
}

// field is the ent field of a declared field.
func field(f *ir.Field) fieldView {
	v := fieldView{Column: f.Column(), StorageKey: f.StorageKey(), Unique: f.Unique, Comment: f.Description}
	switch {
	case f.Edge != nil:
		v.Builder, v.Type = "UUID", "uuid.UUID{}"
	case f.List && f.Kind == ir.String:
		v.Builder = "Strings"
	case f.List && f.Kind == ir.Int:
		v.Builder = "Ints"
	case f.List && f.Kind == ir.Float:
		v.Builder = "Floats"
	case f.List && f.Kind == ir.EnumK:
		v.Builder, v.Type = "JSON", "[]enum."+f.Enum+"{}"
		v.Annotations = append(v.Annotations, fmt.Sprintf("entgql.Type(%q)", f.GraphQLType()))
	case f.Kind == ir.String:
		v.Builder = "Text"
	case f.Kind == ir.ID:
		v.Builder = "String"
		v.Annotations = append(v.Annotations, `entgql.Type("ID")`)
	case f.Kind == ir.Int:
		v.Builder = "Int"
	case f.Kind == ir.Float:
		v.Builder = "Float"
	case f.Kind == ir.Boolean:
		v.Builder = "Bool"
	case f.Kind == ir.Time:
		v.Builder = "Time"
	case f.Kind == ir.JSON:
		v.Builder, v.Type = "JSON", "map[string]any{}"
		v.Annotations = append(v.Annotations, `entgql.Type("JSON")`)
	case f.Kind == ir.EnumK:
		v.Builder, v.GoType = "Enum", "enum."+f.Enum+`("")`
		v.Annotations = append(v.Annotations, fmt.Sprintf("entgql.Type(%q)", f.Enum))
	}
	if f.Nullable {
		// JSON columns (lists too) hold null themselves.
		v.Optional, v.Nillable = true, !f.List && f.Kind != ir.JSON
	}
	if f.Default != nil {
		v.Default = defaultValue(f)
	}
	v.Validators = validators(f)
	if f.Sortable {
		v.Annotations = append(v.Annotations, fmt.Sprintf("entgql.OrderField(%q)", f.OrderField()))
	}
	return v
}

func onDelete(s string) string {
	switch s {
	case "SET_NULL":
		return "entsql.OnDelete(entsql.SetNull)"
	case "RESTRICT":
		return "entsql.OnDelete(entsql.Restrict)"
	}
	return "entsql.OnDelete(entsql.Cascade)"
}

// columns are the columns of the fields named.
func columns(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = ir.Snake(n)
	}
	return out
}

// defaultValue is the Go literal of a field's default.
func defaultValue(f *ir.Field) string {
	d := f.Default
	if f.List {
		switch f.Kind {
		case ir.String:
			return "[]string{" + strings.Join(quoteAll(d.Items), ", ") + "}"
		case ir.Int:
			return "[]int{" + strings.Join(d.Items, ", ") + "}"
		case ir.Float:
			return "[]float64{" + strings.Join(d.Items, ", ") + "}"
		case ir.EnumK:
			q := make([]string, len(d.Items))
			for i, it := range d.Items {
				q[i] = "enum." + f.Enum + ir.PascalValue(it)
			}
			return "[]enum." + f.Enum + "{" + strings.Join(q, ", ") + "}"
		}
	}
	switch f.Kind {
	case ir.String, ir.EnumK:
		return strconv.Quote(d.Raw)
	case ir.Int, ir.Boolean:
		return d.Raw
	case ir.Float:
		v, _ := strconv.ParseFloat(d.Raw, 64)
		return strconv.FormatFloat(v, 'g', -1, 64)
	case ir.Time:
		return "time.Now"
	}
	return ""
}

// validators are the validate calls of a field (lists are checked by the
// resolvers: ent has no validators for them).
func validators(f *ir.Field) []string {
	v := f.Validate
	if v.Empty() || f.List {
		return nil
	}
	var out []string
	name := f.Name
	if v.MinLen != nil || v.MaxLen != nil {
		out = append(out, fmt.Sprintf("validate.Length(%q, %d, %d)", name, intOr(v.MinLen, -1), intOr(v.MaxLen, -1)))
	}
	if v.Pattern != "" {
		out = append(out, fmt.Sprintf("validate.Pattern(%q, %q)", name, v.Pattern))
	}
	if v.Email {
		out = append(out, fmt.Sprintf("validate.Email(%q)", name))
	}
	if v.Min != nil || v.Max != nil {
		fn := "validate.IntRange"
		if f.Kind == ir.Float {
			fn = "validate.FloatRange"
		}
		out = append(out, fmt.Sprintf("%s(%q, %s, %s)", fn, name, floatLit(v.Min), floatLit(v.Max)))
	}
	return out
}

func intOr(p *int, d int) int {
	if p == nil {
		return d
	}
	return *p
}

func floatLit(p *float64) string {
	if p == nil {
		return "nil"
	}
	return "validate.Ptr(" + strconv.FormatFloat(*p, 'g', -1, 64) + ")"
}

func quoteAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.Quote(v)
	}
	return out
}

// uniqueAlone reports whether a type-level @unique covers exactly this field.
func uniqueAlone(m *ir.Model, name string) bool {
	for _, u := range m.Uniques {
		if len(u) == 1 && u[0] == name {
			return true
		}
	}
	return false
}
