// Package entschema emits the ent schema (ent/schema/*.go) for an IR, with
// the entgql annotations that drive the GraphQL types, filters, ordering and
// pagination. It is pure: IR in, files out.
package entschema

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/sdl"
	"kiln/generator/internal/write"
)

// Files returns ent/schema/<model>.go for every model, and the enum and
// validation packages they use.
func Files(s *ir.Schema, module string) []write.File {
	var files []write.File
	for _, m := range s.Models {
		files = append(files, write.File{
			Path:    "ent/schema/" + sdl.Snake(m.Name) + ".go",
			Content: []byte(model(s, m, module)),
		})
	}
	files = append(files, write.File{Path: "ent/schema/enum/enum.go", Content: []byte(enums(s))})
	files = append(files, write.File{Path: "ent/schema/kiln_auth.go", Content: []byte(authSource)})
	files = append(files, write.File{Path: "ent/schema/kiln_files.go", Content: []byte(filesSource(s))})
	return files
}

// Column is the ent field name (and SQL column) of a GraphQL field name.
func Column(name string) string { return sdl.Snake(name) }

// OrderField is the entgql order field name of a GraphQL field name.
func OrderField(name string) string { return strings.ToUpper(sdl.Snake(name)) }

func model(s *ir.Schema, m *ir.Model, module string) string {
	var b strings.Builder
	imports := map[string]bool{
		"entgo.io/ent": true, "entgo.io/ent/schema": true, "entgo.io/ent/schema/field": true,
		"entgo.io/ent/dialect/entsql": true, "entgo.io/contrib/entgql": true,
		"github.com/google/uuid": true, "time": true,
	}
	var fields, edges, indexes []string

	desc := func(d string) string {
		if d == "" {
			return ""
		}
		return ".\n\t\t\tComment(" + strconv.Quote(d) + ")"
	}
	fields = append(fields,
		`field.UUID("id", uuid.UUID{}).Default(uuid.New).Immutable()`,
		`field.Time("created_at").Default(time.Now).Immutable().Annotations(entgql.OrderField("CREATED_AT"))`,
		`field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).Annotations(entgql.OrderField("UPDATED_AT"))`,
		`field.Int("version").Default(1).Comment("Incremented on every update; send it back in updates to detect conflicts.")`,
	)
	for _, f := range m.Fields {
		col := Column(f.Name)
		var c string
		var ann []string
		switch {
		case f.Edge != nil:
			c = fmt.Sprintf("field.UUID(%q, uuid.UUID{})", col)
		case f.List && f.Kind == ir.String:
			c = fmt.Sprintf("field.Strings(%q)", col)
		case f.List && f.Kind == ir.Int:
			c = fmt.Sprintf("field.Ints(%q)", col)
		case f.List && f.Kind == ir.Float:
			c = fmt.Sprintf("field.Floats(%q)", col)
		case f.List && f.Kind == ir.EnumK:
			imports[module+"/ent/schema/enum"] = true
			c = fmt.Sprintf("field.JSON(%q, []enum.%s{})", col, f.Enum)
			ann = append(ann, fmt.Sprintf("entgql.Type(%q)", "["+f.Enum+"!]"))
		case f.Kind == ir.String:
			c = fmt.Sprintf("field.Text(%q)", col)
		case f.Kind == ir.ID:
			c = fmt.Sprintf("field.String(%q)", col)
			ann = append(ann, `entgql.Type("ID")`)
		case f.Kind == ir.Int:
			c = fmt.Sprintf("field.Int(%q)", col)
		case f.Kind == ir.Float:
			c = fmt.Sprintf("field.Float(%q)", col)
		case f.Kind == ir.Boolean:
			c = fmt.Sprintf("field.Bool(%q)", col)
		case f.Kind == ir.Time:
			c = fmt.Sprintf("field.Time(%q)", col)
		case f.Kind == ir.JSON:
			c = fmt.Sprintf("field.JSON(%q, map[string]any{})", col)
			ann = append(ann, `entgql.Type("JSON")`)
		case f.Kind == ir.EnumK:
			imports[module+"/ent/schema/enum"] = true
			c = fmt.Sprintf("field.Enum(%q).GoType(enum.%s(\"\"))", col, f.Enum)
			ann = append(ann, fmt.Sprintf("entgql.Type(%q)", f.Enum))
		}
		if f.Nullable {
			if f.List || f.Kind == ir.JSON {
				c += ".Optional()"
			} else {
				c += ".Optional().Nillable()"
			}
		}
		if f.Unique {
			c += ".Unique()"
		}
		if f.Default != nil {
			c += defaultExpr(f)
		}
		c += validators(f, imports)
		if f.Sortable {
			ann = append(ann, fmt.Sprintf("entgql.OrderField(%q)", OrderField(f.Name)))
		}
		if len(ann) > 0 {
			c += ".\n\t\t\tAnnotations(" + strings.Join(ann, ", ") + ")"
		}
		c += desc(f.Description)
		fields = append(fields, c)
		if f.Index && !f.Unique && !uniqueAlone(m, f.Name) {
			indexes = append(indexes, fmt.Sprintf("index.Fields(%q)", col))
		}
	}
	for _, e := range m.Edges {
		target := e.Target
		name := Column(e.Name)
		inv := Column(e.Inverse)
		var c string
		switch e.Relation {
		case ir.BelongsTo:
			c = fmt.Sprintf("edge.From(%q, %s.Type).Ref(%q).Field(%q).Unique()", name, target, inv, Column(e.FK.Name))
			if !e.Nullable {
				c += ".Required()"
			}
		case ir.HasMany, ir.HasOne:
			c = fmt.Sprintf("edge.To(%q, %s.Type)", name, target)
			if e.Relation == ir.HasOne {
				c += ".Unique()"
			}
			tm := s.Model(target)
			fk := tm.Edge(e.Inverse)
			var ann []string
			ann = append(ann, onDelete(fk.OnDelete))
			if e.Relation == ir.HasMany {
				ann = append(ann, "entgql.RelayConnection()")
			}
			c += ".\n\t\t\tAnnotations(" + strings.Join(ann, ", ") + ")"
		case ir.ManyToMany:
			self := target == m.Name
			switch {
			case self && e.Owner:
				c = fmt.Sprintf("edge.To(%q, %s.Type).\n\t\t\tAnnotations(entgql.RelayConnection()).\n\t\t\tFrom(%q).\n\t\t\tAnnotations(entgql.RelayConnection())", name, target, inv)
			case self:
				continue // declared together with its owner
			case e.Owner:
				c = fmt.Sprintf("edge.To(%q, %s.Type).\n\t\t\tAnnotations(entgql.RelayConnection())", name, target)
			default:
				c = fmt.Sprintf("edge.From(%q, %s.Type).Ref(%q).\n\t\t\tAnnotations(entgql.RelayConnection())", name, target, inv)
			}
		}
		c += desc(e.Description)
		imports["entgo.io/ent/schema/edge"] = true
		edges = append(edges, c)
	}
	ff, fe, fi := fileFields(m)
	fields = append(fields, ff...)
	indexes = append(indexes, fi...)
	if len(fe) > 0 {
		imports["entgo.io/ent/schema/edge"] = true
		edges = append(edges, fe...)
	}
	for _, u := range m.Uniques {
		indexes = append(indexes, fmt.Sprintf("index.Fields(%s).Unique()", quoteCols(u)))
	}
	for _, ix := range m.Indexes {
		indexes = append(indexes, fmt.Sprintf("index.Fields(%s)", quoteCols(ix)))
	}
	if len(indexes) > 0 {
		imports["entgo.io/ent/schema/index"] = true
	}

	b.WriteString("package schema\n\nimport (\n")
	var imps []string
	for i := range imports {
		imps = append(imps, i)
	}
	sort.Strings(imps)
	for _, i := range imps {
		fmt.Fprintf(&b, "\t%q\n", i)
	}
	b.WriteString(")\n\n")
	if m.Description != "" {
		fmt.Fprintf(&b, "// %s %s\n", m.Name, strings.ReplaceAll(m.Description, "\n", "\n// "))
	} else {
		fmt.Fprintf(&b, "// %s is a Kiln model.\n", m.Name)
	}
	fmt.Fprintf(&b, "type %s struct {\n\tent.Schema\n}\n\n", m.Name)
	fmt.Fprintf(&b, "// Annotations of %s.\nfunc (%s) Annotations() []schema.Annotation {\n\treturn []schema.Annotation{\n", m.Name, m.Name)
	fmt.Fprintf(&b, "\t\tentsql.Annotation{Table: %q},\n", m.Table)
	fmt.Fprintf(&b, "\t\tentgql.QueryField(%q),\n", lowerFirst(plural(m.Name)))
	b.WriteString("\t\tentgql.RelayConnection(),\n\t\tentgql.MultiOrder(),\n")
	if m.Description != "" {
		fmt.Fprintf(&b, "\t\tschema.Comment(%q),\n", m.Description)
	}
	b.WriteString("\t}\n}\n\n")
	fmt.Fprintf(&b, "// Fields of %s.\nfunc (%s) Fields() []ent.Field {\n\treturn []ent.Field{\n", m.Name, m.Name)
	for _, f := range fields {
		fmt.Fprintf(&b, "\t\t%s,\n", f)
	}
	b.WriteString("\t}\n}\n")
	if len(edges) > 0 {
		fmt.Fprintf(&b, "\n// Edges of %s.\nfunc (%s) Edges() []ent.Edge {\n\treturn []ent.Edge{\n", m.Name, m.Name)
		for _, e := range edges {
			fmt.Fprintf(&b, "\t\t%s,\n", e)
		}
		b.WriteString("\t}\n}\n")
	}
	if len(indexes) > 0 {
		fmt.Fprintf(&b, "\n// Indexes of %s.\nfunc (%s) Indexes() []ent.Index {\n\treturn []ent.Index{\n", m.Name, m.Name)
		for _, ix := range indexes {
			fmt.Fprintf(&b, "\t\t%s,\n", ix)
		}
		b.WriteString("\t}\n}\n")
	}
	return b.String()
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

func quoteCols(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(Column(n))
	}
	return strings.Join(q, ", ")
}

func defaultExpr(f *ir.Field) string {
	d := f.Default
	if f.List {
		switch f.Kind {
		case ir.String:
			q := make([]string, len(d.Items))
			for i, it := range d.Items {
				q[i] = strconv.Quote(it)
			}
			return ".Default([]string{" + strings.Join(q, ", ") + "})"
		case ir.Int:
			return ".Default([]int{" + strings.Join(d.Items, ", ") + "})"
		case ir.Float:
			return ".Default([]float64{" + strings.Join(d.Items, ", ") + "})"
		case ir.EnumK:
			q := make([]string, len(d.Items))
			for i, it := range d.Items {
				q[i] = fmt.Sprintf("enum.%s%s", f.Enum, pascalValue(it))
			}
			return ".Default([]enum." + f.Enum + "{" + strings.Join(q, ", ") + "})"
		}
	}
	switch f.Kind {
	case ir.String:
		return ".Default(" + strconv.Quote(d.Raw) + ")"
	case ir.Int:
		return ".Default(" + d.Raw + ")"
	case ir.Float:
		v, _ := strconv.ParseFloat(d.Raw, 64)
		return ".Default(" + strconv.FormatFloat(v, 'g', -1, 64) + ")"
	case ir.Boolean:
		return ".Default(" + d.Raw + ")"
	case ir.EnumK:
		return ".Default(" + strconv.Quote(d.Raw) + ")"
	case ir.Time:
		return ".Default(time.Now)"
	}
	return ""
}

func validators(f *ir.Field, imports map[string]bool) string {
	v := f.Validate
	if v.Empty() || f.List {
		return ""
	}
	imports["kiln/runtime/validate"] = true
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
	return ".\n\t\t\tValidate(" + strings.Join(out, ").\n\t\t\tValidate(") + ")"
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

func lowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }

// plural is the plural of a type name, used for list query names.
func plural(s string) string {
	switch {
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiouAEIOU", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

// Plural is exported for emitters that name list fields.
func Plural(s string) string { return plural(s) }

// pascalValue turns an enum value (UPPER_SNAKE) into a Go identifier suffix.
func pascalValue(v string) string {
	parts := strings.Split(strings.ToLower(v), "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// PascalValue is exported for emitters that reference enum constants.
func PascalValue(v string) string { return pascalValue(v) }

func enums(s *ir.Schema) string {
	var b strings.Builder
	b.WriteString(`// Package enum holds the schema's enums as Go types shared by ent and the
// GraphQL layer.
package enum

import (
	"fmt"
	"io"
	"strconv"
)
`)
	for _, e := range s.Enums {
		fmt.Fprintf(&b, "\n// %s is the %s enum.\ntype %s string\n\n", e.Name, e.Name, e.Name)
		b.WriteString("// Values of " + e.Name + ".\nconst (\n")
		for _, v := range e.Values {
			fmt.Fprintf(&b, "\t%s%s %s = %q\n", e.Name, pascalValue(v), e.Name, v)
		}
		b.WriteString(")\n\n")
		var qs []string
		for _, v := range e.Values {
			qs = append(qs, e.Name+pascalValue(v))
		}
		fmt.Fprintf(&b, `// Values lists the values of %[1]s (ent uses it for the column's allowed values).
func (%[1]s) Values() []string {
	return []string{%[2]s}
}

// IsValid reports whether v is a value of %[1]s.
func (v %[1]s) IsValid() bool {
	switch v {
	case %[3]s:
		return true
	}
	return false
}

// String returns the value.
func (v %[1]s) String() string { return string(v) }

// MarshalGQL writes the value as a GraphQL enum.
func (v %[1]s) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(string(v))) }

// UnmarshalGQL reads a GraphQL enum value.
func (v *%[1]s) UnmarshalGQL(x any) error {
	s, ok := x.(string)
	if !ok {
		return fmt.Errorf("enum %[1]s must be a string, got %%T", x)
	}
	*v = %[1]s(s)
	if !v.IsValid() {
		return fmt.Errorf("%%q is not a valid %[1]s", s)
	}
	return nil
}
`, e.Name, strings.Join(quoteAll(e.Values), ", "), strings.Join(qs, ", "))
	}
	return b.String()
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
