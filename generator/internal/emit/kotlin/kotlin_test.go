package kotlin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/ir"
	"kiln/generator/internal/sdl"
	"kiln/generator/internal/write"
)

// TestOwnTestsIgnoreTheSchema checks the SDK's own tests (src/test, emitted
// with it) name no model, input or operation of the app: they test the
// runtime with types of their own, so a schema change cannot break them.
func TestOwnTestsIgnoreTheSchema(t *testing.T) {
	root := repoRoot(t)
	api := clientapi.Build(load(t, filepath.Join(root, "schema")), nil)
	var names []string
	for _, m := range api.Models {
		names = append(names, m.Name, "Create"+m.Name+"Input", "Update"+m.Name+"Input", m.Name+"Api", m.Name+"WhereInput")
	}
	for _, e := range api.Enums {
		names = append(names, e.Name)
	}
	word := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	n := 0
	for _, f := range Files(api) {
		if !strings.HasPrefix(f.Path, TestDir) {
			continue
		}
		n++
		if m := word.FindString(string(f.Content)); m != "" {
			t.Errorf("%s names the app's %s", f.Path, m)
		}
	}
	if n < 2 {
		t.Fatalf("only %d test sources emitted", n)
	}
}

// TestSDKTestsPassWhenTheSchemaGrows is the check of issue #20: the example
// schema, copied to a temporary directory with a required field added to
// Post (subtitle: String!), generates a Kotlin SDK whose own tests pass
// (they once decoded a fixed Post and failed). Maven runs the whole
// lifecycle up to deploy, to a repository in a temporary directory (the
// README's publishing instructions), without installing into ~/.m2. Without
// mvn or java it skips, unless KILN_REQUIRE_KOTLIN=1.
func TestSDKTestsPassWhenTheSchemaGrows(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Maven; skipped with -short")
	}
	requireMaven(t)
	root := repoRoot(t)

	// The example's schema, with a required field more.
	schemaDir := filepath.Join(t.TempDir(), "schema")
	if err := os.MkdirAll(schemaDir, 0o755); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(root, "schema", "*.graphql"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) == "app.graphql" {
			b = []byte(addField(t, string(b), "Post", "  subtitle: String!\n"))
		}
		if err := os.WriteFile(filepath.Join(schemaDir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The custom operations as typed against the example's generated schema
	// (an app would also add the field to its Publish mutation).
	api := clientapi.Build(load(t, schemaDir), exampleOperations(t, root))
	files, err := write.Prepare(Files(api))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, f := range files {
		if f.Path == pkgDir+"Post.kt" && !strings.Contains(string(f.Content), "val subtitle: String,") {
			t.Fatal("the generated Post has no required subtitle")
		}
		p := filepath.Join(out, filepath.FromSlash(f.Path))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(out, filepath.FromSlash(Dir))
	repo := filepath.Join(t.TempDir(), "repository")
	start := time.Now()
	cmd := exec.Command("mvn", "-B", "-q", "-Dstyle.color=never", "-Dmaven.install.skip=true", "-Dkiln.sdk.repository="+fileURL(repo), "deploy")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mvn deploy of the SDK with Post.subtitle: %v\n%s", err, b)
	}
	t.Logf("mvn deploy took %s", time.Since(start).Round(time.Millisecond))

	ran := 0
	reports, _ := filepath.Glob(filepath.Join(dir, "target", "surefire-reports", "TEST-*.xml"))
	for _, p := range reports {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var suite struct {
			Tests    int `xml:"tests,attr"`
			Skipped  int `xml:"skipped,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
		}
		if err := xml.Unmarshal(b, &suite); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if suite.Skipped+suite.Failures+suite.Errors > 0 {
			t.Errorf("%s: %d skipped, %d failed, %d errors", filepath.Base(p), suite.Skipped, suite.Failures, suite.Errors)
		}
		ran += suite.Tests
	}
	if ran < 5 {
		t.Fatalf("only %d of the SDK's tests ran (reports %v)", ran, reports)
	}
	for _, f := range []string{"kiln-sdk-0.1.0.jar", "kiln-sdk-0.1.0.pom"} {
		if _, err := os.Stat(filepath.Join(repo, "io", "kiln", "kiln-sdk", "0.1.0", f)); err != nil {
			t.Errorf("mvn deploy published no %s: %v", f, err)
		}
	}
	t.Logf("%d SDK tests passed with Post.subtitle: String! added; published to %s", ran, repo)
}

// addField adds a field line to the body of type typ in an SDL text.
func addField(t *testing.T, sdlText, typ, field string) string {
	t.Helper()
	i := strings.Index(sdlText, "\ntype "+typ+" ")
	if i < 0 {
		t.Fatalf("no type %s in the schema", typ)
	}
	j := strings.Index(sdlText[i:], "{\n")
	if j < 0 {
		t.Fatalf("type %s has no body", typ)
	}
	at := i + j + 2
	return sdlText[:at] + field + sdlText[at:]
}

// fileURL is the file: URL of an absolute path.
func fileURL(p string) string {
	p = filepath.ToSlash(p)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return "file://" + p
}

// requireMaven skips without mvn and java, unless KILN_REQUIRE_KOTLIN=1
// (as clients/kotlin_test.go does).
func requireMaven(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mvn", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("KILN_REQUIRE_KOTLIN") == "1" {
				t.Fatalf("KILN_REQUIRE_KOTLIN=1 but %s is not on PATH: %v", tool, err)
			}
			t.Skipf("%s not found (%v): the Kotlin SDK's tests are not run; install a JDK 17+ and Maven, or set KILN_REQUIRE_KOTLIN=1 to make this fail", tool, err)
		}
	}
}

// exampleOperations are the example's custom operations (schema/operations),
// typed against the generated schema (graph/*.graphql), as the generator
// types them.
func exampleOperations(t *testing.T, root string) []*clientapi.Operation {
	t.Helper()
	var srcs []*ast.Source
	graphs, _ := filepath.Glob(filepath.Join(root, "graph", "*.graphql"))
	for _, p := range graphs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, &ast.Source{Name: filepath.Base(p), Input: string(b)})
	}
	schema, gerr := gqlparser.LoadSchema(srcs...)
	if gerr != nil {
		t.Fatalf("load graph/*.graphql: %v", gerr)
	}
	paths, _ := filepath.Glob(filepath.Join(root, "schema", "operations", "*.graphql"))
	var ops []*clientapi.Operation
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		doc, perr := parser.ParseQuery(&ast.Source{Name: p, Input: string(b)})
		if perr != nil {
			t.Fatal(perr)
		}
		if errs := validator.Validate(schema, doc); len(errs) > 0 {
			t.Fatalf("%s: %v", p, errs)
		}
		for _, op := range doc.Operations {
			sum := sha256.Sum256(b)
			ops = append(ops, clientapi.Resolve(schema, doc, op, string(b), hex.EncodeToString(sum[:])))
		}
	}
	return ops
}

func load(t *testing.T, dir string) *ir.Schema {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.graphql"))
	var files []ir.File
	for _, p := range paths {
		if filepath.Base(p) == sdl.DirectivesFile {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, ir.File{Name: filepath.Base(dir) + "/" + filepath.Base(p), Content: string(b)})
	}
	s, err := sdl.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}
