package generate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/sdl"
	"kiln/server/kilntest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

func loadDir(t testing.TB, dir string) *ir.Schema {
	t.Helper()
	files, err := readSchema(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sdl.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGolden compares Kiln's own emitted files (ent schema, GraphQL SDL,
// resolvers, gqlgen config) for each testdata case with its golden tree.
// Run with -update to accept changes.
func TestGolden(t *testing.T) {
	cases, _ := filepath.Glob("../testdata/*/schema")
	if len(cases) == 0 {
		t.Fatal("no golden cases")
	}
	for _, schemaDir := range cases {
		caseDir := filepath.Dir(schemaDir)
		t.Run(filepath.Base(caseDir), func(t *testing.T) {
			s := loadDir(t, schemaDir)
			files, err := Emit(s, "kiln")
			if err != nil {
				t.Fatal(err)
			}
			// The client SDKs (custom operations need the generated schema:
			// the testdata cases have none).
			clients, err := EmitClients(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, clients...)
			golden := filepath.Join(caseDir, "golden")
			if *update {
				os.RemoveAll(golden)
				for _, f := range files {
					p := filepath.Join(golden, f.Path+".golden")
					os.MkdirAll(filepath.Dir(p), 0o755)
					if err := os.WriteFile(p, f.Content, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := map[string]bool{}
			filepath.WalkDir(golden, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(golden, p)
					want[strings.TrimSuffix(filepath.ToSlash(rel), ".golden")] = true
				}
				return nil
			})
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(golden, f.Path+".golden"))
				if err != nil {
					t.Errorf("%s: no golden file (run go test -update)", f.Path)
					continue
				}
				delete(want, f.Path)
				if !bytes.Equal(b, f.Content) {
					t.Errorf("%s differs from golden (run go test ./generator/generate -run TestGolden -update to accept)", f.Path)
				}
			}
			for p := range want {
				t.Errorf("golden %s is no longer generated", p)
			}
		})
	}
}

// TestNoPlaceholders: the Go Kiln emits (example and testdata schemas)
// keeps no placeholder uses of imports or variables and no constant
// conditions; the writer prunes unused imports instead.
func TestNoPlaceholders(t *testing.T) {
	dirs, _ := filepath.Glob("../testdata/*/schema")
	dirs = append(dirs, filepath.Join(repoRoot(t), "schema"))
	placeholder := regexp.MustCompile(`(?m)^\s*(var )?_ = |^\s*_ [a-z]+\.[A-Z]|if true \{|&& false|\|\| true\b`)
	for _, dir := range dirs {
		files, err := Emit(loadDir(t, dir), "kiln")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Path, ".go") {
				continue
			}
			if loc := placeholder.FindIndex(f.Content); loc != nil {
				line := bytes.Count(f.Content[:loc[0]], []byte("\n")) + 1
				t.Errorf("%s (%s):%d: placeholder %q", f.Path, dir, line, f.Content[loc[0]:loc[1]])
			}
		}
	}
}

// TestExampleIsGenerated checks the committed example output matches the
// schema (make check does the same for everything, including ent and gqlgen).
func TestExampleIsGenerated(t *testing.T) {
	root := repoRoot(t)
	s := loadDir(t, filepath.Join(root, "schema"))
	files, err := Emit(s, "kiln")
	if err != nil {
		t.Fatal(err)
	}
	_, ops, err := operations(root, filepath.Join(root, "schema"))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := EmitClients(s, ops)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, clients...)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f.Path))
		if err != nil || !bytes.Equal(b, f.Content) {
			t.Errorf("%s is stale: run make generate", f.Path)
		}
	}
}

// skeleton copies what a generated project needs besides its generated
// code (the server and the runtime) into a temp module, with a main that
// serves the app (the example's main.go and code.go are the example's own).
func skeleton(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	dst := t.TempDir()
	main := "package main\n\nimport (\n\t\"kiln/graph\"\n\t\"kiln/server\"\n)\n\nfunc main() { server.Main(graph.App()) }\n"
	if err := os.WriteFile(filepath.Join(dst, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"go.mod", "go.sum", "server", "runtime"} {
		src := filepath.Join(root, p)
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir // test fixtures and their installed tools
				}
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			if !d.Type().IsRegular() || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// treeHash hashes every file under root except the schema sources.
func treeHash(t *testing.T, root string) (string, []string) {
	t.Helper()
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		b, _ := os.ReadFile(filepath.Join(root, p))
		fmt.Fprintf(h, "%s %x\n", p, sha256.Sum256(b))
	}
	return hex.EncodeToString(h.Sum(nil)), paths
}

func copySchema(t *testing.T, from, to string) {
	t.Helper()
	os.RemoveAll(to)
	os.MkdirAll(to, 0o755)
	matches, _ := filepath.Glob(filepath.Join(from, "*.graphql"))
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		os.WriteFile(filepath.Join(to, filepath.Base(m)), b, 0o644)
	}
}

func generateIn(t *testing.T, root string, mutate func(*Config)) error {
	t.Helper()
	_, err := generateOut(t, root, mutate)
	return err
}

// generateOut is generateIn returning the progress lines too.
func generateOut(t *testing.T, root string, mutate func(*Config)) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg := Config{Root: root, Module: "kiln", Out: &out, Now: func() time.Time { return time.Now() }}
	if mutate != nil {
		mutate(&cfg)
	}
	err := Run(context.Background(), cfg)
	t.Logf("generate:\n%s", out.String())
	return out.String(), err
}

// TestPipeline runs the whole generator on the second schema (testdata/
// tasks) in a temp module, checks idempotency, compiles the generated Go,
// serves it and exercises the API over HTTP, then removes a model and
// checks the destructive-change guard and stale-file removal.
func TestPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server; skipped with -short")
	}
	dir := skeleton(t)
	copySchema(t, "../testdata/tasks/schema", filepath.Join(dir, "schema"))
	if err := generateIn(t, dir, nil); err != nil {
		t.Fatal(err)
	}
	first, paths := treeHash(t, dir)
	for _, want := range []string{"ent/task/task.go", "ent/schema/tag.go", "graph/tag.resolvers.go", "graph/generated.go", "schema/kiln.directives.graphql",
		"clients/kotlin/src/main/kotlin/io/kiln/sdk/Task.kt", "clients/swift/Sources/Kiln/Task.swift", "clients/kotlin/pom.xml", "clients/swift/Package.swift"} {
		if sort.SearchStrings(paths, want) == len(paths) || paths[sort.SearchStrings(paths, want)] != want {
			t.Errorf("missing %s", want)
		}
	}
	for _, p := range paths {
		if strings.HasPrefix(p, "graph/") && strings.HasSuffix(p, ".go") || strings.HasPrefix(p, "ent/schema/") {
			b, _ := os.ReadFile(filepath.Join(dir, p))
			if !bytes.HasPrefix(b, []byte("// Code generated by")) {
				t.Errorf("%s lacks a generated-code header", p)
			}
			if bytes.Contains(b, []byte(`panic("not implemented`)) {
				t.Errorf("%s has an unimplemented resolver", p)
			}
		}
	}

	// Idempotent: a second run (forced past the cache) changes nothing.
	if err := generateIn(t, dir, func(c *Config) { c.Force = true }); err != nil {
		t.Fatal(err)
	}
	if second, _ := treeHash(t, dir); second != first {
		t.Fatal("second generate changed the tree")
	}
	// Unchanged schema, generator and files: nothing to do. A generated
	// file edited by hand is noticed and regenerated.
	if out, err := generateOut(t, dir, nil); err != nil || !strings.Contains(out, "kiln: up to date:") || strings.Contains(out, "gqlgen generated") {
		t.Fatalf("a run with nothing changed: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "graph", "tag.resolvers.go"), []byte("package graph\n"), 0o644)
	if out, err := generateOut(t, dir, nil); err != nil || strings.Contains(out, "kiln: up to date:") {
		t.Fatalf("a run after a generated file changed: %v\n%s", err, out)
	}
	if third, _ := treeHash(t, dir); third != first {
		t.Fatal("the edited generated file was not regenerated")
	}

	// The generated authorization matrix test passes for this schema too.
	matrix := exec.Command("go", "test", "-count=1", "-run", "TestAuthorizationMatrix", "./graph/")
	matrix.Dir = dir
	if out, err := matrix.CombinedOutput(); err != nil {
		t.Fatalf("generated matrix test fails on the tasks schema: %v\n%s", err, out)
	}

	// The generated Go compiles, and the server serves the API.
	bin := kilntest.BuildT(t, dir)
	t.Run("sqlite", func(t *testing.T) {
		exerciseTasks(t, kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET=pipeline-admin-secret-123"))
	})
	t.Run("postgres", func(t *testing.T) {
		exerciseTasks(t, kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET=pipeline-admin-secret-123", "DATABASE_URL="+kilntest.PostgresURL(t)))
	})

	// A schema error writes nothing.
	before, _ := treeHash(t, dir)
	os.WriteFile(filepath.Join(dir, "schema", "broken.graphql"), []byte("type Broken @model { x: Strin }\n"), 0o644)
	err := generateIn(t, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "schema/broken.graphql:1:25: unknown type Strin; did you mean String?") {
		t.Fatalf("want a schema error, got %v", err)
	}
	os.Remove(filepath.Join(dir, "schema", "broken.graphql"))
	if after, _ := treeHash(t, dir); after != before {
		t.Fatal("a failed generate changed the tree")
	}

	// Removing a model drops a table: refused without the flag, nothing written.
	schema := filepath.Join(dir, "schema", "tasks.graphql")
	b, _ := os.ReadFile(schema)
	s := string(b)
	s = strings.Replace(s, "  tags: [Tag!]! @manyToMany(inverse: \"tasks\")\n", "", 1)
	s = s[:strings.Index(s, "type Tag @model")]
	os.WriteFile(schema, []byte(s), 0o644)
	before, _ = treeHash(t, dir)
	out, err := generateOut(t, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "would lose data") || !strings.Contains(err.Error(), "-allow-destructive") {
		t.Fatalf("want the destructive-change refusal, got %v", err)
	}
	// Refused before the expensive steps (ent's and gqlgen's code generation).
	if strings.Contains(out, "generated ent/") || strings.Contains(out, "gqlgen") {
		t.Fatalf("the destructive change was refused only after code generation:\n%s", out)
	}
	if after, _ := treeHash(t, dir); after != before {
		t.Fatal("a refused generate changed the tree")
	}
	// With the flag the model's files are gone and a migration drops the tables.
	if err := generateIn(t, dir, func(c *Config) {
		c.AllowDestructive = true
		c.Now = func() time.Time { return time.Now().Add(time.Hour) }
	}); err != nil {
		t.Fatal(err)
	}
	_, paths = treeHash(t, dir)
	var newest string
	for _, p := range paths {
		if strings.HasPrefix(p, "ent/tag/") || p == "ent/schema/tag.go" || p == "graph/tag.resolvers.go" || p == "ent/tag.go" ||
			p == "clients/kotlin/src/main/kotlin/io/kiln/sdk/Tag.kt" || p == "clients/swift/Sources/Kiln/Tag.swift" {
			t.Errorf("stale file left behind: %s", p)
		}
		if strings.HasPrefix(p, "migrations/postgres/") && strings.HasSuffix(p, ".sql") {
			newest = p
		}
	}
	mig, _ := os.ReadFile(filepath.Join(dir, newest))
	if !strings.Contains(string(mig), `DROP TABLE "tags"`) {
		t.Errorf("newest migration %s does not drop tags:\n%s", newest, mig)
	}
	cmd := exec.Command("go", "build", "./...")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("after removing a model the project does not build: %v\n%s", err, out)
	}
}

// exerciseTasks runs CRUD, filters, self-references and constraints on the
// tasks schema.
func exerciseTasks(t *testing.T, s *kilntest.Server) {
	var ws struct{ CreateWorkspace struct{ ID, Plan string } }
	s.MustDo(t, `mutation { createWorkspace(input: {slug: "acme", name: "Acme", settings: {tz: "UTC"}}) { id plan } }`, nil, &ws)
	if ws.CreateWorkspace.Plan != "FREE" {
		t.Fatalf("default enum: %+v", ws)
	}
	wid := ws.CreateWorkspace.ID
	var m struct {
		CreateMember struct {
			ID    string
			Roles []string
		}
	}
	s.MustDo(t, `mutation($w: ID!) { createMember(input: {workspaceID: $w, email: "a@acme.io"}) { id roles } }`, map[string]any{"w": wid}, &m)
	if len(m.CreateMember.Roles) != 1 || m.CreateMember.Roles[0] != "VIEWER" {
		t.Fatalf("enum list default: %+v", m)
	}
	r := s.Do(t, `mutation($w: ID!) { createMember(input: {workspaceID: $w, email: "a@acme.io"}) { id } }`, map[string]any{"w": wid})
	if r.Code() != "CONFLICT" {
		t.Fatalf("composite unique: %+v", r.Errors)
	}
	var p struct{ CreateProject struct{ ID string } }
	s.MustDo(t, `mutation($w: ID!) { createProject(input: {workspaceID: $w, key: "WEB"}) { id } }`, map[string]any{"w": wid}, &p)
	r = s.Do(t, `mutation($w: ID!) { createProject(input: {workspaceID: $w, key: "web"}) { id } }`, map[string]any{"w": wid})
	if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "key" {
		t.Fatalf("pattern: %+v", r.Errors)
	}
	var tag struct{ CreateTag struct{ ID string } }
	s.MustDo(t, `mutation { createTag(input: {name: "bug", color: "#ff0000"}) { id } }`, nil, &tag)
	var parent struct {
		CreateTask struct {
			ID       string
			Priority int
			Status   string
		}
	}
	s.MustDo(t, `mutation($p: ID!, $m: ID!, $t: [ID!]) { createTask(input: {ownerID: "00000000-0000-4000-8000-000000000001", workspaceID: "`+wid+`", projectID: $p, assigneeID: $m, title: "Epic", tagIDs: $t, dueAt: "2030-01-02T03:04:05Z"}) { id priority status } }`,
		map[string]any{"p": p.CreateProject.ID, "m": m.CreateMember.ID, "t": []string{tag.CreateTag.ID}}, &parent)
	if parent.CreateTask.Priority != 3 || parent.CreateTask.Status != "TODO" {
		t.Fatalf("defaults: %+v", parent)
	}
	for i := 1; i <= 4; i++ {
		s.MustDo(t, `mutation($p: ID!, $parent: ID!, $title: String!, $pr: Int!) { createTask(input: {ownerID: "00000000-0000-4000-8000-000000000001", workspaceID: "`+wid+`", projectID: $p, parentID: $parent, title: $title, priority: $pr, points: [1, 2]}) { id } }`,
			map[string]any{"p": p.CreateProject.ID, "parent": parent.CreateTask.ID, "title": fmt.Sprintf("sub %d", i), "pr": i}, nil)
	}
	r = s.Do(t, `mutation($p: ID!) { createTask(input: {ownerID: "00000000-0000-4000-8000-000000000001", workspaceID: "`+wid+`", projectID: $p, title: "x", priority: 9}) { id } }`, map[string]any{"p": p.CreateProject.ID})
	if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "priority" {
		t.Fatalf("range: %+v", r.Errors)
	}
	var tree struct {
		Task struct {
			Subtasks struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Title  string
						Parent struct{ Title string }
					}
				}
			}
			Tags     struct{ TotalCount int }
			Assignee struct{ Email string }
		}
	}
	s.MustDo(t, `query($id: ID!) { task(id: $id) { subtasks(first: 2, orderBy: [{field: PRIORITY, direction: DESC}]) { totalCount edges { node { title parent { title } } } } tags { totalCount } assignee { email } } }`,
		map[string]any{"id": parent.CreateTask.ID}, &tree)
	if tree.Task.Subtasks.TotalCount != 4 || len(tree.Task.Subtasks.Edges) != 2 || tree.Task.Subtasks.Edges[0].Node.Title != "sub 4" ||
		tree.Task.Subtasks.Edges[0].Node.Parent.Title != "Epic" || tree.Task.Tags.TotalCount != 1 || tree.Task.Assignee.Email != "a@acme.io" {
		t.Fatalf("self-reference and edges: %+v", tree)
	}
	var list struct{ Tasks struct{ TotalCount int } }
	s.MustDo(t, `{ tasks(where: {hasParentWith: [{title: "Epic"}], priorityGTE: 2}) { totalCount } }`, nil, &list)
	if list.Tasks.TotalCount != 3 {
		t.Fatalf("relation filter: %+v", list)
	}
	s.MustDo(t, `{ tasks(where: {hasTagsWith: [{name: "bug"}]}) { totalCount } }`, nil, &list)
	if list.Tasks.TotalCount != 1 {
		t.Fatalf("many-to-many filter: %+v", list)
	}
	// RESTRICT: a workspace with projects cannot be deleted, and stays.
	r = s.Do(t, `mutation($w: ID!) { deleteWorkspace(id: $w) }`, map[string]any{"w": wid})
	if len(r.Errors) == 0 {
		t.Fatal("RESTRICT delete succeeded")
	}
	// The refusal names the relation that blocks it, and why.
	if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "projects" || !strings.Contains(r.Errors[0].Message, "Project.workspace (onDelete: RESTRICT)") {
		t.Fatalf("RESTRICT refusal: %+v", r.Errors)
	}
	var still struct{ Workspace *struct{ Slug string } }
	s.MustDo(t, `query($w: ID!) { workspace(id: $w) { slug } }`, map[string]any{"w": wid}, &still)
	if still.Workspace == nil {
		t.Fatal("workspace gone after a refused delete")
	}
	// Update with version and SET_NULL on member delete.
	var up struct {
		UpdateTask struct {
			Version int
			Status  string
		}
	}
	s.MustDo(t, `mutation($id: ID!) { updateTask(id: $id, input: {status: DONE, version: 1, labels: ["a"]}) { version status } }`, map[string]any{"id": parent.CreateTask.ID}, &up)
	if up.UpdateTask.Version != 2 || up.UpdateTask.Status != "DONE" {
		t.Fatalf("update: %+v", up)
	}
	exerciseTaskFiles(t, s, parent.CreateTask.ID)
	s.MustDo(t, `mutation($id: ID!) { deleteMember(id: $id) }`, map[string]any{"id": m.CreateMember.ID}, nil)
	var after struct{ Task struct{ AssigneeID *string } }
	s.MustDo(t, `query($id: ID!) { task(id: $id) { assigneeID } }`, map[string]any{"id": parent.CreateTask.ID}, &after)
	if after.Task.AssigneeID != nil {
		t.Fatalf("SET_NULL: %+v", after)
	}
}

// exerciseTaskFiles uploads files for the tasks schema's File fields (a
// list without type limits, a PDF-only single field with its own rules)
// and reads them back.
func exerciseTaskFiles(t *testing.T, s *kilntest.Server, task string) {
	up := func(name, ct string, body []byte) string {
		var tk struct {
			CreateUpload struct {
				FileID, URL, Method string
				Headers             []struct{ Name, Value string }
			}
		}
		s.MustDo(t, `mutation($n: String!, $c: String!, $s: Int!) { createUpload(input: {filename: $n, contentType: $c, size: $s}) { fileId url method headers { name value } } }`,
			map[string]any{"n": name, "c": ct, "s": len(body)}, &tk)
		req, _ := http.NewRequest(tk.CreateUpload.Method, tk.CreateUpload.URL, bytes.NewReader(body))
		for _, h := range tk.CreateUpload.Headers {
			if h.Name != "Content-Length" {
				req.Header.Set(h.Name, h.Value)
			}
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode/100 != 2 {
			t.Fatalf("upload: %v %v", err, res)
		}
		res.Body.Close()
		s.MustDo(t, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.CreateUpload.FileID}, nil)
		return tk.CreateUpload.FileID
	}
	doc := up("notes.txt", "text/plain", []byte("some notes"))
	pdf := up("contract.pdf", "application/pdf", []byte("%PDF-1.4 fake"))
	r := s.Do(t, `mutation($id: ID!, $f: ID!) { updateTask(id: $id, input: {contractID: $f}) { id } }`, map[string]any{"id": task, "f": doc})
	if r.Code() != "VALIDATION" || r.Errors[0].Extensions["field"] != "contractID" {
		t.Fatalf("contract accepts PDF only: %+v", r.Errors)
	}
	var out struct {
		UpdateTask struct {
			Documents []struct{ ID, URL string }
			Contract  struct{ Filename string }
		}
	}
	s.MustDo(t, `mutation($id: ID!, $d: [ID!], $f: ID!) { updateTask(id: $id, input: {documentIDs: $d, contractID: $f}) { documents { id url } contract { filename } } }`,
		map[string]any{"id": task, "d": []string{pdf, doc}, "f": pdf}, &out)
	if d := out.UpdateTask.Documents; len(d) != 2 || d[0].ID != pdf || d[1].ID != doc || out.UpdateTask.Contract.Filename != "contract.pdf" {
		t.Fatalf("task files: %+v", out)
	}
	// A member of the workspace reads the task and its documents; the
	// contract's own rule (managers only) hides it from them.
	var su struct {
		SignUp struct {
			AccessToken string
			User        struct{ ID string }
		}
	}
	s.MustDoAs(t, "", `mutation { signUp(input: {email: "member@acme.io", password: "correct horse battery"}) { accessToken user { id } } }`, nil, &su)
	var ws struct{ Task struct{ WorkspaceID string } }
	s.MustDo(t, `query($id: ID!) { task(id: $id) { workspaceID } }`, map[string]any{"id": task}, &ws)
	s.MustDo(t, `mutation($u: ID!, $c: JSON!) { setClaims(userID: $u, claims: $c) }`, map[string]any{"u": su.SignUp.User.ID, "c": map[string]any{"workspaceId": ws.Task.WorkspaceID}}, nil)
	var in struct{ SignIn struct{ AccessToken string } }
	s.MustDoAs(t, "", `mutation { signIn(input: {email: "member@acme.io", password: "correct horse battery"}) { accessToken } }`, nil, &in)
	mr := s.DoAs(t, in.SignIn.AccessToken, `query($id: ID!) { task(id: $id) { documents { id } contract { url } } }`, map[string]any{"id": task})
	if !strings.Contains(string(mr.Data), `"documents":[{`) || !strings.Contains(string(mr.Data), `"contract":null`) || mr.Code() != "FORBIDDEN" {
		t.Fatalf("field rule on a File field: %s %+v", mr.Data, mr.Errors)
	}
	if r := s.DoAs(t, in.SignIn.AccessToken, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": pdf}); !strings.Contains(string(r.Data), pdf) {
		t.Fatalf("the PDF is also a readable document, so node(id) shows it: %s %+v", r.Data, r.Errors)
	}
	res, err := http.Get(out.UpdateTask.Documents[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "some notes" {
		t.Fatalf("download: %d %q", res.StatusCode, b)
	}
}
