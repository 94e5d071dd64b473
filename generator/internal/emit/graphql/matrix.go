package graphql

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"kiln/generator/internal/ir"
)

// matrixData is graph/authz_matrix_test.go
// (templates/authz_matrix_test.go.tmpl): for every model, it seeds random
// valid records, then for every viewer kind (anonymous, users with and
// without roles and claims, admin) checks lists, counts, get, nested edges
// and relation filters against the in-memory rules, and runs update and
// delete through the generated resolvers, expecting exactly the outcomes
// the rules give.
type matrixData struct {
	Module string
	// Roles and Claims are the roles and claim names the rules use.
	Roles, Claims []string
	// AAL: some rule requires an aal2 session, so viewers vary in level.
	AAL    bool
	Models []matrixModel
	// Seeds seed the models, targets of required references first; Links
	// then link records through the owning side of many-to-many edges.
	Seeds []seedView
	Links []matrixLink
	// Expects are the expect<Type><Edge> helpers the nested checks use.
	Expects []matrixExpect
	Uses    matrixUses
}

// matrixUses says which helpers of the matrix the schema's checks and
// seeds use.
type matrixUses struct {
	Some          bool // many-to-many links
	Query, One    bool // relation checks (GraphQL queries), unique edges
	QueryErrors   bool // orderings refused by field rules
	Pick, PickN   bool // enums, enum lists
	Strings, Ints bool // lists
	Floats, Num   bool
	Email, Str    bool // strings
}

// matrixModel is the checks of one model.
type matrixModel struct {
	Model *ir.Model
	// Edges are its relations: nested edge and relation filter checks.
	Edges []matrixEdge
	// Nested are the checks of its to-many edges' nested connections.
	Nested []matrixNested
}

// matrixEdge is a relation of the model checked nested and as a filter.
type matrixEdge struct {
	Edge   *ir.Edge
	Target *ir.Model
	Unique bool // to one record (x.Edges.E is a pointer)
}

// matrixNested is the checks of one to-many edge E (T -> U): filters sent
// on the nested connection at depth 2 for every relation of U (Depth2),
// one chain at depth 3 (Depth3), and filters and orderings on U's fields
// with their own read rules (Protected).
type matrixNested struct {
	Edge      *ir.Edge
	Target    *ir.Model
	Depth2    []matrixChain
	Depth3    *matrixChain
	Protected []matrixProtected
}

// matrixChain is a nested connection Edge filtered by has<Filter>With.
type matrixChain struct {
	Edge, Filter *ir.Edge
}

// matrixProtected filters (Where, on GraphQL; Cond, the same in Go on
// record y) or orders a nested connection by a field with its own rules.
type matrixProtected struct {
	Field       *ir.Field
	Where, Cond string
}

// matrixExpect is expect<Type><Edge>: the records of Type the viewer may
// read that have a readable neighbour through Edge.
type matrixExpect struct {
	Type *ir.Model
	Edge *ir.Edge
}

// matrixLink links seeded records through the owning side of a
// many-to-many edge.
type matrixLink struct {
	Model *ir.Model
	Edge  *ir.Edge
}

// seedView is seed<Model>.
type seedView struct {
	Model  *ir.Model
	Fields []seedField
}

// seedField sets one field of a seeded record: to Value, or for a
// reference (Ref) to a random record of the target, if there is one
// (sometimes none when Optional).
type seedField struct {
	Field    *ir.Field
	Value    string
	Ref      string
	Optional bool
}

// matrixTest emits graph/authz_matrix_test.go.
func matrixTest(s *ir.Schema, module string) string {
	d := matrixData{Module: module}
	d.Roles, d.Claims = rolesAndClaims(s)
	d.AAL = usesAAL2(s)
	expects := map[[2]string]bool{}
	for _, m := range s.Models {
		mm := matrixModel{Model: m}
		for i, e := range m.Edges {
			unique := e.Relation == ir.BelongsTo || e.Relation == ir.HasOne
			mm.Edges = append(mm.Edges, matrixEdge{Edge: e, Target: s.Model(e.Target), Unique: unique})
			d.Uses.Query, d.Uses.One = true, d.Uses.One || unique
			if !toMany(e) {
				continue
			}
			t := s.Model(e.Target)
			n := matrixNested{Edge: e, Target: t}
			for _, e2 := range t.Edges {
				n.Depth2 = append(n.Depth2, matrixChain{Edge: e, Filter: e2})
				expects[[2]string{t.Name, e2.Name}] = true
			}
			// Depth 3: one chain per to-many edge, rotating through the
			// targets' edges.
			var e2s []*ir.Edge
			for _, x := range t.Edges {
				if toMany(x) {
					e2s = append(e2s, x)
				}
			}
			if len(e2s) > 0 {
				e2 := e2s[i%len(e2s)]
				u := s.Model(e2.Target)
				n.Depth3 = &matrixChain{Edge: e2, Filter: u.Edges[i%len(u.Edges)]}
				expects[[2]string{u.Name, n.Depth3.Filter.Name}] = true
			}
			for _, f := range t.Fields {
				if len(f.Rules) == 0 {
					continue
				}
				if where, cond := protectedPredicate(f, "y"); where != "" {
					n.Protected = append(n.Protected, matrixProtected{Field: f, Where: where, Cond: cond})
					d.Uses.QueryErrors = d.Uses.QueryErrors || f.Sortable
				}
			}
			mm.Nested = append(mm.Nested, n)
		}
		d.Models = append(d.Models, mm)
	}
	for _, t := range s.Models {
		for _, e := range t.Edges {
			if expects[[2]string{t.Name, e.Name}] {
				d.Expects = append(d.Expects, matrixExpect{Type: t, Edge: e})
			}
		}
	}
	for _, m := range seedOrder(s) {
		d.Seeds = append(d.Seeds, seedFunc(s, m, &d.Uses))
	}
	for _, m := range s.Models {
		for _, e := range m.Edges {
			if e.Relation == ir.ManyToMany && e.Owner {
				d.Links = append(d.Links, matrixLink{Model: m, Edge: e})
				d.Uses.Some = true
			}
		}
	}
	return render("authz_matrix_test.go.tmpl", d)
}

func rolesAndClaims(s *ir.Schema) (roles, claims []string) {
	rs, cs := map[string]bool{}, map[string]bool{}
	collect := func(rules []ir.Rule) {
		for _, r := range rules {
			for _, role := range r.Roles {
				rs[role] = true
			}
			for _, c := range r.Where {
				if name, ok := strings.CutPrefix(c.Viewer, "claims."); ok {
					cs[name] = true
				}
			}
		}
	}
	for _, m := range s.Models {
		collect(m.Rules)
		for _, f := range m.Fields {
			collect(f.Rules)
		}
	}
	for r := range rs {
		roles = append(roles, r)
	}
	for c := range cs {
		claims = append(claims, c)
	}
	sort.Strings(roles)
	sort.Strings(claims)
	return roles, claims
}

// seedOrder sorts models so that targets of required references come first.
func seedOrder(s *ir.Schema) []*ir.Model {
	done := map[string]bool{}
	var out []*ir.Model
	for len(out) < len(s.Models) {
		progress := false
		for _, m := range s.Models {
			if done[m.Name] {
				continue
			}
			ready := true
			for _, e := range m.Edges {
				if e.Relation == ir.BelongsTo && !e.Nullable && e.Target != m.Name && !done[e.Target] {
					ready = false
				}
			}
			if ready {
				done[m.Name] = true
				out = append(out, m)
				progress = true
			}
		}
		if !progress { // a cycle of required references: seed the rest anyway
			for _, m := range s.Models {
				if !done[m.Name] {
					done[m.Name] = true
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// seedFunc is seed<Model>: random valid values for every field.
func seedFunc(s *ir.Schema, m *ir.Model, uses *matrixUses) seedView {
	v := seedView{Model: m}
	for _, f := range m.Fields {
		sf := seedField{Field: f, Optional: f.Nullable}
		switch {
		case f.Owner:
			sf.Value = "m.pool[m.rng.IntN(len(m.pool))]"
		case f.Edge != nil:
			sf.Ref, sf.Optional = f.Edge.Target, f.Edge.Target == m.Name || f.Nullable
		case f.List:
			n := 3
			if f.Validate.MaxLen != nil && *f.Validate.MaxLen < n {
				n = *f.Validate.MaxLen
			}
			switch f.Kind {
			case ir.String:
				sf.Value, uses.Strings = fmt.Sprintf("m.strings(%d)", n), true
			case ir.Int:
				sf.Value, uses.Ints = fmt.Sprintf("m.ints(%d)", n), true
			case ir.Float:
				sf.Value, uses.Floats = fmt.Sprintf("m.floats(%d)", n), true
			case ir.EnumK:
				sf.Value, uses.PickN = fmt.Sprintf("pickN(m.rng, %d, %s)", n, enumValues(s, f.Enum)), true
			}
		case f.Kind == ir.String && f.Validate.Email:
			sf.Value, uses.Email = "m.email()", true
		case f.Kind == ir.String:
			sf.Value, uses.Str = fmt.Sprintf("m.str(%q, %d, %d)", f.Validate.Pattern, intOr(f.Validate.MinLen), intOr(f.Validate.MaxLen)), true
		case f.Kind == ir.ID:
			sf.Value = "m.pool[m.rng.IntN(len(m.pool))]"
		case f.Kind == ir.Int:
			sf.Value, uses.Num = fmt.Sprintf("int(m.num(%s, %s))", floatOr(f.Validate.Min, "0"), floatOr(f.Validate.Max, "10")), true
		case f.Kind == ir.Float:
			sf.Value, uses.Num = fmt.Sprintf("m.num(%s, %s)", floatOr(f.Validate.Min, "0"), floatOr(f.Validate.Max, "10")), true
		case f.Kind == ir.Boolean:
			sf.Value = "m.rng.IntN(2) == 0"
		case f.Kind == ir.Time:
			sf.Value = "time.Now().Add(time.Duration(m.rng.IntN(1000)) * time.Hour)"
		case f.Kind == ir.JSON:
			sf.Value = `map[string]any{"n": m.rng.IntN(3)}`
		case f.Kind == ir.EnumK:
			sf.Value, uses.Pick = fmt.Sprintf("pick(m.rng, %s)", enumValues(s, f.Enum)), true
		}
		v.Fields = append(v.Fields, sf)
	}
	return v
}

func enumValues(s *ir.Schema, name string) string {
	e := s.EnumByName(name)
	var vals []string
	for _, v := range e.Values {
		vals = append(vals, "enum."+e.ValueName(v))
	}
	return strings.Join(vals, ", ")
}

func floatOr(p *float64, d string) string {
	if p == nil {
		return d
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

// toMany reports whether an edge resolves to a connection.
func toMany(e *ir.Edge) bool { return e.Relation == ir.HasMany || e.Relation == ir.ManyToMany }

// protectedPredicate returns a where predicate on f that every non-null
// value passes (GraphQL), and the Go condition of the same on record y.
func protectedPredicate(f *ir.Field, y string) (string, string) {
	fe := y + "." + f.EntName()
	if f.List || f.Kind == ir.JSON {
		return "", ""
	}
	if f.Nullable {
		return f.Name + "NotNil: true", fe + " != nil"
	}
	switch f.Kind {
	case ir.String, ir.ID:
		return f.Name + `NEQ: "\u0000"`, "true"
	case ir.Int, ir.Float:
		return f.Name + "NEQ: -987654321", fe + " != -987654321"
	case ir.Boolean:
		return f.Name + "NEQ: true", "!" + fe
	}
	return "", ""
}

// usesAAL2 reports whether a model or field rule requires an aal2 session.
func usesAAL2(s *ir.Schema) bool {
	for _, m := range s.Models {
		if slices.ContainsFunc(m.Rules, func(r ir.Rule) bool { return r.AAL2 }) {
			return true
		}
		for _, f := range m.Fields {
			if slices.ContainsFunc(f.Rules, func(r ir.Rule) bool { return r.AAL2 }) {
				return true
			}
		}
	}
	return false
}
