package clientapi

import (
	"github.com/vektah/gqlparser/v2/ast"
)

// Operation is a custom operation document from schema/operations, typed
// against the generated schema.
type Operation struct {
	Name      string // "Feed"
	Kind      string // "query", "mutation", "subscription"
	Text      string // canonical text, as the server's allow-list has it
	Hash      string // sha256 of Text (persisted-query id)
	Variables []Variable
	Result    []*Selection // fields of the root type
}

// Variable is an operation variable.
type Variable struct {
	Name       string
	Type       *TypeRef
	HasDefault bool
}

// TypeRef is a GraphQL type reference with what the named type is.
type TypeRef struct {
	Named   string // set unless Elem is
	Elem    *TypeRef
	NonNull bool
	// Class of Named: "scalar", "enum", "input", "object".
	Class string
}

// Optional reports whether a variable may be left out.
func (v Variable) Optional() bool { return !v.Type.NonNull || v.HasDefault }

// Selection is a selected field; Children are set for object types.
type Selection struct {
	Key      string // response key (alias or name)
	Type     *TypeRef
	Children []*Selection
}

// Resolve types an operation validated against schema.
func Resolve(schema *ast.Schema, doc *ast.QueryDocument, op *ast.OperationDefinition, text, hash string) *Operation {
	o := &Operation{Name: op.Name, Kind: string(op.Operation), Text: text, Hash: hash}
	for _, v := range op.VariableDefinitions {
		o.Variables = append(o.Variables, Variable{Name: v.Variable, Type: typeRef(schema, v.Type), HasDefault: v.DefaultValue != nil})
	}
	o.Result = selections(schema, doc, op.SelectionSet)
	return o
}

func typeRef(schema *ast.Schema, t *ast.Type) *TypeRef {
	r := &TypeRef{NonNull: t.NonNull}
	if t.Elem != nil {
		r.Elem = typeRef(schema, t.Elem)
		return r
	}
	r.Named = t.NamedType
	r.Class = "scalar"
	if def := schema.Types[t.NamedType]; def != nil {
		switch def.Kind {
		case ast.Enum:
			r.Class = "enum"
		case ast.InputObject:
			r.Class = "input"
		case ast.Object, ast.Interface, ast.Union:
			r.Class = "object"
		}
	}
	return r
}

// selections flattens fragments and merges fields with the same response key.
func selections(schema *ast.Schema, doc *ast.QueryDocument, set ast.SelectionSet) []*Selection {
	var out []*Selection
	byKey := map[string]*Selection{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, s := range set {
			switch s := s.(type) {
			case *ast.Field:
				if s.Name == "__typename" && s.Definition == nil {
					continue
				}
				key := s.Alias
				if key == "" {
					key = s.Name
				}
				var children []*Selection
				if len(s.SelectionSet) > 0 {
					children = selections(schema, doc, s.SelectionSet)
				}
				if prev := byKey[key]; prev != nil {
					prev.Children = append(prev.Children, children...)
					continue
				}
				sel := &Selection{Key: key, Children: children}
				if s.Definition != nil {
					sel.Type = typeRef(schema, s.Definition.Type)
				} else {
					sel.Type = &TypeRef{Named: "String", NonNull: true, Class: "scalar"}
				}
				byKey[key] = sel
				out = append(out, sel)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if f := doc.Fragments.ForName(s.Name); f != nil {
					walk(f.SelectionSet)
				}
			}
		}
	}
	walk(set)
	return out
}
