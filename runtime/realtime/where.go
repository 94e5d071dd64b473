package realtime

import (
	"reflect"
	"strings"

	"kiln/runtime/access"
)

// matchWhere evaluates a where input against a record in memory. needSQL is
// true when it uses relation predicates or extra predicates (rules added to
// protect fields), which only SQL can evaluate.
func matchWhere(where any, n any) (match, needSQL bool) {
	wv := reflect.ValueOf(where)
	if !wv.IsValid() || wv.Kind() == reflect.Pointer && wv.IsNil() {
		return true, false
	}
	return matchValue(wv.Elem(), reflect.ValueOf(n).Elem())
}

// whereNeedsSQL reports whether a where argument on records of type T has
// a predicate that only SQL can evaluate (for some record, matchWhere
// would report needSQL): a relation predicate, or extra predicates.
func whereNeedsSQL[T any](where any) bool {
	if isNilWhere(where) {
		return false
	}
	return needsSQL(reflect.ValueOf(where).Elem(), reflect.TypeFor[T]())
}

func needsSQL(w reflect.Value, rt reflect.Type) bool {
	wt := w.Type()
	for i := 0; i < wt.NumField(); i++ {
		f := wt.Field(i)
		fv := w.Field(i)
		if !f.IsExported() {
			if f.Name == "predicates" && fv.Len() > 0 {
				return true
			}
			continue
		}
		if fv.IsZero() {
			continue
		}
		switch f.Name {
		case "Not":
			if needsSQL(fv.Elem(), rt) {
				return true
			}
			continue
		case "And", "Or":
			for j := 0; j < fv.Len(); j++ {
				if e := fv.Index(j); !e.IsNil() && needsSQL(e.Elem(), rt) {
					return true
				}
			}
			continue
		}
		base := f.Name
		for _, suf := range whereSuffixes {
			if b, ok := strings.CutSuffix(f.Name, suf); ok {
				if _, known := rt.FieldByName(b); known {
					base = b
					break
				}
			}
		}
		if _, known := rt.FieldByName(base); !known {
			return true // a relation predicate (HasX, HasXWith), or Predicates
		}
	}
	return false
}

var whereSuffixes = []string{"ContainsFold", "EqualFold", "HasPrefix", "HasSuffix", "Contains", "NotNil", "IsNil", "NotIn", "NEQ", "GTE", "LTE", "GT", "LT", "In"}

func matchValue(w, n reflect.Value) (bool, bool) {
	wt := w.Type()
	need := false
	for i := 0; i < wt.NumField(); i++ {
		f := wt.Field(i)
		fv := w.Field(i)
		if !f.IsExported() {
			if f.Name == "predicates" && fv.Len() > 0 {
				need = true
			}
			continue
		}
		if fv.IsZero() {
			continue
		}
		switch f.Name {
		case "Not":
			ok, sql := matchValue(fv.Elem(), n)
			need = need || sql
			if !sql && ok {
				return false, need
			}
			continue
		case "And":
			for j := 0; j < fv.Len(); j++ {
				ok, sql := matchValue(fv.Index(j).Elem(), n)
				need = need || sql
				if !sql && !ok {
					return false, need
				}
			}
			continue
		case "Or":
			any := false
			for j := 0; j < fv.Len(); j++ {
				ok, sql := matchValue(fv.Index(j).Elem(), n)
				need = need || sql
				any = any || ok || sql
			}
			if !any {
				return false, need
			}
			continue
		}
		base, op := f.Name, "EQ"
		for _, suf := range whereSuffixes {
			if b, ok := strings.CutSuffix(f.Name, suf); ok && n.FieldByName(b).IsValid() {
				base, op = b, suf
				break
			}
		}
		field := n.FieldByName(base)
		if !field.IsValid() {
			need = true // a relation predicate (HasX, HasXWith)
			continue
		}
		if !matchOp(op, field.Interface(), fv.Interface()) {
			return false, need
		}
	}
	return true, need
}

func matchOp(op string, field, arg any) bool {
	switch op {
	case "IsNil":
		return access.IsNil(field)
	case "NotNil":
		return !access.IsNil(field)
	case "In", "NotIn":
		av := reflect.ValueOf(arg)
		found := false
		for i := 0; i < av.Len(); i++ {
			found = found || access.Match(field, "eq", av.Index(i).Interface())
		}
		return found == (op == "In")
	case "EQ":
		return access.Match(field, "eq", arg)
	case "NEQ":
		return access.Match(field, "neq", arg)
	case "GT", "GTE", "LT", "LTE":
		return access.Match(field, strings.ToLower(op), arg)
	}
	fs, ok1 := access.Norm(field)
	as, ok2 := access.Norm(arg)
	s, _ := fs.(string)
	a, _ := as.(string)
	if !ok1 || !ok2 {
		return false
	}
	switch op {
	case "Contains":
		return strings.Contains(s, a)
	case "HasPrefix":
		return strings.HasPrefix(s, a)
	case "HasSuffix":
		return strings.HasSuffix(s, a)
	case "EqualFold":
		return strings.EqualFold(s, a)
	case "ContainsFold":
		return strings.Contains(strings.ToLower(s), strings.ToLower(a))
	}
	return false
}
