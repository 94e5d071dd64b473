package generate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/write"
)

// operations validates the operation documents in schema/operations against
// the generated GraphQL schema and returns graph/operations.go: the
// allow-list, keyed by the sha256 of each operation's text (the hash clients
// send as persisted-query ids).
func operations(root, schemaDir string) (write.File, []*clientapi.Operation, error) {
	var srcs []*ast.Source
	graphFiles, _ := filepath.Glob(filepath.Join(root, "graph", "*.graphql"))
	for _, p := range graphFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return write.File{}, nil, err
		}
		srcs = append(srcs, &ast.Source{Name: "graph/" + filepath.Base(p), Input: string(b)})
	}
	schema, gerr := gqlparser.LoadSchema(srcs...)
	if gerr != nil {
		return write.File{}, nil, fmt.Errorf("load the generated schema: %w", gerr)
	}
	ops, typed, problems, err := checkOperations(schema, schemaDir)
	if err != nil {
		return write.File{}, nil, err
	}
	if len(problems) > 0 {
		return write.File{}, nil, fmt.Errorf("operations do not match the schema:\n%s", strings.Join(problems, "\n"))
	}
	// The allow-list, sorted by hash.
	type operation struct{ Hash, Text string }
	list := make([]operation, 0, len(ops))
	for k, text := range ops {
		list = append(list, operation{k, text})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Hash < list[j].Hash })
	sort.Slice(typed, func(i, j int) bool { return typed[i].Name < typed[j].Name })
	return write.File{Path: "graph/operations.go", Content: []byte(render("operations.go.tmpl", list))}, typed, nil
}

// checkOperations validates the operation documents in schemaDir/operations
// against schema: the operations by hash, typed for the SDKs, and the
// problems found (file:line:col: message), all of them.
func checkOperations(schema *ast.Schema, schemaDir string) (map[string]string, []*clientapi.Operation, []string, error) {
	ops := map[string]string{}
	names := map[string]string{}
	var typed []*clientapi.Operation
	files, _ := filepath.Glob(filepath.Join(schemaDir, "operations", "*.graphql"))
	var problems []string
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, nil, err
		}
		name := filepath.ToSlash(filepath.Join(filepath.Base(schemaDir), "operations", filepath.Base(p)))
		doc, perr := parser.ParseQuery(&ast.Source{Name: name, Input: string(b)})
		if perr != nil {
			problems = append(problems, perr.Error())
			continue
		}
		for _, e := range validator.Validate(schema, doc) {
			problems = append(problems, e.Error())
		}
		for _, op := range doc.Operations {
			if op.Name == "" {
				problems = append(problems, fmt.Sprintf("%s:%d:%d: operations in schema/operations need a name", name, op.Position.Line, op.Position.Column))
				continue
			}
			if prev, dup := names[op.Name]; dup {
				problems = append(problems, fmt.Sprintf("%s: operation %s is also defined in %s", name, op.Name, prev))
				continue
			}
			names[op.Name] = name
			text := operationText(doc, op)
			sum := sha256.Sum256([]byte(text))
			ops[hex.EncodeToString(sum[:])] = text
			typed = append(typed, clientapi.Resolve(schema, doc, op, text, hex.EncodeToString(sum[:])))
		}
	}
	return ops, typed, problems, nil
}

// operationText is the canonical text of one operation with the fragments
// it uses, as sent by clients.
func operationText(doc *ast.QueryDocument, op *ast.OperationDefinition) string {
	one := &ast.QueryDocument{Operations: ast.OperationList{op}, Fragments: doc.Fragments}
	var sb strings.Builder
	formatter.NewFormatter(&sb).FormatQueryDocument(one)
	return sb.String()
}
