package generate

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc/gen"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/sdl"
	"kiln/generator/internal/write"
)

// precheck validates what the developer wrote outside the models before
// ent's and gqlgen's code generation run: the SDL passed through from the
// schema files (extend type Query, extra types) and the operations in
// schema/operations, against the API this run is about to generate
// (entgql's schema, built from the loaded ent graph, and Kiln's SDL).
// Errors point at the developer's files (schema/custom.graphql:6:35, not
// the generated copy in graph/), all of them at once.
func precheck(cfg Config, ex *entgql.Extension, graph *gen.Graph, emitted []write.File, schemaFiles []ir.File) error {
	entSchema, err := ex.BuildSchema(graph)
	if err != nil {
		return fmt.Errorf("entgql schema: %w", err)
	}
	var sb strings.Builder
	formatter.NewFormatter(&sb, formatter.WithIndent("  ")).FormatSchema(entSchema)
	var kiln []*ast.Source // Kiln's own SDL: graph/auth.graphql, files.graphql, ...
	for _, f := range emitted {
		name := path.Base(f.Path)
		if path.Dir(f.Path) != "graph" || path.Ext(name) != ".graphql" || name == "ent.graphql" || strings.HasPrefix(name, "ext_") {
			continue
		}
		kiln = append(kiln, &ast.Source{Name: f.Path, Input: string(f.Content)})
	}
	srcs := append([]*ast.Source{validator.Prelude, {Name: "graph/ent.graphql", Input: sb.String()}}, kiln...)
	problems, err := builtinClashes(kiln, schemaFiles)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("your schema files define types Kiln's API defines (%d errors):\n%s", len(problems), strings.Join(problems, "\n"))
	}
	schema, err := validateOwn(srcs, schemaFiles, &problems)
	if err != nil {
		return err
	}
	if schema != nil {
		_, _, opProblems, err := checkOperations(schema, cfg.SchemaDir)
		if err != nil {
			return err
		}
		problems = append(problems, opProblems...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("your schema files and operations do not match the generated API (%d errors):\n%s", len(problems), strings.Join(problems, "\n"))
	}
	return nil
}

// builtinClashes reports, at the developer's file:line:col, every type
// (model, enum, input, ...) of the schema files named like a type of Kiln's
// own API (builtin: the generated graph/auth.graphql, files.graphql, ...):
// ImageFormat, AuthPayload, ...
func builtinClashes(builtin []*ast.Source, schemaFiles []ir.File) ([]string, error) {
	defined := map[string]string{} // type name: Kiln's file defining it
	for _, src := range builtin {
		doc, err := parser.ParseSchema(src)
		if err != nil {
			return nil, fmt.Errorf("the generated schema does not parse (a Kiln bug): %w", err)
		}
		for _, def := range doc.Definitions {
			defined[def.Name] = src.Name
		}
	}
	var problems []string
	for _, f := range schemaFiles {
		if path.Base(f.Name) == sdl.DirectivesFile {
			continue
		}
		doc, err := parser.ParseSchema(&ast.Source{Name: f.Name, Input: f.Content})
		if err != nil {
			return nil, err // sdl.Load reported it already
		}
		for _, def := range doc.Definitions {
			if file, ok := defined[def.Name]; ok {
				problems = append(problems, fmt.Sprintf("%s: type name %s is reserved: Kiln's API defines it (%s); rename the type", pos(def), def.Name, file))
			}
		}
	}
	return problems, nil
}

// validateOwn validates the generated schema (srcs) with the developer's
// definitions and extensions added (those the schema loader passes
// through: neither models nor enums), and returns it. Each error is added
// to problems and its definition left out, so that every error is
// reported, not only the first. It returns nil if an error is in the
// generated schema itself. (The validator merges extensions into the
// definitions they extend, so every round parses afresh.)
func validateOwn(srcs []*ast.Source, schemaFiles []ir.File, problems *[]string) (*ast.Schema, error) {
	left := map[string]bool{} // positions of the definitions left out
	for round := 0; ; round++ {
		doc, perr := parser.ParseSchemas(srcs...)
		if perr != nil {
			return nil, fmt.Errorf("the generated schema does not parse (a Kiln bug): %w", perr)
		}
		var own []*ast.Definition
		for _, f := range schemaFiles {
			if path.Base(f.Name) == sdl.DirectivesFile {
				continue // Kiln's directive definitions, for editors
			}
			fd, err := parser.ParseSchema(&ast.Source{Name: f.Name, Input: f.Content})
			if err != nil {
				return nil, err // sdl.Load reported it already
			}
			for _, def := range fd.Definitions {
				if def.Directives.ForName("model") == nil && def.Kind != ast.Enum && !left[pos(def)] {
					doc.Definitions = append(doc.Definitions, def)
					own = append(own, def)
				}
			}
			for _, ext := range fd.Extensions {
				if !left[pos(ext)] {
					doc.Extensions = append(doc.Extensions, ext)
					own = append(own, ext)
				}
			}
		}
		schema, err := validator.ValidateSchemaDocument(doc)
		if err == nil {
			return schema, nil
		}
		var ge *gqlerror.Error
		if !errors.As(err, &ge) || round > len(own) {
			*problems = append(*problems, err.Error())
			return nil, nil
		}
		i := culprit(own, ge)
		if i < 0 {
			*problems = append(*problems, "the generated schema is invalid (a Kiln bug): "+ge.Error())
			return nil, nil
		}
		*problems = append(*problems, ge.Error())
		left[pos(own[i])] = true
	}
}

// pos is where a definition starts: file:line:col.
func pos(d *ast.Definition) string {
	return fmt.Sprintf("%s:%d:%d", d.Position.Src.Name, d.Position.Line, d.Position.Column)
}

// culprit returns the index of the definition of defs the error points
// into (the last one starting at or before it in its file), or -1.
func culprit(defs []*ast.Definition, ge *gqlerror.Error) int {
	file, _ := ge.Extensions["file"].(string)
	if file == "" || len(ge.Locations) == 0 {
		return -1
	}
	line := ge.Locations[0].Line
	best := -1
	for i, d := range defs {
		if d.Position == nil || d.Position.Src == nil || d.Position.Src.Name != file || d.Position.Line > line {
			continue
		}
		if best < 0 || d.Position.Line > defs[best].Position.Line {
			best = i
		}
	}
	return best
}
