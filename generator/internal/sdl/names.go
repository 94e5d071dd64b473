package sdl

import (
	"slices"
	"sort"
	"strings"

	"entgo.io/ent/entc/gen"

	"kiln/generator/internal/ir"
)

// builtinMutations are the Mutation fields Kiln defines for every app (the
// account and file APIs).
var builtinMutations = []string{
	"signUp", "signIn", "signInAnonymously", "refreshSession", "signOut", "signOutEverywhere",
	"changePassword", "linkAccount", "deleteAccount", "requestPasswordReset", "resetPassword",
	"assignRole", "revokeRole", "setClaims", "createUpload", "completeUpload", "uploadFile",
}

// renames are the suggestions for model names the generated Go cannot
// have; other names get "<Name>Item".
var renames = map[string]string{
	"Client": "Customer", "Log": "LogEntry", "Policy": "AccessPolicy", "Package": "Parcel",
	"Schema": "DataSchema", "Value": "Amount", "Query": "SavedQuery", "Mutation": "Change",
	"Config": "Setting", "Hook": "Webhook", "Account": "UserAccount", "Type": "Kind",
}

func rename(name string) string {
	if r, ok := renames[name]; ok {
		return r
	}
	return name + "Item"
}

// checkNames refuses names whose generated identifiers would clash: a
// model the generated Go cannot name (a Go keyword or predeclared
// identifier as its package, one of ent's own identifiers), two types or
// fields deriving the same generated name, a model whose mutation is one of
// Kiln's. Every clash is reported at the schema's position, with the name
// to use instead; the rules are those of ir's name functions.
func (l *loader) checkNames() {
	type owner struct {
		what string
		m    *ir.Model
	}
	types := map[string]owner{}
	for name := range l.typePos {
		if l.models[name] == nil {
			types[name] = owner{what: "the type " + name}
		}
	}
	pkgs := map[string]owner{}
	for _, p := range ir.EntPackages {
		pkgs[p] = owner{what: "ent's package ent/" + p}
	}
	for _, p := range ir.GeneratedImports {
		pkgs[p] = owner{what: "the name of a package the generated code imports"}
	}
	for _, p := range ir.GeneratedLocals {
		pkgs[p] = owner{what: "the name of a variable in the generated code, which would hide the package"}
	}
	for c := 'a'; c <= 'z'; c++ {
		pkgs[string(c)] = owner{what: "the name of a variable in the generated code, which would hide the package"}
	}
	mutations := map[string]owner{}
	for _, f := range builtinMutations {
		mutations[f] = owner{what: "Kiln's built-in Mutation." + f}
	}
	subs := map[string]owner{}
	for _, m := range l.schema.Models {
		pos := l.modelDef[m].Position
		if err := gen.ValidSchemaName(m.Name); err != nil {
			l.at(pos, "model name %s cannot be used: the generated Go would not compile (%s); rename the type, for example to %s", m.Name, strings.TrimPrefix(err.Error(), "schema "), rename(m.Name))
			continue
		}
		if slices.Contains(ir.EntModelFixed, m.Name) {
			l.at(pos, "model name %s cannot be used: ent declares %s or with%s itself in the generated Go; rename the type, for example to %s", m.Name, m.Name, m.Name, rename(m.Name))
			continue
		}
		for _, p := range m.Packages() {
			if prev, dup := pkgs[p]; dup && prev.m != m {
				l.at(pos, "model name %s cannot be used: its Go package ent/%s is already %s; rename the type, for example to %s", m.Name, p, prev.what, rename(m.Name))
			}
			pkgs[p] = owner{"the package of model " + m.Name, m}
		}
		for _, n := range m.TypeNames()[1:] {
			if prev, dup := types[n]; dup && prev.m != m {
				l.at(pos, "model %s generates the type %s, which is already %s; rename one of them", m.Name, n, prev.what)
			}
			types[n] = owner{"generated for model " + m.Name, m}
		}
		_, muts, ss := m.RootFields()
		for _, f := range muts {
			if prev, dup := mutations[f]; dup {
				l.at(pos, "model %s generates Mutation.%s, which is already %s; rename the type, for example to %s", m.Name, f, prev.what, rename(m.Name))
				continue
			}
			mutations[f] = owner{"the mutation of model " + m.Name, m}
		}
		for _, f := range ss {
			if prev, dup := subs[f]; dup {
				l.at(pos, "model %s generates Subscription.%s, which is already %s; rename the type", m.Name, f, prev.what)
				continue
			}
			subs[f] = owner{"the subscription of model " + m.Name, m}
		}
	}
	// A model named like a generated type of another: reported at the model
	// whose own name is taken.
	for _, m := range l.schema.Models {
		if prev, dup := types[m.Name]; dup && prev.m != nil && prev.m != m {
			l.at(l.modelDef[m].Position, "model name %s is already the name of a type %s; rename the type", m.Name, prev.what)
		}
	}
	for _, m := range l.schema.Models {
		l.checkFieldNames(m)
	}
}

// checkFieldNames refuses fields of one model whose generated filter
// fields, Go identifiers or columns clash.
func (l *loader) checkFieldNames(m *ir.Model) {
	gql := map[string]string{}
	goIDs := map[string]string{}
	cols := map[string]string{}
	for _, n := range ir.WhereInputFixed {
		gql[n] = "the WhereInput's own " + n
	}
	for _, n := range ir.EntFixed {
		goIDs[n] = "one of ent's own names"
	}
	for name := range reservedFields {
		g, ids := ir.FilterNames(name, false)
		for _, n := range g {
			gql[n] = "a filter of the built-in field " + name
		}
		for _, n := range ids {
			goIDs[n] = "generated for the built-in field " + name
		}
		cols[ir.Snake(name)] = "the built-in field " + name
	}
	check := func(name string, at func(format string, args ...any), g, ids, columns []string) {
		for _, n := range columns {
			if prev, dup := cols[n]; dup {
				at("field %s.%s cannot be used: its column %s is already that of %s; rename the field", m.Name, name, n, prev)
				return
			}
		}
		for _, n := range g {
			if prev, dup := gql[n]; dup {
				at("field %s.%s cannot be used: the filter %sWhereInput.%s it generates is already %s; rename the field", m.Name, name, m.Name, n, prev)
				return
			}
		}
		for _, n := range ids {
			if prev, dup := goIDs[n]; dup {
				at("field %s.%s cannot be used: the Go identifier %s it generates in package ent is already %s; rename the field", m.Name, name, n, prev)
				return
			}
		}
		for _, n := range columns {
			cols[n] = "field " + name
		}
		for _, n := range g {
			gql[n] = "a filter of field " + name
		}
		for _, n := range ids {
			goIDs[n] = "generated for field " + name
		}
	}
	type item struct {
		line, col int
		run       func()
	}
	var items []item
	for _, f := range m.Fields {
		f := f
		pos := l.modelDef[m].Position // a foreign key the loader adds
		if fd := l.fieldDef[f]; fd != nil {
			pos = fd.Position
		}
		g, ids := ir.FilterNames(f.Name, false)
		if f.Default == nil {
			// ent declares Default<Field> and UpdateDefault<Field> only for
			// a field with a default: without one, a field named "in" next
			// to one named "default" (DefaultIn, its filter) is fine.
			ids = slices.DeleteFunc(ids, func(n string) bool {
				return n == "Default"+ir.EntName(f.Name) || n == "UpdateDefault"+ir.EntName(f.Name)
			})
		}
		items = append(items, item{pos.Line, pos.Column, func() {
			check(f.Name, func(format string, args ...any) { l.at(pos, format, args...) }, g, ids, []string{f.Column()})
		}})
	}
	for _, e := range m.Edges {
		e := e
		fd := l.edgeDef[e]
		g, ids := ir.FilterNames(e.Name, true)
		items = append(items, item{fd.Position.Line, fd.Position.Column, func() {
			check(e.Name, func(format string, args ...any) { l.at(fd.Position, format, args...) }, g, ids, []string{e.Column()})
		}})
	}
	for _, f := range m.Files {
		f := f
		fd := l.fileDef[f]
		_, ids := ir.FilterNames(f.Name, true)
		columns := []string{f.Column()}
		if !f.List {
			_, fk := ir.FilterNames(Camel(f.FKColumn()), false)
			ids = append(ids, fk...)
			columns = append(columns, f.FKColumn())
		} else {
			columns = append(columns, f.LinkEdge())
		}
		items = append(items, item{fd.Position.Line, fd.Position.Column, func() {
			check(f.Name, func(format string, args ...any) { l.at(fd.Position, format, args...) }, nil, ids, columns)
		}})
	}
	// In declaration order, so the second of two clashing fields is the one
	// reported.
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].line != items[j].line {
			return items[i].line < items[j].line
		}
		return items[i].col < items[j].col
	})
	for _, it := range items {
		it.run()
	}
}
