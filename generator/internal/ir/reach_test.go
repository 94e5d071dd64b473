package ir

import "testing"

func TestMayHide(t *testing.T) {
	read := []string{OpRead}
	public := Rule{Allow: "public", Operations: read}
	publicWhere := Rule{Allow: "public", Operations: read, Where: []Cond{{Field: "visibility", Op: "eq", Literal: &Value{Raw: "PUBLIC"}}}}
	authenticated := Rule{Allow: "authenticated", Operations: read}
	owner := Rule{Allow: "owner", Operations: AllOps, OwnerField: "ownerID"}
	moderator := Rule{Allow: "role", Roles: []string{"moderator"}, Operations: read}
	staff := Rule{Allow: "role", Roles: []string{"moderator", "admin2"}, Operations: read}
	writeOnly := Rule{Allow: "public", Operations: []string{OpCreate}}
	for _, c := range []struct {
		name     string
		from, to []Rule
		nullable bool
	}{
		{"target public", []Rule{owner}, []Rule{public}, false},
		{"target public under a condition", []Rule{authenticated}, []Rule{publicWhere}, true},
		{"target for signed-in users, source signed-in only", []Rule{owner, moderator}, []Rule{authenticated}, false},
		{"target for signed-in users, source public", []Rule{publicWhere}, []Rule{authenticated}, true},
		{"target owner only", []Rule{owner}, []Rule{owner}, true},
		{"target admins only", []Rule{authenticated}, nil, true},
		{"source admins only", nil, []Rule{owner}, false},
		{"both admins only", nil, nil, false},
		{"target by role, source by a narrower role", []Rule{moderator}, []Rule{staff}, false},
		{"target by role, source by a wider role", []Rule{staff}, []Rule{moderator}, true},
		{"a target rule that does not grant read", []Rule{authenticated}, []Rule{writeOnly}, true},
	} {
		from := &Model{Name: "From", Rules: c.from}
		to := &Model{Name: "To", Rules: c.to}
		e := &Edge{Name: "to", Relation: BelongsTo, Target: "To"}
		from.Edges = []*Edge{e}
		s := &Schema{Models: []*Model{from, to}}
		if got := s.MayHide(from, e); got != c.nullable {
			t.Errorf("%s: MayHide = %v, want %v", c.name, got, c.nullable)
		}
		if got := s.NullableInAPI(from, e); got != c.nullable {
			t.Errorf("%s: NullableInAPI = %v, want %v", c.name, got, c.nullable)
		}
		// Declared nullable, hasOne and lists are never "hidden".
		for _, other := range []*Edge{
			{Name: "n", Relation: BelongsTo, Target: "To", Nullable: true},
			{Name: "o", Relation: HasOne, Target: "To"},
			{Name: "m", Relation: HasMany, Target: "To"},
			{Name: "mm", Relation: ManyToMany, Target: "To"},
		} {
			if s.MayHide(from, other) {
				t.Errorf("%s: MayHide(%s %s) = true", c.name, other.Relation, other.Name)
			}
		}
	}
}
