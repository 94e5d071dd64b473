package graphql

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"kiln/generator/internal/ir"
)

// authzData is graph/authz.go (templates/authz.go.tmpl): the @auth rules of
// every model compiled twice, to SQL predicates (lists, counts, edges and
// filters only ever see allowed rows) and to in-memory checks (single
// records, writes, events), and the checks built on them.
type authzData struct {
	Module string
	Models []*ir.Model
	Rules  []modelRules
	// Refs are the models some write path links to (checkRefs<Model>);
	// Actors the targets of @actor relations (checkActor<Model>).
	Refs   []*ir.Model
	Actors []actorView
	// Secure are the models whose where or order input is secured
	// (@kilnSecure).
	Secure       []secureView
	FieldAllowed fieldAllowedView
}

// modelRules are a model's rules in SQL (Rule), in memory (Allows) and
// the part of them that names no viewer (AllowsAnyone).
type modelRules struct {
	Model                *ir.Model
	Rule                 ruleFunc
	Allows, AllowsAnyone string // boolean Go expressions on v, op and n
}

// ruleFunc is a function returning the SQL form of rules for op: a
// predicate, or all=true when every row is allowed.
type ruleFunc struct {
	Name string // "postRule"
	Of   string // what the rules are, for its doc: "Post's rules"
	// All: a rule allows every row to everyone for every op.
	All   bool
	Rules []sqlRule
	// Ors: some rule allows rows by a predicate (not all of them).
	Ors bool
}

// sqlRule is one rule in SQL: when op satisfies Ops and the viewer Pre,
// the rows matching Preds (all rows without Preds) are allowed.
type sqlRule struct {
	Ops   string // condition on op; "" for every op
	Pre   string // condition on the viewer; "" for none
	Preds []string
}

// actorView is checkActor<Model>: the ids must be records the viewer owns,
// through Owned (a predicate of the model's ent package).
type actorView struct {
	Model *ir.Model
	Owned string
}

// secureView is what @kilnSecure does for one model's inputs.
type secureView struct {
	Model *ir.Model
	// Where: its where input is secured by secure<Model>Where.
	Where bool
	// Fields are its fields with their own read rules (filters on them are
	// restricted); Edges its relations (their filters are restricted to
	// readable records).
	Fields []fieldRule
	Edges  []*ir.Edge
	// Order are its sortable fields with their own read rules: ordering by
	// them is refused.
	Order []*ir.Field
}

// fieldRule is the SQL form of a field's read rules (fieldRule<Model><Field>).
type fieldRule struct {
	Field *ir.Field
	Name  string // "fieldRuleProfileEmail"
	Rule  ruleFunc
}

// fieldAllowedView is fieldAllowed: the field-level @auth rules applied to
// a parent object.
type fieldAllowedView struct {
	// Viewer and Record: some rule reads the viewer (v), the record (n).
	Viewer, Record bool
	Types          []fieldAllowedType
}

// fieldAllowedType is the fields of one type with their own rules.
type fieldAllowedType struct {
	Model  string
	Fields []fieldAllowedCase
}

// fieldAllowedCase is one field's read rules, in memory.
type fieldAllowedCase struct {
	Field  string
	Allows string // boolean Go expression on v and n
}

// authzFile emits graph/authz.go.
func authzFile(s *ir.Schema, module string) string {
	d := authzData{Module: module, Models: s.Models}
	refs := refTargets(s)
	actors := map[string]bool{}
	for _, m := range s.Models {
		for _, e := range m.Edges {
			if e.Actor {
				actors[e.Target] = true
			}
		}
	}
	for _, m := range s.Models {
		// The rules that name no viewer: one of them allowing a record
		// allows it to everyone (rules are OR-ed, and none negates).
		var anyone []ir.Rule
		for _, r := range m.Rules {
			if r.Allow == "public" && !slices.ContainsFunc(r.Where, func(c ir.Cond) bool { return c.Viewer != "" }) {
				anyone = append(anyone, r)
			}
		}
		d.Rules = append(d.Rules, modelRules{Model: m,
			Rule:         sqlRules(m, m.Rules, m.Var()+"Rule", m.Name+"'s rules", m.Name),
			Allows:       inMemoryRules(m, m.Rules, "v", "n", ""),
			AllowsAnyone: inMemoryRules(m, anyone, "v", "n", "")})
		if refs[m.Name] {
			d.Refs = append(d.Refs, m)
		}
		if actors[m.Name] {
			d.Actors = append(d.Actors, actorFunc(m))
		}
		sec := secureView{Model: m, Where: SecuresWhere(m), Order: protectedOrder(m)}
		if sec.Where {
			for _, f := range m.Fields {
				if len(f.Rules) > 0 {
					name := "fieldRule" + m.Name + f.EntName()
					sec.Fields = append(sec.Fields, fieldRule{Field: f, Name: name,
						Rule: sqlRules(m, f.Rules, name+"Impl", m.Name+"."+f.Name+"'s read rules", m.Name+"."+f.Name)})
				}
			}
			sec.Edges = m.Edges
		}
		if sec.Where || len(sec.Order) > 0 {
			d.Secure = append(d.Secure, sec)
		}
		var cases []fieldAllowedCase
		add := func(name string, rules []ir.Rule) {
			if len(rules) == 0 {
				return
			}
			cases = append(cases, fieldAllowedCase{Field: name, Allows: inMemoryRulesTyped(m, rules, "v", "n", ir.OpRead, m.Name+"."+name, "access.OpRead")})
			d.FieldAllowed.Viewer = d.FieldAllowed.Viewer || usesViewer(rules, ir.OpRead)
			d.FieldAllowed.Record = d.FieldAllowed.Record || usesRecord(rules, ir.OpRead)
		}
		for _, f := range m.Fields {
			add(f.Name, f.Rules)
		}
		for _, f := range m.Files {
			add(f.Name, f.Rules)
		}
		if len(cases) > 0 {
			d.FieldAllowed.Types = append(d.FieldAllowed.Types, fieldAllowedType{Model: m.Name, Fields: cases})
		}
	}
	return render("authz.go.tmpl", d)
}

// sqlRules compiles rules to SQL: the ruleFunc name, on the rows of m; typ
// is the object of their role checks in the Casbin policy (the model, or
// Model.field for a field's rules).
func sqlRules(m *ir.Model, rules []ir.Rule, name, of, typ string) ruleFunc {
	f := ruleFunc{Name: name, Of: of}
	for _, r := range rules {
		sr := sqlRule{Ops: opsCond(r.Operations), Pre: strings.Join(preconditions(r, "v", typ, "op"), " && ")}
		if r.Allow == "owner" {
			sr.Preds = append(sr.Preds, fmt.Sprintf("sql.FieldEQ(%q, v.ID.String())", column(r.OwnerField)))
		}
		for _, c := range r.Where {
			sr.Preds = append(sr.Preds, sqlCond(m, c))
		}
		if sr.Ops == "" && sr.Pre == "" && len(sr.Preds) == 0 {
			// Every row, to everyone: the other rules change nothing.
			return ruleFunc{Name: name, Of: of, All: true}
		}
		f.Ors = f.Ors || len(sr.Preds) > 0
		f.Rules = append(f.Rules, sr)
	}
	return f
}

// sqlCond is the SQL predicate of one condition of a rule.
func sqlCond(m *ir.Model, c ir.Cond) string {
	col := column(c.Field)
	switch c.Op {
	case "isNil":
		if c.Literal.Raw == "true" {
			return fmt.Sprintf("sql.FieldIsNull(%q)", col)
		}
		return fmt.Sprintf("sql.FieldNotNull(%q)", col)
	case "in", "notIn":
		var vals []string
		for _, it := range c.Literal.Items {
			vals = append(vals, sqlValue(m, c, it, "v"))
		}
		fn := "sql.FieldIn"
		if c.Op == "notIn" {
			fn = "sql.FieldNotIn"
		}
		return fmt.Sprintf("%s(%q, []any{%s}...)", fn, col, strings.Join(vals, ", "))
	}
	raw := ""
	if c.Literal != nil {
		raw = c.Literal.Raw
	}
	fn := map[string]string{"eq": "sql.FieldEQ", "neq": "sql.FieldNEQ", "gt": "sql.FieldGT", "gte": "sql.FieldGTE", "lt": "sql.FieldLT", "lte": "sql.FieldLTE"}[c.Op]
	return fmt.Sprintf("%s(%q, %s)", fn, col, sqlValue(m, c, raw, "v"))
}

// opsCond is the condition on op of a rule granting ops; "" when it grants
// every operation.
func opsCond(ops []string) string {
	if len(ops) == len(ir.AllOps) {
		return ""
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
	if r.AAL2 {
		pre = append(pre, v+".HasAAL2()")
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

// usesViewer reports whether the in-memory form of the rules granting op
// reads the viewer; usesRecord whether it reads the record.
func usesViewer(rules []ir.Rule, op string) bool {
	return slices.ContainsFunc(rules, func(r ir.Rule) bool {
		return r.Grants(op) && (r.Allow != "public" || slices.ContainsFunc(r.Where, func(c ir.Cond) bool { return c.Viewer != "" }))
	})
}

func usesRecord(rules []ir.Rule, op string) bool {
	return slices.ContainsFunc(rules, func(r ir.Rule) bool { return r.Grants(op) && (r.Allow == "owner" || len(r.Where) > 0) })
}

// column is the SQL column of a field named in a rule.
func column(name string) string { return ir.Snake(name) }

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

// inMemoryRules is a boolean Go expression: whether viewer v may do op
// (the variable op when opConst is "") on record n.
func inMemoryRules(m *ir.Model, rules []ir.Rule, v, n, opConst string) string {
	opExpr := "op"
	if opConst != "" {
		opExpr = strconv.Quote(opConst)
	}
	return inMemoryRulesTyped(m, rules, v, n, opConst, m.Name, opExpr)
}

func inMemoryRulesTyped(m *ir.Model, rules []ir.Rule, v, n, opConst, typ, opExpr string) string {
	var ors []string
	for _, r := range rules {
		var ands []string
		if opConst == "" {
			if oc := opsCond(r.Operations); oc != "" {
				ands = append(ands, "("+oc+")")
			}
		} else if !r.Grants(opConst) {
			continue
		}
		ands = append(ands, preconditions(r, v, typ, opExpr)...)
		if r.Allow == "owner" {
			ands = append(ands, fmt.Sprintf("access.Match(%s, %q, %s.ID.String())", fieldExpr(r.OwnerField, n), "eq", v))
		}
		for _, c := range r.Where {
			fe := fieldExpr(c.Field, n)
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
			return "true" // the rule allows everything: the others change nothing
		}
		ors = append(ors, "("+strings.Join(ands, " && ")+")")
	}
	if len(ors) == 0 {
		return "false"
	}
	return strings.Join(ors, " ||\n\t\t")
}

// fieldExpr is the Go expression of a record's field.
func fieldExpr(name, n string) string {
	if name == "id" {
		return n + ".ID"
	}
	return n + "." + ir.EntName(name)
}

// actorFunc is checkActor<Model>: the check of an @actor relation.
func actorFunc(m *ir.Model) actorView {
	var owned []string
	for _, f := range m.OwnerFields() {
		owned = append(owned, fmt.Sprintf("%s.%s(v.ID.String())", m.Package(), f.EntName()))
	}
	cond := owned[0]
	if len(owned) > 1 {
		cond = fmt.Sprintf("%s.Or(%s)", m.Package(), strings.Join(owned, ", "))
	}
	return actorView{Model: m, Owned: cond}
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

// usesRoles reports whether some rule names roles (graph/policy.go then
// decides them).
func usesRoles(s *ir.Schema) bool {
	roles, _ := rolesAndClaims(s)
	return len(roles) > 0
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
