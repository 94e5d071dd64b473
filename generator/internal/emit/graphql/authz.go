package graphql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"kiln/generator/internal/emit/entschema"
	"kiln/generator/internal/ir"
)

// authzFile emits graph/authz.go: the @auth rules of every model compiled
// twice, to SQL predicates (lists, counts, edges and filters only ever see
// allowed rows) and to in-memory checks (single records, writes, events).
func authzFile(s *ir.Schema, module string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `package graph

import (
	"context"

	"entgo.io/ent/dialect/sql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"%[1]s/ent/intercept"
	"%[1]s/ent/predicate"
	"kiln/runtime/validate"
%[2]s)

var (
	_ = sql.FieldEQ
	_ graphql.Resolver
)
`, module, modelImports(s, module))
	for _, m := range s.Models {
		modelRules(&b, m)
	}

	// Reference checks.
	for _, m := range s.Models {
		fmt.Fprintf(&b, `
// checkRefs%[1]s fails unless every id is a %[1]s the viewer may read, so
// writes cannot link to (or probe for) records out of the viewer's reach.
func checkRefs%[1]s(ctx context.Context, client *ent.Client, field string, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	want := map[uuid.UUID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n, err := client.%[1]s.Query().Where(%[2]s.IDIn(ids...)).Count(ctx)
	if err != nil {
		return err
	}
	if n != len(want) {
		return &validate.Error{Field: field, Rule: "refers to a %[1]s that does not exist"}
	}
	return nil
}
`, m.Name, strings.ToLower(m.Name))
	}
	// Actor checks, for the targets of @actor relations.
	actorTargets := map[string]bool{}
	for _, m := range s.Models {
		for _, e := range m.Edges {
			if e.Actor {
				actorTargets[e.Target] = true
			}
		}
	}
	for _, m := range s.Models {
		if actorTargets[m.Name] {
			actorFunc(&b, m)
		}
	}
	// Interceptors.
	b.WriteString("\n// interceptors apply each model's read rules to every query of it,\n// including counts, pagination and eager-loaded edges.\nfunc interceptors(client *ent.Client) {\n")
	for _, m := range s.Models {
		fmt.Fprintf(&b, `	client.%[1]s.Intercept(intercept.Traverse%[1]s(func(ctx context.Context, q *ent.%[1]sQuery) error {
		if v, skip := access.Bypass(ctx); !skip {
			if p, all := %[2]sRule(v, access.OpRead); !all {
				q.Where(predicate.%[1]s(p))
			}
		}
		return nil
	}))
`, m.Name, lowerFirst(m.Name))
	}
	b.WriteString("}\n")
	// Where and order securing, as the @kilnSecure input directive.
	b.WriteString(secureInputFunc(s))
	for _, m := range s.Models {
		if SecuresWhere(m) {
			secureWhereFunc(&b, s, m)
		}
	}
	// Field rules.
	b.WriteString("\n// fieldAllowed applies field-level @auth rules to a parent object.\nfunc fieldAllowed(ctx context.Context, obj any, field string) bool {\n\tv, skip := access.Bypass(ctx)\n\tif skip {\n\t\treturn true\n\t}\n\t_ = v\n")
	var fieldCases strings.Builder
	for _, m := range s.Models {
		var cases []string
		for _, f := range m.Fields {
			if len(f.Rules) > 0 {
				cases = append(cases, fmt.Sprintf("\t\tcase %q:\n\t\t\treturn %s\n", f.Name, inMemoryRulesTyped(m, f.Rules, "v", "n", ir.OpRead, m.Name+"."+f.Name, "access.OpRead")))
			}
		}
		for _, f := range m.Files {
			if len(f.Rules) > 0 {
				cases = append(cases, fmt.Sprintf("\t\tcase %q:\n\t\t\treturn %s\n", f.Name, inMemoryRulesTyped(m, f.Rules, "v", "n", ir.OpRead, m.Name+"."+f.Name, "access.OpRead")))
			}
		}
		if len(cases) == 0 {
			continue
		}
		fmt.Fprintf(&fieldCases, "\tcase *ent.%s:\n\t\t_ = n\n\t\tswitch field {\n%s\t\t}\n", m.Name, strings.Join(cases, ""))
	}
	if fieldCases.Len() > 0 {
		b.WriteString("\tswitch n := obj.(type) {\n" + fieldCases.String() + "\t}\n")
	}
	b.WriteString("\treturn true\n}\n")
	// Protected fields usable in filters and ordering.
	b.WriteString("\n// protectedFields lists, per type, fields with their own read rules.\nvar protectedFields = map[string][]string{\n")
	for _, m := range s.Models {
		var names []string
		for _, f := range m.Fields {
			if len(f.Rules) > 0 {
				names = append(names, strconv.Quote(f.Name))
			}
		}
		if len(names) > 0 {
			fmt.Fprintf(&b, "\t%q: {%s},\n", m.Name, strings.Join(names, ", "))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func modelRules(b *strings.Builder, m *ir.Model) {
	lf := lowerFirst(m.Name)
	fmt.Fprintf(b, `
// %[1]sRule returns the SQL form of %[2]s's rules for op: a predicate, or
// all=true when every row is allowed.
func %[1]sRule(v *access.Viewer, op string) (p func(*sql.Selector), all bool) {
	var ors []func(*sql.Selector)
	_ = ors
`, lf, m.Name)
	for _, r := range m.Rules {
		fmt.Fprintf(b, "\tif %s {\n", opsCond(r.Operations))
		pre, parts := sqlRule(m, r, m.Name)
		fmt.Fprintf(b, "\t\tif %s {\n", pre)
		if len(parts) == 0 {
			b.WriteString("\t\t\treturn nil, true\n")
		} else {
			fmt.Fprintf(b, "\t\t\tors = append(ors, sql.AndPredicates(%s))\n", strings.Join(parts, ", "))
		}
		b.WriteString("\t\t}\n\t}\n")
	}
	b.WriteString("\tif len(ors) == 0 {\n\t\treturn access.DenyAll, false\n\t}\n\treturn sql.OrPredicates(ors...), false\n}\n")
	fmt.Fprintf(b, `
// %[1]sAllows is the in-memory form of %[2]sRule, for one record.
func %[1]sAllows(v *access.Viewer, op string, n *ent.%[2]s) bool {
	return %[3]s
}
`, lf, m.Name, inMemoryRules(m, m.Rules, "v", "n", ""))
	// The rules that name no viewer: one of them allowing a record allows
	// it to everyone (rules are OR-ed, and none negates).
	var anyone []ir.Rule
	for _, r := range m.Rules {
		if r.Allow == "public" && !slices.ContainsFunc(r.Where, func(c ir.Cond) bool { return c.Viewer != "" }) {
			anyone = append(anyone, r)
		}
	}
	fmt.Fprintf(b, `
// %[1]sAllowsAnyone reports whether every viewer may do op on n: one of
// %[2]s's rules that name no viewer allows it.
func %[1]sAllowsAnyone(op string, n *ent.%[2]s) bool {
	return %[3]s
}
`, lf, m.Name, inMemoryRules(m, anyone, "v", "n", ""))
}

func opsCond(ops []string) string {
	if len(ops) == len(ir.AllOps) {
		return "true"
	}
	var parts []string
	for _, o := range ops {
		parts = append(parts, fmt.Sprintf("op == %q", o))
	}
	return strings.Join(parts, " || ")
}

// preconditions are the viewer checks of a rule that need no record. Role
// checks go through the Casbin policy (object typ, action opExpr).
func preconditions(r ir.Rule, v, typ, opExpr string) []string {
	var pre []string
	switch r.Allow {
	case "authenticated", "owner":
		pre = append(pre, v+" != nil")
	case "role":
		var q []string
		for _, role := range r.Roles {
			q = append(q, strconv.Quote(role))
		}
		pre = append(pre, fmt.Sprintf("policy.RoleAllows(%s, %q, %s, %s)", v, typ, opExpr, strings.Join(q, ", ")))
	}
	for _, c := range r.Where {
		if c.Viewer == "" {
			continue
		}
		if c.Viewer == "id" {
			if r.Allow == "public" || r.Allow == "role" {
				pre = append(pre, v+" != nil")
			}
			continue
		}
		pre = append(pre, fmt.Sprintf("%s.HasClaim(%q)", v, strings.TrimPrefix(c.Viewer, "claims.")))
	}
	if len(pre) == 0 {
		return []string{"true"}
	}
	return dedupe(pre)
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func column(m *ir.Model, name string) string {
	if name == "id" {
		return "id"
	}
	return entschema.Column(name)
}

func fieldOf(m *ir.Model, name string) *ir.Field {
	if name == "id" {
		return &ir.Field{Name: "id", Kind: ir.ID}
	}
	return m.Field(name)
}

// sqlValue is the Go expression of a condition value as stored in SQL.
func sqlValue(m *ir.Model, c ir.Cond, raw string, v string) string {
	f := fieldOf(m, c.Field)
	if c.Viewer == "id" {
		if f.Name == "id" || f.Edge != nil {
			return v + ".ID"
		}
		return v + ".ID.String()"
	}
	if c.Viewer != "" {
		return fmt.Sprintf("%s.Claims[%q]", v, strings.TrimPrefix(c.Viewer, "claims."))
	}
	switch f.Kind {
	case ir.Int, ir.Float, ir.Boolean:
		return raw
	case ir.ID:
		if f.Name == "id" || f.Edge != nil {
			return fmt.Sprintf("access.MustUUID(%q)", raw)
		}
		return strconv.Quote(raw)
	case ir.Time:
		return fmt.Sprintf("access.MustTime(%q)", raw)
	}
	return strconv.Quote(raw)
}

func sqlRule(m *ir.Model, r ir.Rule, typ string) (string, []string) {
	pre := strings.Join(preconditions(r, "v", typ, "op"), " && ")
	var parts []string
	if r.Allow == "owner" {
		parts = append(parts, fmt.Sprintf("sql.FieldEQ(%q, v.ID.String())", column(m, r.OwnerField)))
	}
	for _, c := range r.Where {
		col := column(m, c.Field)
		switch c.Op {
		case "isNil":
			if c.Literal.Raw == "true" {
				parts = append(parts, fmt.Sprintf("sql.FieldIsNull(%q)", col))
			} else {
				parts = append(parts, fmt.Sprintf("sql.FieldNotNull(%q)", col))
			}
		case "in", "notIn":
			var vals []string
			for _, it := range c.Literal.Items {
				vals = append(vals, sqlValue(m, c, it, "v"))
			}
			fn := "sql.FieldIn"
			if c.Op == "notIn" {
				fn = "sql.FieldNotIn"
			}
			parts = append(parts, fmt.Sprintf("%s(%q, []any{%s}...)", fn, col, strings.Join(vals, ", ")))
		default:
			raw := ""
			if c.Literal != nil {
				raw = c.Literal.Raw
			}
			fn := map[string]string{"eq": "sql.FieldEQ", "neq": "sql.FieldNEQ", "gt": "sql.FieldGT", "gte": "sql.FieldGTE", "lt": "sql.FieldLT", "lte": "sql.FieldLTE"}[c.Op]
			parts = append(parts, fmt.Sprintf("%s(%q, %s)", fn, col, sqlValue(m, c, raw, "v")))
		}
	}
	return pre, parts
}

// inMemoryRules is a boolean Go expression: whether viewer v may do op
// (the variable op when opConst is "") on record n.
func inMemoryRules(m *ir.Model, rules []ir.Rule, v, n, opConst string) string {
	typ := m.Name
	opExpr := "op"
	if opConst != "" {
		opExpr = strconv.Quote(opConst)
	}
	return inMemoryRulesTyped(m, rules, v, n, opConst, typ, opExpr)
}

func inMemoryRulesTyped(m *ir.Model, rules []ir.Rule, v, n, opConst, typ, opExpr string) string {
	if len(rules) == 0 {
		return "false"
	}
	var ors []string
	for _, r := range rules {
		var ands []string
		if opConst == "" {
			if oc := opsCond(r.Operations); oc != "true" {
				ands = append(ands, "("+oc+")")
			}
		} else if !r.Grants(opConst) {
			continue
		}
		for _, p := range preconditions(r, v, typ, opExpr) {
			if p != "true" {
				ands = append(ands, p)
			}
		}
		if r.Allow == "owner" {
			ands = append(ands, fmt.Sprintf("access.Match(%s, %q, %s.ID.String())", fieldExpr(m, r.OwnerField, n), "eq", v))
		}
		for _, c := range r.Where {
			fe := fieldExpr(m, c.Field, n)
			switch c.Op {
			case "isNil":
				if c.Literal.Raw == "true" {
					ands = append(ands, fmt.Sprintf("access.IsNil(%s)", fe))
				} else {
					ands = append(ands, fmt.Sprintf("!access.IsNil(%s)", fe))
				}
			case "in", "notIn":
				var vals []string
				for _, it := range c.Literal.Items {
					vals = append(vals, sqlValue(m, c, it, v))
				}
				expr := fmt.Sprintf("access.MatchAny(%s, %s)", fe, strings.Join(vals, ", "))
				if c.Op == "notIn" {
					expr = "!" + expr
				}
				ands = append(ands, expr)
			default:
				raw := ""
				if c.Literal != nil {
					raw = c.Literal.Raw
				}
				ands = append(ands, fmt.Sprintf("access.Match(%s, %q, %s)", fe, c.Op, sqlValue(m, c, raw, v)))
			}
		}
		if len(ands) == 0 {
			ands = []string{"true"}
		}
		ors = append(ors, "("+strings.Join(ands, " && ")+")")
	}
	if len(ors) == 0 {
		return "false"
	}
	return strings.Join(ors, " ||\n\t\t")
}

func fieldExpr(m *ir.Model, name, n string) string {
	if name == "id" {
		return n + ".ID"
	}
	return n + "." + entName(name)
}

// actorFunc emits checkActor<Model>: the check of an @actor relation.
func actorFunc(b *strings.Builder, m *ir.Model) {
	var owned []string
	for _, f := range m.OwnerFields() {
		owned = append(owned, fmt.Sprintf("%s.%s(v.ID.String())", strings.ToLower(m.Name), entName(f.Name)))
	}
	cond := owned[0]
	if len(owned) > 1 {
		cond = fmt.Sprintf("%s.Or(%s)", strings.ToLower(m.Name), strings.Join(owned, ", "))
	}
	fmt.Fprintf(b, `
// checkActor%[1]s fails unless every id is a %[1]s the viewer owns: the viewer
// acts through an @actor relation, so it may not point at someone else's
// record. Admins (skip) are exempt.
func checkActor%[1]s(ctx context.Context, client *ent.Client, v *access.Viewer, skip bool, field string, ids ...uuid.UUID) error {
	if skip || len(ids) == 0 {
		return nil
	}
	if v == nil {
		return &access.UnauthenticatedError{Reason: "sign in to set " + field}
	}
	want := map[uuid.UUID]bool{}
	for _, id := range ids {
		want[id] = true
	}
	n, err := client.%[1]s.Query().Where(%[2]s.IDIn(ids...), %[3]s).Count(ctx)
	if err != nil {
		return err
	}
	if n != len(want) {
		return &access.ActorError{Field: field, Type: %[1]q}
	}
	return nil
}
`, m.Name, strings.ToLower(m.Name), cond)
}

// SecuresWhere reports whether m's where input needs the @kilnSecure
// directive: it filters through relations or on fields with their own rules.
func SecuresWhere(m *ir.Model) bool {
	return len(m.Edges) > 0 || slices.ContainsFunc(m.Fields, func(f *ir.Field) bool { return len(f.Rules) > 0 })
}

// protectedOrder returns the orderBy values of m's sortable fields that
// have their own read rules (ordering by them would reveal their order).
func protectedOrder(m *ir.Model) []*ir.Field {
	var out []*ir.Field
	for _, f := range m.Fields {
		if f.Sortable && len(f.Rules) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// SecuresOrder reports whether m's order input needs the @kilnSecure
// directive.
func SecuresOrder(m *ir.Model) bool { return len(protectedOrder(m)) > 0 }

// secureInputFunc emits SecureInput, the @kilnSecure directive on where and
// order inputs. gqlgen runs it whenever it decodes such an input, at any
// depth: resolver arguments, nested inputs (and, or, not, hasXWith) and the
// arguments entgql reads to eager-load nested connections. So every filter
// and ordering a client sends is secured before any SQL is built.
func secureInputFunc(s *ir.Schema) string {
	var b strings.Builder
	b.WriteString(`
// SecureInput is the @kilnSecure directive on where and order inputs: it
// restricts relation filters and filters on fields with their own rules to
// what the viewer may read, and refuses ordering by such fields. gqlgen runs
// it each time it decodes one of these inputs, at every depth of the
// operation and for eager-loaded connections too; each input secures only
// its own level, as the inputs nested in it have run it already.
func SecureInput(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
	in, err := next(ctx)
	if err != nil {
		return nil, err
	}
`)
	var cases strings.Builder
	for _, m := range s.Models {
		if SecuresWhere(m) {
			fmt.Fprintf(&cases, "\tcase ent.%[1]sWhereInput:\n\t\treturn w, secure%[1]sWhere(ctx, &w)\n\tcase *ent.%[1]sWhereInput:\n\t\treturn w, secure%[1]sWhere(ctx, w)\n", m.Name)
		}
		if fs := protectedOrder(m); len(fs) > 0 {
			var conds []string
			for _, f := range fs {
				conds = append(conds, fmt.Sprintf("\t\tcase %q:\n\t\t\treturn nil, &access.ForbiddenError{Reason: \"ordering by %s.%s is not allowed\"}\n", entschema.OrderField(f.Name), m.Name, f.Name))
			}
			fmt.Fprintf(&cases, "\tcase ent.%[1]sOrder:\n\t\tif _, skip := access.Bypass(ctx); skip || w.Field == nil {\n\t\t\treturn w, nil\n\t\t}\n\t\tswitch w.Field.String() {\n%[2]s\t\t}\n\t\treturn w, nil\n", m.Name, strings.Join(conds, ""))
		}
	}
	if cases.Len() > 0 {
		b.WriteString("\tswitch w := in.(type) {\n" + cases.String() + "\t}\n")
	}
	b.WriteString("\treturn in, nil\n}\n")
	return b.String()
}

func secureWhereFunc(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	fmt.Fprintf(b, "\n// secure%[1]sWhere secures one level of a %[1]s filter (see SecureInput).\nfunc secure%[1]sWhere(ctx context.Context, w *ent.%[1]sWhereInput) error {\n\tv, skip := access.Bypass(ctx)\n\tif skip || w == nil {\n\t\treturn nil\n\t}\n", m.Name)
	for _, f := range m.Fields {
		if len(f.Rules) == 0 {
			continue
		}
		fmt.Fprintf(b, "\tif access.UsesField(w, %q) {\n\t\tw.AddPredicates(predicate.%s(fieldRule%s%s(v)))\n\t}\n", entName(f.Name), m.Name, m.Name, entName(f.Name))
	}
	for _, e := range m.Edges {
		en := entName(e.Name)
		t := e.Target
		fmt.Fprintf(b, `	for _, x := range w.Has%[1]sWith {
		if p, all := %[3]sRule(v, access.OpRead); !all {
			x.AddPredicates(predicate.%[2]s(p))
		}
	}
	if w.Has%[1]s != nil {
		if p, all := %[3]sRule(v, access.OpRead); !all {
			vis := &ent.%[2]sWhereInput{}
			vis.AddPredicates(predicate.%[2]s(p))
			if *w.Has%[1]s {
				w.Has%[1]sWith = append(w.Has%[1]sWith, vis)
			} else {
				w.And = append(w.And, &ent.%[4]sWhereInput{Not: &ent.%[4]sWhereInput{Has%[1]sWith: []*ent.%[2]sWhereInput{vis}}})
			}
			w.Has%[1]s = nil
		}
	}
`, en, t, lowerFirst(t), m.Name)
	}
	b.WriteString("\treturn nil\n}\n")
	for _, f := range m.Fields {
		if len(f.Rules) == 0 {
			continue
		}
		fake := &ir.Model{Name: m.Name, Fields: m.Fields, Rules: f.Rules}
		var sb strings.Builder
		modelRules(&sb, fake)
		sb2 := strings.ReplaceAll(sb.String(), fmt.Sprintf("policy.RoleAllows(v, %q, ", m.Name), fmt.Sprintf("policy.RoleAllows(v, %q, ", m.Name+"."+f.Name))
		sb.Reset()
		sb.WriteString(sb2)
		// Reuse the SQL form only: the field rule as a predicate.
		src := sb.String()
		src = src[:strings.Index(src, "\n// "+lowerFirst(m.Name)+"Allows")]
		src = strings.Replace(src, "func "+lowerFirst(m.Name)+"Rule(v *access.Viewer, op string) (p func(*sql.Selector), all bool) {",
			"func fieldRule"+m.Name+entName(f.Name)+"Impl(v *access.Viewer, op string) (p func(*sql.Selector), all bool) {", 1)
		src = strings.Replace(src, "// "+lowerFirst(m.Name)+"Rule returns the SQL form of "+m.Name+"'s rules", "// fieldRule"+m.Name+entName(f.Name)+"Impl returns the SQL form of "+m.Name+"."+f.Name+"'s read rules", 1)
		b.WriteString(src)
		fmt.Fprintf(b, "\nfunc fieldRule%[1]s%[2]s(v *access.Viewer) func(*sql.Selector) {\n\tif p, all := fieldRule%[1]s%[2]sImpl(v, access.OpRead); !all {\n\t\treturn p\n\t}\n\treturn func(*sql.Selector) {}\n}\n", m.Name, entName(f.Name))
	}
}

func modelImports(s *ir.Schema, module string) string {
	var b strings.Builder
	for _, m := range s.Models {
		fmt.Fprintf(&b, "\t%q\n", module+"/ent/"+strings.ToLower(m.Name))
	}
	return b.String()
}

// CasbinPolicy is the policy of the schema's role rules: one line per role,
// object and operation.
func CasbinPolicy(s *ir.Schema) string {
	var b strings.Builder
	seen := map[string]bool{}
	add := func(role, obj, op string) {
		line := fmt.Sprintf("p, %s, %s, %s\n", role, obj, op)
		if !seen[line] {
			seen[line] = true
			b.WriteString(line)
		}
	}
	for _, m := range s.Models {
		for _, r := range m.Rules {
			if r.Allow == "role" {
				for _, role := range r.Roles {
					for _, op := range r.Operations {
						add(role, m.Name, op)
					}
				}
			}
		}
		for _, f := range m.Fields {
			for _, r := range f.Rules {
				if r.Allow == "role" {
					for _, role := range r.Roles {
						add(role, m.Name+"."+f.Name, ir.OpRead)
					}
				}
			}
		}
	}
	return b.String()
}

// policySource is graph/policy.go: the schema's role rules as a Casbin
// policy, loaded into the runtime's access.Policy.
const policySource = `package graph

import (
	_ "embed"

	"kiln/runtime/access"
)

//go:embed authz_policy.csv
var casbinPolicy string

// policy decides the role parts of the rules.
var policy = access.MustPolicy(casbinPolicy)
`
