// Package sdl loads Kiln schema files (GraphQL SDL with Kiln directives),
// validates them, and builds the intermediate representation. Every problem
// is reported at once as file:line:col: message, with a suggestion where one
// exists.
package sdl

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"entgo.io/ent/entc/gen"

	"kiln/generator/internal/ir"
)

// Directives is the SDL that defines Kiln's directives. The generator writes
// it next to the schema files so editors can validate them.
//
//go:embed directives.graphql
var Directives string

// DirectivesFile is the name under which Directives is written in schema/.
// The loader skips a file with this name.
const DirectivesFile = "kiln.directives.graphql"

var builtinScalars = map[string]ir.Kind{
	"String": ir.String, "Int": ir.Int, "Float": ir.Float, "Boolean": ir.Boolean,
	"ID": ir.ID, "Time": ir.Time, "JSON": ir.JSON,
}

// reservedTypes are names the generated API defines itself.
var reservedTypes = map[string]bool{
	"Query": true, "Mutation": true, "Subscription": true, "Node": true, "PageInfo": true,
	"Cursor": true, "OrderDirection": true, "KilnValue": true, "OnDelete": true, "Map": true,
	"Upload": true, "Time": true, "JSON": true, "Noder": true,
	// Built-in file types (File, like Kiln's other tables, is in
	// ir.KilnEntities).
	"UploadTicket": true, "UploadHeader": true,
	// Built-in account types.
	"TotpEnrollment": true, "TotpActivation": true,
	"AuthPayload": true, "Viewer": true, "CredentialsInput": true,
	// gqlgen binds its introspection types (__Directive, ...) to a Go type
	// of the same name without the underscores in the app's ent package.
	"Directive": true, "EnumValue": true, "InputValue": true,
}

func init() {
	for _, e := range ir.KilnEntities {
		reservedTypes[e] = true
	}
}

// reservedFields are added to every model.
var reservedFields = map[string]bool{"id": true, "createdAt": true, "updatedAt": true, "version": true}

type dirSpec struct {
	onType, onField bool
	args            map[string]bool
}

var directiveSpecs = map[string]dirSpec{
	"model":      {onType: true, args: set("table", "plural")},
	"unique":     {onType: true, onField: true, args: set("fields")},
	"index":      {onType: true, onField: true, args: set("fields")},
	"default":    {onField: true, args: set("value")},
	"readonly":   {onField: true},
	"serverOnly": {onField: true},
	"actor":      {onField: true},
	"sortable":   {onField: true},
	"length":     {onField: true, args: set("min", "max")},
	"range":      {onField: true, args: set("min", "max")},
	"pattern":    {onField: true, args: set("regex")},
	"email":      {onField: true},
	"belongsTo":  {onField: true, args: set("onDelete")},
	"hasMany":    {onField: true, args: set("field")},
	"hasOne":     {onField: true, args: set("field")},
	"manyToMany": {onField: true, args: set("inverse")},
	"auth":       {onType: true, onField: true, args: set("rules")},
	"realtime":   {onType: true, args: set("events")},
	"file":       {onField: true, args: set("accept", "maxSize")},
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func directiveNames() []string {
	names := make([]string, 0, len(directiveSpecs))
	for n := range directiveSpecs {
		names = append(names, "@"+n)
	}
	sort.Strings(names)
	return names
}

// loader carries state across the validation passes.
type loader struct {
	reporter
	schema   *ir.Schema
	models   map[string]*ast.Definition
	enums    map[string]*ast.Definition
	others   map[string]*ast.Definition // pass-through types
	typePos  map[string]*ast.Position
	fieldDef map[*ir.Field]*ast.FieldDefinition
	edgeDef  map[*ir.Edge]*ast.FieldDefinition
	fileDef  map[*ir.FileField]*ast.FieldDefinition
	modelDef map[*ir.Model]*ast.Definition
}

// Load parses and validates the given files and returns the IR. On any
// problem it returns Errors holding all of them.
func Load(files []ir.File) (*ir.Schema, error) {
	l := &loader{
		schema:   &ir.Schema{},
		models:   map[string]*ast.Definition{},
		enums:    map[string]*ast.Definition{},
		others:   map[string]*ast.Definition{},
		typePos:  map[string]*ast.Position{},
		fieldDef: map[*ir.Field]*ast.FieldDefinition{},
		edgeDef:  map[*ir.Edge]*ast.FieldDefinition{},
		fileDef:  map[*ir.FileField]*ast.FieldDefinition{},
		modelDef: map[*ir.Model]*ast.Definition{},
	}
	type parsed struct {
		name string
		doc  *ast.SchemaDocument
	}
	var docs []parsed
	for _, f := range files {
		if f.Name == DirectivesFile || strings.HasSuffix(f.Name, "/"+DirectivesFile) {
			continue
		}
		doc, err := parser.ParseSchema(&ast.Source{Name: f.Name, Input: f.Content})
		if err != nil {
			l.parseError(f.Name, f.Content, err)
			continue
		}
		docs = append(docs, parsed{f.Name, doc})
	}
	for _, p := range docs {
		l.collect(p.name, p.doc)
	}
	l.buildModels()
	l.checkTables()
	l.buildRules()
	l.pairRelations()
	l.checkNames()
	l.checkActors()
	l.buildConstraints()
	if len(l.errs) > 0 {
		l.errs.sort()
		return nil, l.errs
	}
	l.schema.Sort()
	return l.schema, nil
}

func (l *loader) parseError(file, src string, err error) {
	line, col, msg := 1, 1, err.Error()
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		msg = ge.Message
		if len(ge.Locations) > 0 {
			line, col = ge.Locations[0].Line, ge.Locations[0].Column
		}
	}
	line, col = fixPos(src, line, col)
	l.errs = append(l.errs, &Error{File: file, Line: line, Col: col, Msg: oneLine("syntax error: " + msg)})
}

// collect sorts the definitions of one document into models, enums and
// pass-through definitions.
func (l *loader) collect(file string, doc *ast.SchemaDocument) {
	var pass ast.SchemaDocument
	for _, d := range doc.Directives {
		l.at(d.Position, "directive definitions are not allowed in schema files (@%s); Kiln's directives are defined in %s", d.Name, DirectivesFile)
	}
	for _, s := range doc.Schema {
		l.at(s.Position, "schema definitions are not allowed; Kiln defines the root types")
	}
	for _, def := range doc.Definitions {
		if prev, dup := l.typePos[def.Name]; dup {
			l.at(def.Position, "duplicate type %s (first declared at %s)", def.Name, posString(prev))
			continue
		}
		if _, builtin := builtinScalars[def.Name]; builtin || reservedTypes[def.Name] {
			l.at(def.Position, "type name %s is reserved", def.Name)
			continue
		}
		l.typePos[def.Name] = def.Position
		isModel := def.Directives.ForName("model") != nil
		switch {
		case isModel && def.Kind != ast.Object:
			l.at(def.Directives.ForName("model").Position, "@model applies to object types, not %s", strings.ToLower(string(def.Kind)))
		case isModel:
			if !isPascal(def.Name) {
				l.at(def.Position, "model name %s must be PascalCase", def.Name)
			} else if canon := ir.GoName(def.Name); canon != def.Name {
				// gqlgen's Go names upper-case acronyms, ent's keep the name.
				l.at(def.Position, "model name %s: write %s (acronyms are upper case)", def.Name, canon)
			}
			l.models[def.Name] = def
		case def.Kind == ast.Enum:
			l.enums[def.Name] = def
			l.checkEnum(def)
		default:
			l.checkNoKilnDirectives(def)
			l.others[def.Name] = def
			pass.Definitions = append(pass.Definitions, def)
		}
	}
	for _, ext := range doc.Extensions {
		if ext.Directives.ForName("model") != nil {
			l.at(ext.Position, "extend type cannot declare @model; declare the model once")
		}
		l.checkNoKilnDirectives(ext)
		pass.Extensions = append(pass.Extensions, ext)
	}
	if len(pass.Definitions)+len(pass.Extensions) > 0 {
		var sb strings.Builder
		formatter.NewFormatter(&sb, formatter.WithIndent("  ")).FormatSchemaDocument(&pass)
		name := file
		l.schema.Extensions = append(l.schema.Extensions, ir.File{Name: name, Content: sb.String()})
	}
}

func (l *loader) checkNoKilnDirectives(def *ast.Definition) {
	for _, d := range def.Directives {
		if _, ok := directiveSpecs[d.Name]; ok {
			l.at(d.Position, "@%s applies to @model types only", d.Name)
		}
	}
	for _, f := range def.Fields {
		for _, d := range f.Directives {
			if _, ok := directiveSpecs[d.Name]; ok {
				l.at(d.Position, "@%s applies to fields of @model types only", d.Name)
			}
		}
	}
}

func (l *loader) checkEnum(def *ast.Definition) {
	e := &ir.Enum{Name: def.Name, Description: def.Description}
	seen := map[string]bool{}
	for _, v := range def.EnumValues {
		if seen[v.Name] {
			l.at(v.Position, "duplicate enum value %s.%s", def.Name, v.Name)
			continue
		}
		seen[v.Name] = true
		if !isUpperSnake(v.Name) {
			l.at(v.Position, "enum value %s.%s must be UPPER_SNAKE_CASE", def.Name, v.Name)
		}
		e.Values = append(e.Values, v.Name)
	}
	if len(e.Values) == 0 {
		l.at(def.Position, "enum %s has no values", def.Name)
	}
	l.schema.Enums = append(l.schema.Enums, e)
}

func (l *loader) knownTypeNames() []string {
	var names []string
	for n := range builtinScalars {
		names = append(names, n)
	}
	for n := range l.models {
		names = append(names, n)
	}
	for n := range l.enums {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// buildModels builds fields and edges of every model.
func (l *loader) buildModels() {
	names := make([]string, 0, len(l.models))
	for n := range l.models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		def := l.models[name]
		m := &ir.Model{Name: def.Name, Description: def.Description, Table: ir.Ident(tableName(def.Name))}
		l.modelDef[m] = def
		if md := def.Directives.ForName("model"); md != nil {
			if a := md.Arguments.ForName("table"); a != nil {
				if a.Value.Kind != ast.StringValue || !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(a.Value.Raw) {
					l.at(a.Value.Position, "@model(table:) must be a snake_case string")
				} else {
					m.Table = ir.Ident(a.Value.Raw)
				}
			}
			if a := md.Arguments.ForName("plural"); a != nil {
				if a.Value.Kind != ast.StringValue || !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`).MatchString(a.Value.Raw) || a.Value.Raw == def.Name {
					l.at(a.Value.Position, "@model(plural:) must be a name of letters and digits other than the type's own, such as %q", def.Name+"List")
				} else {
					m.PluralName = ir.UpperFirst(a.Value.Raw)
				}
			}
		}
		l.checkDirectives(def.Directives, true)
		if rt := def.Directives.ForName("realtime"); rt != nil {
			m.Realtime = []string{"created", "updated", "deleted"}
			if a := rt.Arguments.ForName("events"); a != nil {
				m.Realtime = nil
				if a.Value.Kind != ast.ListValue || len(a.Value.Children) == 0 {
					l.at(a.Position, "@realtime(events:) is a non-empty list such as [created, updated]")
				}
				for _, c := range a.Value.Children {
					ev := c.Value.Raw
					if !contains([]string{"created", "updated", "deleted"}, ev) {
						l.at(c.Value.Position, "unknown realtime event %s; use created, updated or deleted%s", ev, suggest(ev, []string{"created", "updated", "deleted"}))
						continue
					}
					if !contains(m.Realtime, ev) {
						m.Realtime = append(m.Realtime, ev)
					}
				}
			}
		}
		seen := map[string]*ast.Position{}
		for _, fd := range def.Fields {
			if prev, dup := seen[fd.Name]; dup {
				l.at(fd.Position, "duplicate field %s.%s (first declared at %s)", def.Name, fd.Name, posString(prev))
				continue
			}
			seen[fd.Name] = fd.Position
			if reservedFields[fd.Name] {
				l.at(fd.Position, "field name %s.%s is reserved: every model gets id, createdAt, updatedAt and version", def.Name, fd.Name)
				continue
			}
			if !isCamel(fd.Name) {
				l.at(fd.Position, "field name %s.%s must be camelCase", def.Name, fd.Name)
				continue
			}
			if canon := Camel(ir.Snake(fd.Name)); canon != fd.Name {
				l.at(fd.Position, "field name %s.%s: write %s (acronyms are upper case)", def.Name, fd.Name, canon)
				continue
			}
			if len(fd.Arguments) > 0 {
				l.at(fd.Position, "model fields take no arguments (%s.%s)", def.Name, fd.Name)
			}
			l.checkDirectives(fd.Directives, false)
			l.buildField(m, fd)
		}
		l.schema.Models = append(l.schema.Models, m)
	}
}

func (l *loader) checkDirectives(ds ast.DirectiveList, onType bool) {
	for _, d := range ds {
		spec, ok := directiveSpecs[d.Name]
		if !ok {
			l.at(d.Position, "unknown directive @%s%s", d.Name, suggest("@"+d.Name, directiveNames()))
			continue
		}
		if onType && !spec.onType {
			l.at(d.Position, "@%s applies to fields, not types", d.Name)
		}
		if !onType && !spec.onField {
			l.at(d.Position, "@%s applies to types, not fields", d.Name)
		}
		for _, a := range d.Arguments {
			if !spec.args[a.Name] {
				var names []string
				for n := range spec.args {
					names = append(names, n)
				}
				l.at(a.Position, "unknown argument %s on @%s%s", a.Name, d.Name, suggest(a.Name, names))
			}
		}
		if !onType && (d.Name == "unique" || d.Name == "index") && d.Arguments.ForName("fields") != nil {
			l.at(d.Position, "@%s(fields:) belongs on the type; on a field use @%s alone", d.Name, d.Name)
		}
	}
}

func (l *loader) buildField(m *ir.Model, fd *ast.FieldDefinition) {
	t := fd.Type
	list := t.Elem != nil
	base := t
	if list {
		base = t.Elem
		if base.Elem != nil {
			l.at(fd.Position, "nested lists are not supported (%s.%s)", m.Name, fd.Name)
			return
		}
	}
	tn := base.NamedType
	dirs := fd.Directives
	relDirs := []string{"belongsTo", "hasMany", "hasOne", "manyToMany"}
	var rel *ast.Directive
	for _, rn := range relDirs {
		if d := dirs.ForName(rn); d != nil {
			if rel != nil {
				l.at(d.Position, "a field has one relation directive; %s.%s has @%s and @%s", m.Name, fd.Name, rel.Name, d.Name)
				continue
			}
			rel = d
		}
	}
	if _, isModel := l.models[tn]; isModel {
		l.buildEdge(m, fd, rel, list)
		return
	}
	if tn == "File" {
		if rel != nil {
			l.at(rel.Position, "@%s needs a @model type, but %s.%s has type File", rel.Name, m.Name, fd.Name)
			return
		}
		l.buildFileField(m, fd, list)
		return
	}
	if d := dirs.ForName("file"); d != nil {
		l.at(d.Position, "@file applies to File fields, but %s.%s has type %s", m.Name, fd.Name, fd.Type.String())
	}
	if rel != nil {
		l.at(rel.Position, "@%s needs a @model type, but %s.%s has type %s", rel.Name, m.Name, fd.Name, tn)
		return
	}
	f := &ir.Field{Name: fd.Name, Description: fd.Description, List: list, Nullable: !t.NonNull}
	if list && !base.NonNull {
		l.at(fd.Position, "list items must be non-null: write [%s!]", tn)
	}
	if k, ok := builtinScalars[tn]; ok {
		f.Kind = k
	} else if _, ok := l.enums[tn]; ok {
		f.Kind, f.Enum = ir.EnumK, tn
	} else if _, ok := l.others[tn]; ok {
		l.at(fd.Type.Position, "%s.%s has type %s, which is not a @model, enum or scalar", m.Name, fd.Name, tn)
		return
	} else {
		l.at(fd.Type.Position, "unknown type %s%s", tn, suggest(tn, l.knownTypeNames()))
		return
	}
	if list && (f.Kind == ir.JSON || f.Kind == ir.Time || f.Kind == ir.Boolean || f.Kind == ir.ID) {
		l.at(fd.Type.Position, "lists of %s are not supported; use [String!], [Int!], [Float!] or a list of an enum", tn)
		return
	}
	l.fieldDef[f] = fd
	l.applyFieldDirectives(m, f, fd)
	m.Fields = append(m.Fields, f)
}

func (l *loader) applyFieldDirectives(m *ir.Model, f *ir.Field, fd *ast.FieldDefinition) {
	where := m.Name + "." + f.Name
	defer func() {
		if d := fd.Directives.ForName("serverOnly"); d != nil && !f.Nullable && !f.List && f.Default == nil {
			l.at(d.Position, "%s is @serverOnly, so clients cannot set it: give it a @default or make it nullable", where)
		}
	}()
	scalarOnly := func(d *ast.Directive) bool {
		if f.List || f.Kind == ir.JSON {
			l.at(d.Position, "@%s does not apply to %s (a list or JSON field)", d.Name, where)
			return false
		}
		return true
	}
	for _, d := range fd.Directives {
		switch d.Name {
		case "unique":
			if scalarOnly(d) {
				f.Unique = true
			}
		case "index":
			if scalarOnly(d) {
				f.Index = true
			}
		case "readonly":
			f.Readonly = true
		case "serverOnly":
			f.ServerOnly = true
		case "actor":
			l.at(d.Position, "@actor applies to @belongsTo and @manyToMany relations, not to %s", where)
		case "sortable":
			if scalarOnly(d) {
				f.Sortable = true
			}
		case "default":
			l.applyDefault(f, d, where)
		case "length":
			if f.Kind != ir.String && !f.List {
				l.at(d.Position, "@length applies to String and list fields, but %s is %s", where, f.Kind)
				continue
			}
			f.Validate.MinLen = l.intArg(d, "min")
			f.Validate.MaxLen = l.intArg(d, "max")
			if f.Validate.MinLen == nil && f.Validate.MaxLen == nil {
				l.at(d.Position, "@length needs min, max or both")
			}
			if f.Validate.MinLen != nil && f.Validate.MaxLen != nil && *f.Validate.MinLen > *f.Validate.MaxLen {
				l.at(d.Position, "@length min %d is greater than max %d", *f.Validate.MinLen, *f.Validate.MaxLen)
			}
		case "range":
			if (f.Kind != ir.Int && f.Kind != ir.Float) || f.List {
				l.at(d.Position, "@range applies to Int and Float fields, but %s is %s", where, typeString(f))
				continue
			}
			f.Validate.Min = l.floatArg(d, "min")
			f.Validate.Max = l.floatArg(d, "max")
			if f.Validate.Min == nil && f.Validate.Max == nil {
				l.at(d.Position, "@range needs min, max or both")
			}
			if f.Validate.Min != nil && f.Validate.Max != nil && *f.Validate.Min > *f.Validate.Max {
				l.at(d.Position, "@range min is greater than max")
			}
		case "pattern":
			if f.Kind != ir.String || f.List {
				l.at(d.Position, "@pattern applies to String fields, but %s is %s", where, typeString(f))
				continue
			}
			a := d.Arguments.ForName("regex")
			if a == nil || a.Value.Kind != ast.StringValue {
				l.at(d.Position, "@pattern needs regex: \"...\"")
				continue
			}
			if _, err := regexp.Compile(a.Value.Raw); err != nil {
				l.at(a.Value.Position, "@pattern regex does not compile: %v", err)
				continue
			}
			f.Validate.Pattern = a.Value.Raw
		case "email":
			if f.Kind != ir.String || f.List {
				l.at(d.Position, "@email applies to String fields, but %s is %s", where, typeString(f))
				continue
			}
			f.Validate.Email = true
		}
	}
}

func typeString(f *ir.Field) string {
	n := string(f.Kind)
	if f.Kind == ir.EnumK {
		n = f.Enum
	}
	if f.List {
		return "[" + n + "!]"
	}
	return n
}

func (l *loader) intArg(d *ast.Directive, name string) *int {
	a := d.Arguments.ForName(name)
	if a == nil {
		return nil
	}
	n, err := strconv.Atoi(a.Value.Raw)
	if a.Value.Kind != ast.IntValue || err != nil || n < 0 {
		l.at(a.Value.Position, "@%s(%s:) must be a non-negative integer", d.Name, name)
		return nil
	}
	return &n
}

func (l *loader) floatArg(d *ast.Directive, name string) *float64 {
	a := d.Arguments.ForName(name)
	if a == nil {
		return nil
	}
	n, err := strconv.ParseFloat(a.Value.Raw, 64)
	if (a.Value.Kind != ast.IntValue && a.Value.Kind != ast.FloatValue) || err != nil {
		l.at(a.Value.Position, "@%s(%s:) must be a number", d.Name, name)
		return nil
	}
	return &n
}

func (l *loader) applyDefault(f *ir.Field, d *ast.Directive, where string) {
	a := d.Arguments.ForName("value")
	if a == nil {
		l.at(d.Position, "@default needs value:")
		return
	}
	v := a.Value
	bad := func() {
		l.at(v.Position, "bad default for %s: %s is not a valid %s", where, v.String(), typeString(f))
	}
	if f.List {
		if v.Kind != ast.ListValue {
			bad()
			return
		}
		dv := &ir.Value{Kind: f.Kind}
		for _, c := range v.Children {
			if !l.scalarLiteralOK(f, c.Value) {
				bad()
				return
			}
			dv.Items = append(dv.Items, c.Value.Raw)
		}
		f.Default = dv
		return
	}
	if v.Kind == ast.NullValue {
		if !f.Nullable {
			l.at(v.Position, "bad default for %s: null for a non-null field", where)
		}
		return
	}
	if f.Kind == ir.JSON || f.Kind == ir.ID {
		l.at(d.Position, "@default is not supported on %s fields (%s)", f.Kind, where)
		return
	}
	if f.Kind == ir.Time {
		if v.Kind != ast.StringValue || v.Raw != "now" {
			l.at(v.Position, "bad default for %s: Time fields take @default(value: \"now\")", where)
			return
		}
		f.Default = &ir.Value{Kind: ir.Time, Raw: "now"}
		return
	}
	if !l.scalarLiteralOK(f, v) {
		if f.Kind == ir.EnumK {
			e := l.enums[f.Enum]
			var vals []string
			for _, ev := range e.EnumValues {
				vals = append(vals, ev.Name)
			}
			l.at(v.Position, "bad default for %s: %s is not a value of %s%s", where, v.String(), f.Enum, suggest(v.Raw, vals))
			return
		}
		bad()
		return
	}
	f.Default = &ir.Value{Kind: f.Kind, Raw: v.Raw}
}

func (l *loader) scalarLiteralOK(f *ir.Field, v *ast.Value) bool {
	switch f.Kind {
	case ir.String:
		return v.Kind == ast.StringValue || v.Kind == ast.BlockValue
	case ir.Int:
		_, err := strconv.ParseInt(v.Raw, 10, 64)
		return v.Kind == ast.IntValue && err == nil
	case ir.Float:
		return v.Kind == ast.IntValue || v.Kind == ast.FloatValue
	case ir.Boolean:
		return v.Kind == ast.BooleanValue
	case ir.EnumK:
		if v.Kind != ast.EnumValue {
			return false
		}
		return l.enums[f.Enum].EnumValues.ForName(v.Raw) != nil
	}
	return false
}

func (l *loader) buildEdge(m *ir.Model, fd *ast.FieldDefinition, rel *ast.Directive, list bool) {
	where := m.Name + "." + fd.Name
	tn := fd.Type.Name()
	if rel == nil {
		l.at(fd.Position, "%s references model %s: add @belongsTo, @hasMany, @hasOne or @manyToMany", where, tn)
		return
	}
	e := &ir.Edge{Name: fd.Name, Description: fd.Description, Target: tn, Relation: ir.Relation(rel.Name), Nullable: !fd.Type.NonNull}
	switch e.Relation {
	case ir.BelongsTo, ir.HasOne:
		if list {
			l.at(rel.Position, "@%s needs a single %s, not a list (%s)", rel.Name, tn, where)
			return
		}
	case ir.HasMany, ir.ManyToMany:
		if !list {
			l.at(rel.Position, "@%s needs a list: write %s: [%s!]!", rel.Name, fd.Name, tn)
			return
		}
	}
	if e.Relation == ir.HasOne && !e.Nullable {
		l.at(fd.Type.Position, "@hasOne fields are nullable (the other record may not exist yet): write %s: %s", fd.Name, tn)
	}
	for _, d := range fd.Directives {
		switch d.Name {
		case "belongsTo", "hasMany", "hasOne", "manyToMany", "auth":
		case "actor":
			if e.Relation != ir.BelongsTo && e.Relation != ir.ManyToMany {
				l.at(d.Position, "@actor applies to @belongsTo and @manyToMany relations (the side that is set), not to @%s %s", e.Relation, where)
			}
			e.Actor = true
		case "readonly", "index":
			if e.Relation != ir.BelongsTo {
				l.at(d.Position, "@%s on a relation applies to @belongsTo fields only", d.Name)
			}
		default:
			if _, known := directiveSpecs[d.Name]; known {
				l.at(d.Position, "@%s does not apply to relation field %s", d.Name, where)
			}
		}
	}
	if e.Relation == ir.BelongsTo {
		e.OnDelete = "CASCADE"
		if a := rel.Arguments.ForName("onDelete"); a != nil {
			switch a.Value.Raw {
			case "CASCADE", "RESTRICT":
				e.OnDelete = a.Value.Raw
			case "SET_NULL":
				e.OnDelete = a.Value.Raw
				if !e.Nullable {
					l.at(a.Value.Position, "onDelete: SET_NULL needs a nullable field: write %s: %s", fd.Name, tn)
				}
			default:
				l.at(a.Value.Position, "onDelete must be CASCADE, SET_NULL or RESTRICT%s", suggest(a.Value.Raw, []string{"CASCADE", "SET_NULL", "RESTRICT"}))
			}
		}
		fk := &ir.Field{Name: fd.Name + "ID", Kind: ir.ID, Nullable: e.Nullable, Edge: e,
			Readonly: fd.Directives.ForName("readonly") != nil, Index: true}
		if m.Field(fk.Name) != nil || l.modelDef[m].Fields.ForName(fk.Name) != nil {
			l.at(fd.Position, "%s stores its reference in %s.%s, which is already declared", where, m.Name, fk.Name)
		}
		e.FK = fk
		m.Fields = append(m.Fields, fk)
	}
	for _, other := range m.Fields {
		if other.Name == fd.Name+"ID" && other.Edge == nil {
			l.at(l.fieldDef[other].Position, "field %s.%s clashes with the reference column of %s", m.Name, other.Name, where)
		}
	}
	l.edgeDef[e] = fd
	m.Edges = append(m.Edges, e)
}

// checkActors reports @actor relations whose target has no owner: without
// one, "a record the viewer owns" means nothing.
func (l *loader) checkActors() {
	for _, m := range l.schema.Models {
		for _, e := range m.Edges {
			t := l.schema.Model(e.Target)
			if !e.Actor || t == nil || len(t.OwnerFields()) > 0 {
				continue
			}
			d := l.edgeDef[e].Directives.ForName("actor")
			l.at(d.Position, "@actor on %s.%s needs an owner on %s (an @auth rule with allow: owner), so that the viewer's own records are known", m.Name, e.Name, e.Target)
		}
	}
}

// pairRelations finds the inverse of every edge and reports missing ones.
func (l *loader) pairRelations() {
	for _, m := range l.schema.Models {
		for _, e := range m.Edges {
			fd := l.edgeDef[e]
			rel := fd.Directives.ForName(string(e.Relation))
			target := l.schema.Model(e.Target)
			if target == nil {
				continue
			}
			switch e.Relation {
			case ir.HasMany, ir.HasOne:
				name := ""
				if a := rel.Arguments.ForName("field"); a != nil {
					name = a.Value.Raw
				} else {
					var cands []string
					for _, te := range target.Edges {
						if te.Relation == ir.BelongsTo && te.Target == m.Name {
							cands = append(cands, te.Name)
						}
					}
					switch len(cands) {
					case 1:
						name = cands[0]
					case 0:
						name := l.freeField(e.Target, ir.LowerFirst(m.Name), ir.LowerFirst(m.Name)+"Of"+ir.UpperFirst(e.Name))
						l.at(rel.Position, "missing inverse relation: %s needs a field `%s: %s @belongsTo` for %s.%s", e.Target, name, m.Name, m.Name, e.Name)
						continue
					default:
						l.at(rel.Position, "ambiguous inverse relation for %s.%s: set @%s(field:) to one of %s", m.Name, e.Name, e.Relation, strings.Join(cands, ", "))
						continue
					}
				}
				inv := target.Edge(name)
				if inv == nil || inv.Relation != ir.BelongsTo || inv.Target != m.Name {
					var cands []string // relations that can still pair with e
					for _, te := range target.Edges {
						if te.Relation == ir.BelongsTo && te.Target == m.Name && te.Inverse == "" {
							cands = append(cands, te.Name)
						}
					}
					if inv == nil {
						l.at(rel.Position, "missing inverse relation: %s has no field %s for %s.%s%s", e.Target, name, m.Name, e.Name, suggest(name, cands))
					} else {
						l.at(rel.Position, "inverse %s.%s of %s.%s must be `%s: %s @belongsTo`", e.Target, name, m.Name, e.Name, name, m.Name)
					}
					continue
				}
				if inv.Inverse != "" {
					l.at(rel.Position, "%s.%s is already the inverse of %s.%s", e.Target, name, m.Name, inv.Inverse)
					continue
				}
				e.Inverse, inv.Inverse = inv.Name, e.Name
				if e.Relation == ir.HasOne {
					inv.Unique = true
					inv.FK.Unique = true
				}
			case ir.ManyToMany:
				if e.Inverse != "" {
					continue
				}
				a := rel.Arguments.ForName("inverse")
				if a == nil {
					l.at(rel.Position, "@manyToMany needs inverse: the name of the matching field on %s", e.Target)
					continue
				}
				inv := target.Edge(a.Value.Raw)
				if inv == nil || inv.Relation != ir.ManyToMany || inv.Target != m.Name || inv == e {
					var cands []string
					for _, te := range target.Edges {
						if te.Relation == ir.ManyToMany && te.Target == m.Name && te != e {
							cands = append(cands, te.Name)
						}
					}
					l.at(a.Value.Position, "missing inverse relation: %s needs a field `%s: [%s!]! @manyToMany(inverse: %q)`%s", e.Target, a.Value.Raw, m.Name, e.Name, suggest(a.Value.Raw, cands))
					continue
				}
				ia := l.edgeDef[inv].Directives.ForName("manyToMany").Arguments.ForName("inverse")
				if ia == nil || ia.Value.Raw != e.Name {
					l.at(l.edgeDef[inv].Position, "%s.%s must declare @manyToMany(inverse: %q) to pair with %s.%s", e.Target, inv.Name, e.Name, m.Name, e.Name)
					continue
				}
				e.Inverse, inv.Inverse = inv.Name, e.Name
				// The side that sorts first owns the join table.
				e.Owner = m.Name+"."+e.Name < e.Target+"."+inv.Name
				inv.Owner = !e.Owner
			}
		}
	}
	for _, m := range l.schema.Models {
		for _, e := range m.Edges {
			if e.Relation == ir.BelongsTo && e.Inverse == "" && l.schema.Model(e.Target) != nil {
				if other := unpairedInverse(l.schema.Model(e.Target), m.Name); other != nil {
					// The target declares the other side, which did not pair (an error of its own).
					l.at(l.edgeDef[e].Position, "missing inverse relation for %s.%s: set @%s(field: %q) on %s.%s", m.Name, e.Name, other.Relation, e.Name, e.Target, other.Name)
					continue
				}
				plural := ir.LowerFirst(ir.Plural(m.Name))
				if def := l.models[e.Target]; def != nil {
					if fd := def.Fields.ForName(plural); fd != nil && fd.Type.Name() == m.Name && fd.Type.Elem != nil {
						// The field is there, without a relation that pairs (a misspelled directive, say).
						l.at(l.edgeDef[e].Position, "missing inverse relation for %s.%s: declare %s.%s as `%s: [%s!]! @hasMany(field: %q)`", m.Name, e.Name, e.Target, plural, plural, m.Name, e.Name)
						continue
					}
				}
				name := l.freeField(e.Target, plural, plural+"As"+ir.UpperFirst(e.Name))
				l.at(l.edgeDef[e].Position, "missing inverse relation: %s needs a field `%s: [%s!]! @hasMany(field: %q)` (or @hasOne) for %s.%s", e.Target, name, m.Name, e.Name, m.Name, e.Name)
			}
		}
	}
}

// checkTables reports models sharing a table and tables named like Kiln's own.
func (l *loader) checkTables() {
	seen := map[string]*ir.Model{}
	for _, m := range l.schema.Models {
		pos := l.modelDef[m].Position
		if strings.HasPrefix(m.Table, "kiln_") || m.Table == "goose_db_version" {
			l.at(pos, "table name %s of %s is reserved for Kiln", m.Table, m.Name)
		}
		if prev, dup := seen[m.Table]; dup {
			l.at(pos, "%s and %s both use table %s; set @model(table:) on one", prev.Name, m.Name, m.Table)
			continue
		}
		seen[m.Table] = m
	}
	l.checkQueryFields()
}

// builtinQueryFields are Query fields Kiln defines for every app.
var builtinQueryFields = []string{"node", "nodes", "viewer"}

// checkQueryFields refuses two models whose Query fields (the single
// record, the list) have the same name.
func (l *loader) checkQueryFields() {
	owner := map[string]string{}
	for _, f := range builtinQueryFields {
		owner[f] = "Kiln's built-in Query." + f
	}
	for _, m := range l.schema.Models {
		for _, f := range []string{m.Var(), m.ListField()} {
			if prev, dup := owner[f]; dup {
				l.at(l.modelDef[m].Position, "%s's Query field %s is already %s; set @model(plural:) or rename the type", m.Name, f, prev)
				continue
			}
			owner[f] = "the Query field of " + m.Name
		}
	}
}

// buildConstraints resolves composite @unique and @index on types.
func (l *loader) buildConstraints() {
	for _, m := range l.schema.Models {
		def := l.modelDef[m]
		for _, d := range def.Directives {
			if d.Name != "unique" && d.Name != "index" {
				continue
			}
			a := d.Arguments.ForName("fields")
			if a == nil || a.Value.Kind != ast.ListValue || len(a.Value.Children) == 0 {
				l.at(d.Position, "@%s on a type needs fields: [\"a\", \"b\"]", d.Name)
				continue
			}
			var cols []string
			for _, c := range a.Value.Children {
				name := c.Value.Raw
				if e := m.Edge(name); e != nil && e.FK != nil {
					name = e.FK.Name
				}
				if m.FileField(name) != nil {
					l.at(c.Value.Position, "@%s: %s.%s is a File field; files cannot be unique or indexed", d.Name, m.Name, name)
					continue
				}
				f := m.Field(name)
				if f == nil && !reservedFields[name] {
					var cands []string // what @unique and @index take
					for _, f := range m.Fields {
						if !f.List && f.Kind != ir.JSON && f.Edge == nil {
							cands = append(cands, f.Name)
						}
					}
					for _, e := range m.Edges {
						if e.FK != nil {
							cands = append(cands, e.Name)
						}
					}
					l.at(c.Value.Position, "@%s: %s has no field %s%s", d.Name, m.Name, c.Value.Raw, suggest(c.Value.Raw, cands))
					continue
				}
				if f != nil && (f.List || f.Kind == ir.JSON) {
					l.at(c.Value.Position, "@%s: %s.%s is a list or JSON field", d.Name, m.Name, name)
					continue
				}
				cols = append(cols, name)
			}
			if len(cols) != len(a.Value.Children) {
				continue
			}
			if d.Name == "unique" {
				m.Uniques = append(m.Uniques, cols)
			} else {
				m.Indexes = append(m.Indexes, cols)
			}
		}
	}
}

func posString(p *ast.Position) string {
	if p == nil {
		return "?"
	}
	name := ""
	if p.Src != nil {
		name = p.Src.Name
	}
	return fmt.Sprintf("%s:%d:%d", name, p.Line, p.Column)
}

func isPascal(s string) bool {
	return s != "" && unicode.IsUpper(rune(s[0])) && regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`).MatchString(s)
}

func isCamel(s string) bool {
	return s != "" && unicode.IsLower(rune(s[0])) && regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`).MatchString(s)
}

func isUpperSnake(s string) bool {
	return regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(s)
}

// tableName is the snake_case plural of a type name.
func tableName(typ string) string { return tablePlural(ir.Snake(typ)) }

// tablePlural is the rule that named the tables of existing apps; it stays
// as it is (a better plural would rename tables), while API names use
// ir.Plural.
func tablePlural(s string) string {
	switch {
	case strings.HasSuffix(s, "s"), strings.HasSuffix(s, "x"), strings.HasSuffix(s, "ch"), strings.HasSuffix(s, "sh"):
		return s + "es"
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiouAEIOU", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

// Camel is the GraphQL name ent and entgql derive from a snake_case name.
func Camel(s string) string {
	return gen.Funcs["camel"].(func(string) string)(s)
}

// freeField returns the first of names that no field of the model named
// model declares, for a hint that asks to add a field; the last one with a
// number when all are taken.
func (l *loader) freeField(model string, names ...string) string {
	def := l.models[model]
	taken := func(n string) bool { return def != nil && def.Fields.ForName(n) != nil }
	for _, n := range names {
		if !taken(n) {
			return n
		}
	}
	last := names[len(names)-1]
	for i := 2; ; i++ {
		if n := fmt.Sprintf("%s%d", last, i); !taken(n) {
			return n
		}
	}
}

// unpairedInverse returns the one @hasMany or @hasOne of t to the model
// named target that is not paired, or nil.
func unpairedInverse(t *ir.Model, target string) *ir.Edge {
	if t == nil {
		return nil
	}
	var found *ir.Edge
	for _, e := range t.Edges {
		if (e.Relation == ir.HasMany || e.Relation == ir.HasOne) && e.Target == target && e.Inverse == "" {
			if found != nil {
				return nil
			}
			found = e
		}
	}
	return found
}
