package generate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/emit/kotlin"
	"kiln/generator/internal/emit/swift"
	"kiln/generator/internal/ir"
	"kiln/generator/internal/write"
)

// serverSchema loads the generated GraphQL schema of the example (graph/
// *.graphql), Files API included.
func serverSchema(t *testing.T, root string) *ast.Schema {
	t.Helper()
	var srcs []*ast.Source
	paths, _ := filepath.Glob(filepath.Join(root, "graph", "*.graphql"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, &ast.Source{Name: filepath.Base(p), Input: string(b)})
	}
	s, err := gqlparser.LoadSchema(srcs...)
	if err != nil {
		t.Fatalf("load schema: %v", err)
	}
	return s
}

// validateRequest parses and validates a document and its variables.
func validateRequest(t *testing.T, schema *ast.Schema, doc string, vars map[string]any) {
	t.Helper()
	q, perr := parser.ParseQuery(&ast.Source{Name: "sdk", Input: doc})
	if perr != nil {
		t.Errorf("parse %q: %v", doc, perr)
		return
	}
	if errs := validator.Validate(schema, q); len(errs) > 0 {
		t.Errorf("invalid document %q: %v", doc, errs)
		return
	}
	if _, err := validator.VariableValues(schema, q.Operations[0], vars); err != nil {
		t.Errorf("invalid variables for %q: %v (%v)", doc, err, vars)
	}
}

// exampleAPI is the client API of the example schema with its operations.
func exampleAPI(t *testing.T, root string) *clientapi.API {
	t.Helper()
	_, ops, err := operations(root, filepath.Join(root, "schema"))
	if err != nil {
		t.Fatal(err)
	}
	return clientapi.Build(loadDir(t, filepath.Join(root, "schema")), ops)
}

// sample is a value of a client type, as the SDKs encode it.
func sample(a *clientapi.API, tp clientapi.Type) any {
	var v any
	switch tp.Kind {
	case ir.ID:
		v = "00000000-0000-4000-8000-000000000001"
	case ir.String:
		v = "text"
	case ir.Int:
		v = 1
	case ir.Float:
		v = 1.5
	case ir.Boolean:
		v = true
	case ir.Time:
		v = "2030-01-02T03:04:05.000Z"
	case ir.JSON:
		v = map[string]any{"k": "v"}
	case ir.EnumK:
		for _, e := range a.Enums {
			if e.Name == tp.Enum {
				v = e.Values[len(e.Values)-1]
			}
		}
	}
	if tp.List {
		return []any{v}
	}
	return v
}

type request struct {
	Call      string         `json:"call"`
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables"`
}

// swiftRequests are the requests of representative Swift calls: the
// document each call sends and the variables its toJSON builds (every
// field of the inputs and filters set).
func swiftRequests(a *clientapi.API) []request {
	var out []request
	for _, m := range a.Models {
		create := map[string]any{}
		var createArgs []string
		for _, f := range m.Create {
			create[f.Name] = sample(a, f.Type)
			createArgs = append(createArgs, f.Name+": …")
		}
		update := map[string]any{}
		for _, f := range m.Update {
			if f.Patch {
				update[f.Name] = nil // .null clears
			} else {
				update[f.Name] = sample(a, f.Type)
			}
		}
		where := map[string]any{}
		for _, f := range m.Filters {
			switch {
			case f.Self == "not":
				where["not"] = map[string]any{"id": "00000000-0000-4000-8000-000000000002"}
			case f.Self != "":
				where[f.Name] = []any{map[string]any{"version": 1}}
			case f.Target != "":
				where[f.Name] = []any{map[string]any{"idNEQ": "00000000-0000-4000-8000-000000000003"}}
			default:
				where[f.Name] = sample(a, f.Type)
			}
		}
		get, list, cr, up, del := m.Get(), m.ListDoc(), m.CreateDoc(), m.UpdateDoc(), m.DeleteDoc()
		id := "00000000-0000-4000-8000-000000000001"
		out = append(out,
			request{fmt.Sprintf("kiln.%s.get(id: %q)", m.List, id), get.Text, map[string]any{"id": id}},
			request{fmt.Sprintf("kiln.%s.list(where: %sWhereInput { every filter set }, orderBy: [%sOrder(.%s, .desc)], first: 2, after: \"c1\")", m.List, m.Name, m.Name, "createdAt"), list.Text,
				map[string]any{"where": where, "orderBy": []any{map[string]any{"field": m.OrderBy[0], "direction": "DESC"}}, "first": 2, "after": "c1"}},
			request{fmt.Sprintf("kiln.%s.list(last: 5, before: \"c9\")", m.List), list.Text, map[string]any{"last": 5, "before": "c9"}},
			request{fmt.Sprintf("kiln.%s.create(Create%sInput(%s))", m.List, m.Name, strings.Join(createArgs, ", ")), cr.Text, map[string]any{"input": create}},
			request{fmt.Sprintf("kiln.%s.update(id: %q, Update%sInput(every field: set, or .null where nullable))", m.List, id, m.Name), up.Text, map[string]any{"id": id, "input": update}},
			request{fmt.Sprintf("kiln.%s.update(id: %q, Update%sInput(version: 3))", m.List, id, m.Name), up.Text, map[string]any{"id": id, "input": map[string]any{"version": 3}}},
			request{fmt.Sprintf("kiln.%s.delete(id: %q)", m.List, id), del.Text, map[string]any{"id": id}},
		)
		for _, f := range m.IR.Files { // attach an uploaded file
			if f.Readonly {
				continue
			}
			in, call, v := clientapi.FileInputName(f.Name, f.List), fmt.Sprintf(".value(%q)", id), any(id)
			if f.List {
				call, v = fmt.Sprintf("[%q]", id), []any{id}
			} else if !f.Nullable {
				call = fmt.Sprintf("%q", id)
			}
			out = append(out, request{fmt.Sprintf("kiln.%s.update(id: %q, Update%sInput(%s: %s))", m.List, id, m.Name, in, call), up.Text, map[string]any{"id": id, "input": map[string]any{in: v}}})
		}
		for _, ev := range m.Events {
			out = append(out, request{fmt.Sprintf("kiln.%s.%s(where: %sWhereInput { $0.version = 1 })", m.List, ev, m.Name), m.EventDoc(ev).Text, map[string]any{"where": map[string]any{"version": 1}}})
		}
	}
	cred := map[string]any{"input": map[string]any{"email": "ada@example.com", "password": "correct horse battery"}}
	out = append(out,
		request{`kiln.auth.signUp(email: "ada@example.com", password: "correct horse battery")`, clientapi.AuthDocs["signUp"].Text, cred},
		request{`kiln.auth.signIn(email: "ada@example.com", password: "correct horse battery")`, clientapi.AuthDocs["signIn"].Text, cred},
		request{`kiln.auth.signInAnonymously()`, clientapi.AuthDocs["signInAnonymously"].Text, map[string]any{}},
		request{`kiln.auth.linkAccount(email: "ada@example.com", password: "correct horse battery")`, clientapi.AuthDocs["linkAccount"].Text, cred},
		request{`kiln.auth.refresh() (and automatic refreshes)`, clientapi.AuthDocs["refreshSession"].Text, map[string]any{"refreshToken": "r1"}},
		request{`kiln.auth.signOut()`, clientapi.AuthDocs["signOut"].Text, map[string]any{"refreshToken": "r1"}},
		request{`kiln.auth.viewer()`, clientapi.AuthDocs["viewer"].Text, map[string]any{}},
	)
	for _, op := range a.Operations {
		vars := map[string]any{}
		for _, v := range op.Variables {
			if !v.Optional() {
				vars[v.Name] = sample(a, clientapi.Type{Kind: ir.Kind(v.Type.Named)})
			}
		}
		out = append(out, request{fmt.Sprintf("kiln.operations.%s(required arguments)", clientapi.LowerFirst(op.Name)), op.Text, vars})
	}
	return out
}

// TestClientRequests validates every document the SDKs send (model calls,
// subscriptions, auth, custom operations) and the variables of
// representative Swift calls against the server's generated schema, and
// compares those requests with testdata/swift-requests.golden.json (-update
// to accept), and the documents of the files runtime.
func TestClientRequests(t *testing.T) {
	root := repoRoot(t)
	schema := serverSchema(t, root)
	a := exampleAPI(t, root)
	reqs := swiftRequests(a)
	for _, r := range reqs {
		vars := map[string]any{}
		b, _ := json.Marshal(r.Variables)
		json.Unmarshal(b, &vars) // numbers as the server sees them
		validateRequest(t, schema, r.Query, vars)
	}
	for _, name := range clientapi.FileDocNames {
		validateRequest(t, schema, clientapi.FileDocs[name].Text, map[string]any{
			"input": map[string]any{"filename": "a.jpg", "contentType": "image/jpeg", "size": 3}, "fileId": "f1", "id": "f1", "expiresIn": 60, "file": "0",
			"transform": map[string]any{"width": 64, "height": 64, "fit": "CONTAIN", "format": "JPEG"}})
	}
	for _, name := range clientapi.AuthDocNames {
		q, _ := parser.ParseQuery(&ast.Source{Input: clientapi.AuthDocs[name].Text})
		if errs := validator.Validate(schema, q); len(errs) > 0 {
			t.Errorf("auth %s: %v", name, errs)
		}
	}

	// Each document is in both SDKs' sources, verbatim as a string literal.
	var swiftSrc, kotlinSrc strings.Builder
	for _, f := range swift.Files(a) {
		swiftSrc.Write(f.Content)
	}
	for _, f := range kotlin.Files(a) {
		kotlinSrc.Write(f.Content)
	}
	for _, r := range reqs {
		if !strings.Contains(swiftSrc.String(), `"`+swift.Quote(r.Query)+`"`) {
			t.Errorf("the Swift SDK does not send %q", r.Query)
		}
		if !strings.Contains(kotlinSrc.String(), `"`+kotlin.Quote(r.Query)+`"`) {
			t.Errorf("the Kotlin SDK does not send %q", r.Query)
		}
	}

	got, _ := json.MarshalIndent(reqs, "", "  ")
	got = append(got, '\n')
	golden := filepath.Join("..", "testdata", "swift-requests.golden.json")
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil || !bytes.Equal(want, got) {
		t.Errorf("Swift requests differ from %s (run go test ./generator/generate -run TestClientRequests -update to accept)", golden)
	}
}

// TestClientInputKeys reads the generated Swift and Kotlin sources and
// checks that the keys each input's toJSON/toJson can send are exactly the
// fields of the server's input type (create, update, where), so no call can
// send a field the schema lacks and no input field is unreachable.
func TestClientInputKeys(t *testing.T) {
	root := repoRoot(t)
	schema := serverSchema(t, root)
	a := exampleAPI(t, root)
	langs := map[string]struct {
		files []string
		block func(typ string) *regexp.Regexp
		key   *regexp.Regexp
	}{
		"swift": {files: paths(swift.Files(a)), block: func(typ string) *regexp.Regexp {
			return regexp.MustCompile(`(?s)public (?:struct|final class) ` + typ + `\b.*?func toJSON\(\) -> JSONValue \{(.*?)\n    \}\n`)
		}, key: regexp.MustCompile(`o\["(\w+)"\]`)},
		"kotlin": {files: paths(kotlin.Files(a)), block: func(typ string) *regexp.Regexp {
			return regexp.MustCompile(`(?s)class ` + typ + `\b.*?fun toJson\(\): JsonObject = buildJsonObject \{(.*?)\n    \}\n`)
		}, key: regexp.MustCompile(`put\("(\w+)"`)},
	}
	for lang, l := range langs {
		for _, m := range a.Models {
			var src string
			for _, f := range l.files {
				if strings.HasSuffix(f, "/"+m.Name+".swift") || strings.HasSuffix(f, "/"+m.Name+".kt") {
					b, err := os.ReadFile(filepath.Join(root, f))
					if err != nil {
						t.Fatal(err)
					}
					src = string(b)
				}
			}
			for _, typ := range []string{"Create" + m.Name + "Input", "Update" + m.Name + "Input", m.Name + "WhereInput"} {
				mm := l.block(typ).FindStringSubmatch(src)
				if mm == nil {
					t.Errorf("%s: no toJSON of %s", lang, typ)
					continue
				}
				var keys []string
				seen := map[string]bool{}
				for _, k := range l.key.FindAllStringSubmatch(mm[1], -1) {
					if !seen[k[1]] { // a Patch field has a null and a value branch
						seen[k[1]] = true
						keys = append(keys, k[1])
					}
				}
				var want []string
				for _, f := range schema.Types[typ].Fields {
					want = append(want, f.Name)
				}
				sort.Strings(keys)
				sort.Strings(want)
				if strings.Join(keys, " ") != strings.Join(want, " ") {
					t.Errorf("%s %s sends %v\nschema has %v", lang, typ, keys, want)
				}
			}
		}
	}
}

func paths(files []write.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}
