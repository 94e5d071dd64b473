package generate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/sdl"
	"kiln/server/kilntest"
)

// TestSchemaFuzz generates valid schemas at random (seeded) from the
// directive vocabulary, with names drawn from Go keywords and predeclared
// identifiers, SQL keywords, ent's and gqlgen's generated-name suffixes and
// names of 64 to 120 characters. Whatever the schema checker accepts must
// generate, compile, migrate and serve on SQLite and PostgreSQL, take one
// record per model, and then take an evolution (new nullable fields and
// required fields with defaults) applied to the tables holding those rows;
// a required field without a default on an existing model is refused at
// generate time.
//
// A CI run checks KILN_FUZZ_SCHEMAS schemas (default 1: a generation and
// two builds take minutes on two cores) from KILN_FUZZ_SEED (default: the
// fixed seed 14); `make fuzz-schemas N=50` runs many more from a random
// seed, printed so a failure can be replayed.
func TestSchemaFuzz(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds apps; skipped with -short (run it without -short, or make fuzz-schemas N=50 for more)")
	}
	n := envInt(t, "KILN_FUZZ_SCHEMAS", 1)
	seed := uint64(envInt(t, "KILN_FUZZ_SEED", 14))
	t.Logf("seed %d, %d schemas (replay with KILN_FUZZ_SEED=%d KILN_FUZZ_SCHEMAS=%d)", seed, n, seed, n)
	for i := range n {
		t.Run(fmt.Sprintf("seed%d_%d", seed, i), func(t *testing.T) {
			g := &schemaGen{rng: rand.New(rand.NewPCG(seed, uint64(i)))}
			g.build()
			fuzzOne(t, g)
		})
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

func fuzzOne(t *testing.T, g *schemaGen) {
	schema := g.render()
	t.Logf("schema:\n%s", schema)
	dir := skeleton(t)
	os.MkdirAll(filepath.Join(dir, "schema"), 0o755)
	path := filepath.Join(dir, "schema", "app.graphql")
	os.WriteFile(path, []byte(schema), 0o644)
	if err := generateIn(t, dir, nil); err != nil {
		t.Fatalf("the checker accepted the schema but generation failed: %v", err)
	}
	bin, err := kilntest.Build(dir)
	if err == nil {
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	}
	if err != nil {
		t.Fatalf("the checker accepted the schema but the app does not compile: %v\n%s", err, buildErrors(dir))
	}
	sqliteDir, pgURL := t.TempDir(), kilntest.PostgresURL(t)
	envs := map[string][]string{
		"sqlite":   {"KILN_DATA_DIR=" + sqliteDir, "KILN_ADMIN_SECRET=fuzz-admin-secret-123"},
		"postgres": {"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=fuzz-admin-secret-123", "DATABASE_URL=" + pgURL},
	}
	s, err := sdl.Load([]ir.File{{Name: "schema/app.graphql", Content: schema}})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"sqlite", "postgres"} {
		srv := kilntest.Start(t, bin, envs[db]...)
		for _, m := range s.Models {
			createOne(t, srv, s, m)
		}
		srv.Stop()
	}

	// A required field without a default on a model whose table exists is
	// refused before anything is written.
	first := s.Models[0].Name
	refused := insertField(schema, first, "  fuzzRequired: Int!\n")
	os.WriteFile(path, []byte(refused), 0o644)
	err = generateIn(t, dir, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(time.Hour) } })
	if err == nil || !strings.Contains(err.Error(), "refusing a change that fails on a table holding rows") || !strings.Contains(err.Error(), `"fuzz_required"`) {
		t.Fatalf("a required field without a default on an existing table: want the refusal, got %v", err)
	}

	// The evolution: every model gets a nullable field and a required one
	// with a default, applied to the tables holding a row each.
	evolved := schema
	for _, m := range s.Models {
		evolved = insertField(evolved, m.Name, "  fuzzAdded: String\n  fuzzCount: Int! @default(value: 3)\n")
	}
	os.WriteFile(path, []byte(evolved), 0o644)
	if err := generateIn(t, dir, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } }); err != nil {
		t.Fatalf("evolution: %v", err)
	}
	if bin, err = kilntest.Build(dir); err != nil {
		t.Fatalf("evolution does not compile: %v\n%s", err, buildErrors(dir))
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	for _, db := range []string{"sqlite", "postgres"} {
		srv := kilntest.Start(t, bin, envs[db]...)
		for _, m := range s.Models {
			var out map[string]struct {
				TotalCount int
				Edges      []struct{ Node struct{ FuzzCount int } }
			}
			srv.MustDo(t, fmt.Sprintf("{ %s { totalCount edges { node { fuzzCount } } } }", m.ListField()), nil, &out)
			c := out[m.ListField()]
			if c.TotalCount != 1 || len(c.Edges) != 1 || c.Edges[0].Node.FuzzCount != 3 {
				t.Errorf("%s: %s after the evolution: %+v, want the one row with fuzzCount 3", db, m.Name, c)
			}
		}
		srv.Stop()
	}
}

// buildErrors is what go build says about the module in dir, every error
// of a package (-gcflags=-e), for the failure message.
func buildErrors(dir string) string {
	cmd := exec.Command("go", "build", "-gcflags=-e", "./...")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if len(out) > 8000 {
		out = out[:8000]
	}
	return string(out)
}

// insertField adds lines at the start of model's field list.
func insertField(schema, model, lines string) string {
	i := strings.Index(schema, "type "+model+" @model")
	j := i + strings.Index(schema[i:], "{\n") + 2
	return schema[:j] + lines + schema[j:]
}

// createOne creates a record of m as admin, with a value for each required
// field without a default.
func createOne(t *testing.T, srv *kilntest.Server, s *ir.Schema, m *ir.Model) {
	input := map[string]any{}
	for _, f := range m.Fields {
		if f.Nullable || f.Default != nil || f.Edge != nil {
			continue
		}
		input[f.Name] = sampleValue(s, f)
	}
	var out map[string]struct{ ID string }
	srv.MustDo(t, fmt.Sprintf("mutation($in: Create%sInput!) { create%s(input: $in) { id } }", m.Name, m.Name), map[string]any{"in": input}, &out)
}

func sampleValue(s *ir.Schema, f *ir.Field) any {
	var v any
	switch f.Kind {
	case ir.String:
		v = "x"
	case ir.Int:
		v = 1
	case ir.Float:
		v = 1.5
	case ir.Boolean:
		v = true
	case ir.Time:
		v = "2026-01-02T03:04:05Z"
	case ir.JSON:
		v = map[string]any{"a": 1}
	case ir.EnumK:
		for _, e := range s.Enums {
			if e.Name == f.Enum {
				v = e.Values[0]
			}
		}
	}
	if f.List {
		return []any{v}
	}
	return v
}

// The name pools. Model names are PascalCase, field names camelCase.
var (
	fuzzModelNames = []string{
		// Go keywords and predeclared identifiers, capitalized.
		"Type", "Func", "Range", "Map", "Chan", "Go", "Select", "Default", "Struct", "Interface", "Import",
		"Return", "Var", "Const", "Switch", "Case", "Defer", "Goto", "Fallthrough", "Continue", "Break",
		"Int", "String", "Error", "Bool", "Byte", "Rune", "Any", "Len", "Cap", "Make", "New", "Append",
		"Copy", "Delete", "Close", "Panic", "Print", "Nil", "True", "False", "Iota", "Max", "Min", "Clear",
		// SQL keywords.
		"Order", "Group", "User", "Table", "Index", "Key", "Limit", "Offset", "Where", "From", "Join", "Check",
		"Column", "Primary", "References", "Constraint", "Transaction", "Session", "Role", "Grant", "Values",
		// ent's, entgql's and gqlgen's generated names and suffixes, Kiln's own.
		"Client", "Log", "Policy", "Package", "Account", "Query", "Mutation", "Edge", "Node", "Connection",
		"Cursor", "PageInfo", "Hook", "Schema", "Value", "Predicate", "Migrate", "Runtime", "Tx", "Op",
		"PostOrder", "OrderField", "WhereInput", "Create", "Update", "UpdateOne", "GroupBy", "Filter",
		"File", "Upload", "Viewer", "AuthUser", "Label", "Columns", "Config", "Driver",
		// Ordinary names.
		"Invoice", "Customer", "Product", "Shipment", "Note",
	}
	fuzzFieldNames = []string{
		"type", "func", "range", "map", "chan", "go", "select", "default", "struct", "interface", "import",
		"return", "var", "const", "switch", "case", "defer", "goto", "package", "len", "cap", "make", "new",
		"append", "copy", "delete", "close", "panic", "print", "nil", "true", "false", "iota", "error",
		"string", "int", "any", "byte", "order", "group", "user", "table", "index", "key", "limit", "offset",
		"where", "from", "join", "check", "column", "columns", "primary", "references", "label", "value",
		"values", "edges", "node", "cursor", "totalCount", "pageInfo", "input", "create", "update", "client",
		"config", "hooks", "policy", "field", "fields", "op", "not", "and", "or", "has", "file", "files",
		"id", "version", "createdAt", "ownerID", "query", "mutation", "schema", "driver", "tx", "ctx",
	}
	fuzzEnums = []string{"Status", "Kind", "Level"}
)

// longName is a name of 64 to 120 characters; names from one prefix share
// their first 63 characters.
func longName(rng *rand.Rand, upper bool) string {
	const prefix = "averyLongNameThatKeepsGoingPastWhatPostgresKeepsInAnIdentifier" // 63 bytes
	n := 64 + rng.IntN(57)
	s := prefix
	for len(s) < n {
		s += string(rune('a' + rng.IntN(26)))
	}
	if upper {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

// schemaGen builds one random schema, keeping only what the checker
// accepts: every part is added, checked with sdl.Load, and dropped if
// refused (refusals have their own golden tests).
type schemaGen struct {
	rng    *rand.Rand
	enums  []string
	models []*fuzzModel
}

type fuzzModel struct {
	name  string
	auth  string
	lines []string
}

func (g *schemaGen) render() string {
	var b strings.Builder
	for _, e := range g.enums {
		fmt.Fprintf(&b, "enum %s {\n  FIRST\n  SECOND\n}\n\n", e)
	}
	for _, m := range g.models {
		fmt.Fprintf(&b, "type %s @model%s {\n", m.name, m.auth)
		for _, l := range m.lines {
			b.WriteString("  " + l + "\n")
		}
		b.WriteString("}\n\n")
	}
	return b.String()
}

func (g *schemaGen) ok() bool {
	_, err := sdl.Load([]ir.File{{Name: "schema/app.graphql", Content: g.render()}})
	return err == nil
}

func (g *schemaGen) pick(pool []string) string { return pool[g.rng.IntN(len(pool))] }

func (g *schemaGen) build() {
	g.enums = []string{g.pick(fuzzEnums)}
	// Models: Order (refused by Kiln's old "names ending in Order" rule) and
	// two to four more accepted names, some long.
	g.models = []*fuzzModel{{name: "Order", lines: []string{"title: String @sortable"}}}
	for tries := 0; len(g.models) < 3+g.rng.IntN(3) && tries < 200; tries++ {
		name := g.pick(fuzzModelNames)
		if tries%7 == 3 {
			name = longName(g.rng, true)
		}
		m := &fuzzModel{name: name}
		if g.rng.IntN(2) == 0 {
			m.auth = " @auth(rules: [{ allow: authenticated, operations: [read] }])"
		}
		m.lines = []string{"title: String @sortable"}
		g.models = append(g.models, m)
		if !g.ok() {
			g.models = g.models[:len(g.models)-1]
		}
	}
	// Fields: a few per model, from the pools and long names.
	for _, m := range g.models {
		for tries, added := 0, 0; added < 2+g.rng.IntN(4) && tries < 100; tries++ {
			name := g.pick(fuzzFieldNames)
			if tries%5 == 4 {
				name = longName(g.rng, false)
			}
			if g.add(m, name+": "+g.fieldType()) {
				added++
			}
		}
		// A long name sharing its first 63 characters with another.
		for tries := 0; tries < 5 && !g.add(m, longName(g.rng, false)+": Int"); tries++ {
		}
	}
	// Relations: a nullable belongsTo with its hasMany, a manyToMany.
	for i := 1; i < len(g.models); i++ {
		from, to := g.models[i], g.models[g.rng.IntN(i)]
		for tries := 0; tries < 10; tries++ {
			fwd, back := g.pick(fuzzFieldNames), g.pick(fuzzFieldNames)
			if tries%3 == 2 {
				fwd = longName(g.rng, false)
			}
			from.lines = append(from.lines, fmt.Sprintf("%s: %s @belongsTo", fwd, to.name))
			to.lines = append(to.lines, fmt.Sprintf("%s: [%s!]! @hasMany(field: %q)", back, from.name, fwd))
			if g.ok() {
				break
			}
			from.lines, to.lines = from.lines[:len(from.lines)-1], to.lines[:len(to.lines)-1]
		}
	}
	if len(g.models) >= 2 {
		a, b := g.models[0], g.models[len(g.models)-1]
		for tries := 0; tries < 10; tries++ {
			x, y := g.pick(fuzzFieldNames), g.pick(fuzzFieldNames)
			a.lines = append(a.lines, fmt.Sprintf("%s: [%s!]! @manyToMany(inverse: %q)", x, b.name, y))
			b.lines = append(b.lines, fmt.Sprintf("%s: [%s!]! @manyToMany(inverse: %q)", y, a.name, x))
			if g.ok() {
				break
			}
			a.lines, b.lines = a.lines[:len(a.lines)-1], b.lines[:len(b.lines)-1]
		}
	}
	// Files: a single and a list field of one name on one model.
	m := g.models[g.rng.IntN(len(g.models))]
	g.add(m, "file: File @file")
	g.add(m, "files: [File!]! @file")
}

// add appends a field line to m if the checker accepts it.
func (g *schemaGen) add(m *fuzzModel, line string) bool {
	m.lines = append(m.lines, line)
	if g.ok() {
		return true
	}
	m.lines = m.lines[:len(m.lines)-1]
	return false
}

// fieldType is a random type with directives that fit it.
func (g *schemaGen) fieldType() string {
	bang := ""
	if g.rng.IntN(2) == 0 {
		bang = "!"
	}
	switch g.rng.IntN(9) {
	case 0:
		return "String" + bang + " @length(max: 200)" + g.maybe(" @sortable") + g.maybe(" @index")
	case 1:
		return "Int" + bang + " @range(min: 0, max: 1000)" + g.maybe(" @sortable")
	case 2:
		return "Int! @default(value: 7)" + g.maybe(" @index")
	case 3:
		return "Float" + bang + g.maybe(" @sortable")
	case 4:
		return "Boolean! @default(value: true)"
	case 5:
		return "Time" + g.maybe(" @sortable")
	case 6:
		return "JSON"
	case 7:
		return g.enums[0] + bang + g.maybe(" @index")
	default:
		return "[String!]! @default(value: [])"
	}
}

func (g *schemaGen) maybe(s string) string {
	if g.rng.IntN(2) == 0 {
		return s
	}
	return ""
}
