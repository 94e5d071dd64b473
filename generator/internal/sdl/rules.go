package sdl

import (
	"strings"

	"github.com/vektah/gqlparser/v2/ast"

	"kiln/generator/internal/ir"
)

var strategies = []string{"public", "authenticated", "owner", "role"}

var condOps = []string{"eq", "neq", "in", "notIn", "gt", "gte", "lt", "lte", "isNil"}

// buildRules parses @auth on every model and field. It runs after fields
// and edges exist, and adds the implicit owner field where needed.
func (l *loader) buildRules() {
	for _, m := range l.schema.Models {
		def := l.modelDef[m]
		if d := def.Directives.ForName("auth"); d != nil {
			m.Rules = l.parseRules(m, d, false)
		}
		for _, f := range m.Fields {
			fd := l.fieldDef[f]
			if fd == nil {
				continue
			}
			if d := fd.Directives.ForName("auth"); d != nil {
				if !f.Nullable {
					l.at(d.Position, "a field with @auth must be nullable (viewers it hides from get null): write %s: %s", f.Name, typeString(f))
				}
				f.Rules = l.parseRules(m, d, true)
				if u := fd.Directives.ForName("unique"); u != nil {
					l.at(u.Position, "%s.%s has its own @auth read rules, so it cannot be @unique: a write that conflicts would tell anyone that some hidden record holds the value; drop @unique or the field's @auth", m.Name, f.Name)
				}
			}
		}
		for _, f := range m.Files {
			if d := l.fileDef[f].Directives.ForName("auth"); d != nil {
				if !f.Nullable {
					l.at(d.Position, "a field with @auth must be nullable (viewers it hides from get null): write %s: File", f.Name)
				}
				f.Rules = l.parseRules(m, d, true)
			}
		}
		for _, e := range m.Edges {
			if d := l.edgeDef[e].Directives.ForName("auth"); d != nil {
				l.at(d.Position, "@auth on relation field %s.%s is not supported; put rules on the %s model", m.Name, e.Name, e.Target)
			}
		}
	}
}

func (l *loader) parseRules(m *ir.Model, d *ast.Directive, onField bool) []ir.Rule {
	a := d.Arguments.ForName("rules")
	if a == nil || a.Value.Kind != ast.ListValue {
		l.at(d.Position, "@auth needs rules: [{ allow: ... }]")
		return nil
	}
	var rules []ir.Rule
	for _, c := range a.Value.Children {
		v := c.Value
		if v.Kind != ast.ObjectValue {
			l.at(v.Position, "an @auth rule is an object such as { allow: owner }")
			continue
		}
		r, ok := l.parseRule(m, v, onField)
		if ok {
			rules = append(rules, r)
		}
	}
	return rules
}

func (l *loader) parseRule(m *ir.Model, v *ast.Value, onField bool) (ir.Rule, bool) {
	var r ir.Rule
	ok := true
	known := []string{"allow", "operations", "field", "roles", "where", "aal"}
	for _, ch := range v.Children {
		found := false
		for _, k := range known {
			found = found || ch.Name == k
		}
		if !found {
			l.at(ch.Position, "unknown @auth rule key %s%s", ch.Name, suggest(ch.Name, known))
			ok = false
		}
	}
	allow := v.Children.ForName("allow")
	if allow == nil {
		l.at(v.Position, "an @auth rule needs allow: public, authenticated, owner or role")
		return r, false
	}
	r.Allow = allow.Raw
	if allow.Kind != ast.EnumValue || !contains(strategies, r.Allow) {
		l.at(allow.Position, "unknown allow: %s; use public, authenticated, owner or role%s", allow.Raw, suggest(allow.Raw, strategies))
		return r, false
	}
	if ops := v.Children.ForName("operations"); ops != nil {
		if ops.Kind != ast.ListValue || len(ops.Children) == 0 {
			l.at(ops.Position, "operations is a list such as [read, update]")
			ok = false
		}
		for _, o := range ops.Children {
			if !contains(ir.AllOps, o.Value.Raw) {
				l.at(o.Value.Position, "unknown operation %s; use create, read, update or delete%s", o.Value.Raw, suggest(o.Value.Raw, ir.AllOps))
				ok = false
				continue
			}
			r.Operations = append(r.Operations, o.Value.Raw)
		}
	} else if onField {
		r.Operations = []string{ir.OpRead}
	} else {
		r.Operations = append([]string(nil), ir.AllOps...)
	}
	if onField {
		for _, o := range r.Operations {
			if o != ir.OpRead {
				l.at(v.Position, "field rules grant read only; writes follow the model's rules")
				ok = false
				break
			}
		}
	}
	if aal := v.Children.ForName("aal"); aal != nil {
		levels := []string{"aal1", "aal2"}
		switch {
		case aal.Kind == ast.StringValue && contains(levels, aal.Raw):
			l.at(aal.Position, "aal is an enum value: write aal: %s, without quotes", aal.Raw)
			ok = false
		case aal.Kind != ast.EnumValue || !contains(levels, aal.Raw):
			l.at(aal.Position, "unknown aal: %s; use aal1 or aal2%s", aal.Raw, suggest(aal.Raw, levels))
			ok = false
		}
		r.AAL2 = aal.Raw == "aal2"
	}
	roles := v.Children.ForName("roles")
	if r.Allow == "role" {
		if roles == nil || roles.Kind != ast.ListValue || len(roles.Children) == 0 {
			l.at(allow.Position, "allow: role needs roles: [\"name\", ...]")
			ok = false
		} else {
			for _, c := range roles.Children {
				if c.Value.Kind != ast.StringValue || c.Value.Raw == "" {
					l.at(c.Value.Position, "role names are non-empty strings")
					ok = false
					continue
				}
				r.Roles = append(r.Roles, c.Value.Raw)
			}
		}
	} else if roles != nil {
		l.at(roles.Position, "roles applies to allow: role only")
		ok = false
	}
	field := v.Children.ForName("field")
	if r.Allow == "owner" {
		r.OwnerField = "ownerID"
		if field != nil {
			if field.Kind != ast.StringValue {
				l.at(field.Position, "field is a string naming the owner field")
				return r, false
			}
			r.OwnerField = field.Raw
		}
		f := m.Field(r.OwnerField)
		// Without field: the rule names the implicit ownerID.
		pos := allow.Position
		if field != nil {
			pos = field.Position
		}
		switch {
		case f == nil && field != nil && r.OwnerField != "ownerID":
			var cands []string
			for _, f := range m.Fields {
				if f.Kind == ir.ID && f.Edge == nil && !f.List {
					cands = append(cands, f.Name)
				}
			}
			l.at(field.Position, "owner field %s.%s does not exist%s", m.Name, r.OwnerField, suggest(r.OwnerField, cands))
			ok = false
		case f == nil && m.Edge(r.OwnerField) == nil:
			m.Fields = append(m.Fields, &ir.Field{Name: r.OwnerField, Kind: ir.ID, Owner: true, Index: true,
				Description: "The user who owns this record; set from the signed-in user on create."})
		case f == nil || f.Kind != ir.ID || f.Edge != nil || f.List:
			l.at(pos, "owner field %s.%s must be a plain ID field (it holds a user id)", m.Name, r.OwnerField)
			ok = false
		default:
			f.Owner = true
		}
	} else if field != nil {
		l.at(field.Position, "field applies to allow: owner only")
		ok = false
	}
	if w := v.Children.ForName("where"); w != nil {
		conds, wok := l.parseWhere(m, w)
		r.Where = conds
		ok = ok && wok
	}
	return r, ok
}

func (l *loader) parseWhere(m *ir.Model, w *ast.Value) ([]ir.Cond, bool) {
	if w.Kind != ast.ObjectValue || len(w.Children) == 0 {
		l.at(w.Position, "where is an object such as { visibility: { eq: PUBLIC } }")
		return nil, false
	}
	ok := true
	var conds []ir.Cond
	for _, fc := range w.Children {
		f := m.Field(fc.Name)
		if m.FileField(fc.Name) != nil {
			l.at(fc.Position, "where: %s.%s is a File field; rules cannot filter on files", m.Name, fc.Name)
			ok = false
			continue
		}
		if f == nil && fc.Name != "id" {
			cands := []string{"id"} // what a rule can compare
			for _, f := range m.Fields {
				if !f.List && f.Kind != ir.JSON {
					cands = append(cands, f.Name)
				}
			}
			l.at(fc.Position, "where: %s has no field %s%s", m.Name, fc.Name, suggest(fc.Name, cands))
			ok = false
			continue
		}
		if f == nil {
			f = &ir.Field{Name: "id", Kind: ir.ID}
		}
		if f.List || f.Kind == ir.JSON {
			l.at(fc.Position, "where: %s.%s is a list or JSON field and cannot be compared", m.Name, f.Name)
			ok = false
			continue
		}
		if fc.Value.Kind != ast.ObjectValue || len(fc.Value.Children) == 0 {
			l.at(fc.Value.Position, "where: write %s: { eq: value }", f.Name)
			ok = false
			continue
		}
		for _, oc := range fc.Value.Children {
			c := ir.Cond{Field: f.Name, Op: oc.Name}
			if !contains(condOps, oc.Name) {
				l.at(oc.Position, "where: unknown operator %s%s", oc.Name, suggest(oc.Name, condOps))
				ok = false
				continue
			}
			val := oc.Value
			switch {
			case oc.Name == "isNil":
				if val.Kind != ast.BooleanValue {
					l.at(val.Position, "isNil takes true or false")
					ok = false
					continue
				}
				c.Literal = &ir.Value{Kind: ir.Boolean, Raw: val.Raw}
			case val.Kind == ast.StringValue && strings.HasPrefix(val.Raw, "$viewer."):
				path := strings.TrimPrefix(val.Raw, "$viewer.")
				if path != "id" && !(strings.HasPrefix(path, "claims.") && len(path) > len("claims.")) {
					l.at(val.Position, "unknown viewer value %s; use $viewer.id or $viewer.claims.<name>", val.Raw)
					ok = false
					continue
				}
				if oc.Name == "in" || oc.Name == "notIn" {
					l.at(val.Position, "%s takes a list of literals", oc.Name)
					ok = false
					continue
				}
				c.Viewer = path
			case oc.Name == "in" || oc.Name == "notIn":
				if val.Kind != ast.ListValue {
					l.at(val.Position, "%s takes a list", oc.Name)
					ok = false
					continue
				}
				lv := &ir.Value{Kind: f.Kind}
				for _, item := range val.Children {
					if !l.condLiteralOK(f, item.Value) {
						l.at(item.Value.Position, "where: %s is not a valid %s for %s.%s", item.Value.String(), typeString(f), m.Name, f.Name)
						ok = false
					}
					lv.Items = append(lv.Items, item.Value.Raw)
				}
				c.Literal = lv
			default:
				if !l.condLiteralOK(f, val) {
					l.at(val.Position, "where: %s is not a valid %s for %s.%s", val.String(), typeString(f), m.Name, f.Name)
					ok = false
					continue
				}
				c.Literal = &ir.Value{Kind: f.Kind, Raw: val.Raw}
			}
			conds = append(conds, c)
		}
	}
	return conds, ok
}

func (l *loader) condLiteralOK(f *ir.Field, v *ast.Value) bool {
	switch f.Kind {
	case ir.ID, ir.Time:
		return v.Kind == ast.StringValue
	}
	return l.scalarLiteralOK(f, v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
