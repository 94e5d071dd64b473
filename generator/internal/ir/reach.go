package ir

// ReadableWith reports whether every viewer who may read a record of from
// may also read any record of to, whatever the records: to has a read rule
// without conditions that admits all of from's readers. Admins read
// everything, so a model only admins read (no rules) is covered by any
// model, and covers only such models.
func (s *Schema) ReadableWith(from, to *Model) bool {
	fromReaders := readRules(from)
	if len(fromReaders) == 0 {
		return true // admins only: they read every model
	}
	for _, r := range readRules(to) {
		if len(r.Where) > 0 {
			continue
		}
		switch r.Allow {
		case "public":
			return true
		case "authenticated":
			if !anyRule(fromReaders, func(f Rule) bool { return f.Allow == "public" }) {
				return true // every reader of from is signed in
			}
		case "role":
			if !anyRule(fromReaders, func(f Rule) bool { return f.Allow != "role" || !subset(f.Roles, r.Roles) }) {
				return true // every reader of from has one of these roles
			}
		}
	}
	return false
}

// NullableInAPI reports whether the API declares the relation e of m
// nullable: it is (a @belongsTo or @hasOne declared nullable), or the
// viewer may be unable to read its target though able to read m (the
// target's read rules are stricter, ReadableWith), so the record is
// returned with the relation null instead of failing whole. Lists
// (hasMany, manyToMany) are never null: they leave out what the viewer may
// not read.
func (s *Schema) NullableInAPI(m *Model, e *Edge) bool {
	if e.Relation == HasMany || e.Relation == ManyToMany {
		return false
	}
	if e.Nullable || e.Relation == HasOne {
		return true
	}
	t := s.Model(e.Target)
	return t == nil || !s.ReadableWith(m, t)
}

// MayHide reports whether the API declares the required relation e of m
// nullable only because the viewer may be unable to read its target
// (NullableInAPI): it resolves to null, without an error, when the viewer
// may not read the related record.
func (s *Schema) MayHide(m *Model, e *Edge) bool {
	return e.Relation == BelongsTo && !e.Nullable && s.NullableInAPI(m, e)
}

func readRules(m *Model) []Rule {
	var out []Rule
	for _, r := range m.Rules {
		if r.Grants(OpRead) {
			out = append(out, r)
		}
	}
	return out
}

func anyRule(rs []Rule, f func(Rule) bool) bool {
	for _, r := range rs {
		if f(r) {
			return true
		}
	}
	return false
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
