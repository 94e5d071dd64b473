package graphqlapi

import (
	"context"
	"path"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// builtinSources are the schema files that Kiln itself defines (accounts and
// files), as opposed to the app's schema: their root fields are Kiln's
// built-in operations (signIn, refreshSession, createUpload, viewer, ...).
var builtinSources = map[string]bool{"auth.graphql": true, "files.graphql": true}

// builtins are the built-in root fields by operation type, read from the
// schema (gqlparser keeps the source file of every field definition, also
// of those added by "extend type").
type builtins map[ast.Operation]map[string]bool

// fill adds the built-in root fields of s to b.
func (b builtins) fill(s *ast.Schema) {
	for op, def := range map[ast.Operation]*ast.Definition{ast.Query: s.Query, ast.Mutation: s.Mutation, ast.Subscription: s.Subscription} {
		if def == nil {
			continue
		}
		fields := map[string]bool{}
		for _, f := range def.Fields {
			if f.Position != nil && f.Position.Src != nil && builtinSources[path.Base(f.Position.Src.Name)] {
				fields[f.Name] = true
			}
		}
		b[op] = fields
	}
}

// rootField returns the first built-in root field of op when every root
// field of op (through fragments) is built-in or __typename, else "".
func (b builtins) rootField(doc *ast.QueryDocument, op *ast.OperationDefinition) string {
	fields := b[op.Operation]
	first, ok := "", true
	var visit func(set ast.SelectionSet, seen map[string]bool)
	visit = func(set ast.SelectionSet, seen map[string]bool) {
		for _, sel := range set {
			if !ok {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				switch {
				case s.Name == "__typename":
				case fields[s.Name]:
					if first == "" {
						first = s.Name
					}
				default:
					ok = false
				}
			case *ast.InlineFragment:
				visit(s.SelectionSet, seen)
			case *ast.FragmentSpread:
				if seen[s.Name] {
					continue
				}
				seen[s.Name] = true
				var f *ast.FragmentDefinition
				if doc != nil {
					f = doc.Fragments.ForName(s.Name)
				}
				if f == nil {
					ok = false
					return
				}
				visit(f.SelectionSet, seen)
			}
		}
	}
	visit(op.SelectionSet, map[string]bool{})
	if !ok || first == "" {
		return ""
	}
	return first
}

// only reports whether query parses (within maxTokens, 0: no limit) and
// every root field of every operation in it is built-in.
func (b builtins) only(query string, maxTokens int) bool {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, maxTokens)
	if err != nil || len(doc.Operations) == 0 {
		return false
	}
	for _, op := range doc.Operations {
		if b.rootField(doc, op) == "" {
			return false
		}
	}
	return true
}

// builtinCheck tells whether an operation text outside the allow-list uses
// built-in root fields only, remembering its verdicts by the text's hash.
type builtinCheck struct {
	fields    builtins
	maxTokens int
	verdicts  *lru.LRU[bool]
}

func newBuiltinCheck(maxTokens int) *builtinCheck {
	return &builtinCheck{fields: builtins{}, maxTokens: maxTokens, verdicts: lru.New[bool](1000)}
}

// load reads the built-in root fields from the schema.
func (c *builtinCheck) load(es graphql.ExecutableSchema) { c.fields.fill(es.Schema()) }

// allows reports whether query (whose sha256 is hash) is made of built-in
// root fields only.
func (c *builtinCheck) allows(ctx context.Context, hash, query string) bool {
	if v, ok := c.verdicts.Get(ctx, hash); ok {
		return v
	}
	v := c.fields.only(query, c.maxTokens)
	c.verdicts.Add(ctx, hash, v)
	return v
}
