package swift

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
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

// TestCompiles compiles the package the emitter writes, with the Swift
// compiler, for the example schema (with its custom operations), the
// second golden schema (tasks) and a schema whose models, enums, fields,
// values, variables and result keys are Swift keywords and standard type
// names (testdata/awkward): Swift 6 language mode must give no error,
// Swift 5 mode no warning, and the README's examples must type-check
// against the module. Without a Swift compiler it skips, unless
// KILN_REQUIRE_SWIFT=1 (see findSwiftc).
func TestCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Swift compiler; skipped with -short")
	}
	swiftc := findSwiftc(t)
	root := repoRoot(t)
	cases := []struct {
		name string
		api  func(t *testing.T) *clientapi.API
	}{
		{"example", func(t *testing.T) *clientapi.API {
			return clientapi.Build(load(t, filepath.Join(root, "schema")), exampleOperations(t, root))
		}},
		{"tasks", func(t *testing.T) *clientapi.API {
			return clientapi.Build(load(t, filepath.Join(root, "generator", "testdata", "tasks", "schema")), nil)
		}},
		{"awkward", func(t *testing.T) *clientapi.API {
			return clientapi.Build(load(t, filepath.Join("testdata", "awkward")), awkwardOperations())
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := c.api(t)
			files, err := write.Prepare(Files(api))
			if err != nil {
				t.Fatal(err)
			}
			compile(t, swiftc, files)
		})
	}
}

// TestAwkwardNames checks the names the emitter picks for the awkward
// schema, which TestCompiles proves compile.
func TestAwkwardNames(t *testing.T) {
	api := clientapi.Build(load(t, filepath.Join("testdata", "awkward")), awkwardOperations())
	src := map[string]string{}
	for _, f := range Files(api) {
		src[filepath.Base(f.Path)] = string(f.Content)
	}
	for file, want := range map[string][]string{
		"Enums.swift":      {"public enum TypeEnum: String", "public enum ErrorEnum: String", "case `default` = \"DEFAULT\"", "case `self` = \"SELF\""},
		"Protocol.swift":   {"public struct ProtocolRecord: Codable", "public let `self`: String?", "public let type: TypeEnum?", "public var toJSON_: String?", "`self` self_: String? = nil", "if let v = self.toJSON_ { o[\"toJSON\"]", "public struct ProtocolWhereInput: Sendable"},
		"Data.swift":       {"public struct DataRecord: Codable"},
		"URL.swift":        {"public struct URLRecord: Codable"},
		"Self.swift":       {"public struct SelfRecord: Codable"},
		"PageRecord.swift": {"public struct PageRecord: Codable"},
		"Page.swift":       {"public struct Page<Item"},
		"KilnClient.swift": {"public let operationRecords: OperationAPI", "public let protocols: ProtocolAPI"},
		"Operations.swift": {"public func `default`(`self` self_: String, variables variables_: Int? = nil", "public let data: DataObject?", "public struct DataObject:"},
	} {
		for _, w := range want {
			if !strings.Contains(src[file], w) {
				t.Errorf("%s lacks %q", file, w)
			}
		}
	}
}

// TestUncheckedSendable lists the types whose Sendable conformance the
// compiler cannot check: each must keep its mutable state behind a lock
// (or have none), and a new one must be reviewed and added here.
func TestUncheckedSendable(t *testing.T) {
	api := clientapi.Build(load(t, filepath.Join("testdata", "awkward")), awkwardOperations())
	re := regexp.MustCompile(`(?m)^(?:public )?final class (\w+)\b[^{]*@unchecked Sendable`)
	var got []string
	for _, f := range Files(api) {
		for _, m := range re.FindAllStringSubmatch(string(f.Content), -1) {
			got = append(got, m[1])
		}
	}
	sort.Strings(got)
	want := []string{"FileSessionStore", "InMemorySessionStore", "KilnConnectionStatus", "KilnProgressDelegate", "KilnTransport"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("@unchecked Sendable types: %v, want %v (review a new one: its mutable state must be behind a lock)", got, want)
	}
}

// awkwardOperations are custom operations with awkward names: a function
// named default, variables named self, variables, v and data, result keys
// that are keywords or standard names.
func awkwardOperations() []*clientapi.Operation {
	scalar := func(name string, nonNull bool) *clientapi.TypeRef {
		return &clientapi.TypeRef{Named: name, NonNull: nonNull, Class: "scalar"}
	}
	object := func(nonNull bool) *clientapi.TypeRef {
		return &clientapi.TypeRef{Named: "Protocol", NonNull: nonNull, Class: "object"}
	}
	return []*clientapi.Operation{{
		Name: "Default", Kind: "query", Text: "query Default { __typename }", Hash: strings.Repeat("0", 64),
		Variables: []clientapi.Variable{
			{Name: "self", Type: scalar("String", true)},
			{Name: "variables", Type: scalar("Int", false)},
			{Name: "v", Type: &clientapi.TypeRef{Elem: &clientapi.TypeRef{Named: "Type", NonNull: true, Class: "enum"}}},
			{Name: "data", Type: scalar("ID", true), HasDefault: true},
			{Name: "where", Type: &clientapi.TypeRef{Named: "ProtocolWhereInput", Class: "input"}},
		},
		Result: []*clientapi.Selection{
			{Key: "data", Type: object(false), Children: []*clientapi.Selection{
				{Key: "self", Type: scalar("String", true)},
				{Key: "Type", Type: &clientapi.TypeRef{Named: "Type", NonNull: true, Class: "enum"}},
				{Key: "date", Type: scalar("Time", false)},
				{Key: "url", Type: object(true), Children: []*clientapi.Selection{{Key: "string", Type: scalar("String", true)}}},
			}},
			{Key: "Data", Type: &clientapi.TypeRef{Elem: object(true), NonNull: true}, Children: []*clientapi.Selection{{Key: "protocol", Type: scalar("String", true)}}},
			{Key: "error", Type: &clientapi.TypeRef{Named: "Error", Class: "enum"}},
			{Key: "hashValue", Type: scalar("Int", true)},
		},
	}, {
		Name: "Transport", Kind: "subscription", Text: "subscription Transport { __typename }", Hash: strings.Repeat("1", 64),
		Variables: []clientapi.Variable{{Name: "in", Type: scalar("Boolean", false)}},
		Result:    []*clientapi.Selection{{Key: "protocolCreated", Type: object(true), Children: []*clientapi.Selection{{Key: "id", Type: scalar("ID", true)}}}},
	}}
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
	if len(ops) == 0 {
		t.Fatal("no operations in schema/operations")
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

// findSwiftc returns the Swift compiler: $KILN_SWIFTC, else swiftc on PATH,
// else the project's (../shared/tools/swift/swiftc beside the repository,
// which unpacks a toolchain into ~/.cache once). Without one the test
// skips, unless KILN_REQUIRE_SWIFT=1 (CI), when it fails.
func findSwiftc(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("KILN_SWIFTC")}
	if p, err := exec.LookPath("swiftc"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, filepath.Join(repoRoot(t), "..", "shared", "tools", "swift", "swiftc"))
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	msg := "no Swift compiler: set KILN_SWIFTC, put swiftc on PATH, or provide ../shared/tools/swift/swiftc beside the repository"
	if os.Getenv("KILN_REQUIRE_SWIFT") == "1" {
		t.Fatal("KILN_REQUIRE_SWIFT=1 but " + msg)
	}
	t.Skip(msg + " (set KILN_REQUIRE_SWIFT=1 to fail instead)")
	return ""
}

// compile writes the package's sources to a temporary directory and
// compiles them: Swift 6 library and module (errors fail), Swift 5
// type-check with warnings as errors, and the README's examples against
// the module. A success is remembered in ~/.cache/kiln/swift-emit under
// the hash of the compiler, the flags and every source, so an unchanged
// package is not compiled again.
func compile(t *testing.T, swiftc string, files []write.File) {
	t.Helper()
	dir := t.TempDir()
	var sources []string
	var readme string
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00", compilerID(t, swiftc))
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		switch {
		case strings.HasPrefix(f.Path, SourceDir) && strings.HasSuffix(f.Path, ".swift"):
			p := filepath.Join(dir, "Sources", filepath.Base(f.Path))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, f.Content, 0o644); err != nil {
				t.Fatal(err)
			}
			sources = append(sources, p)
		case f.Path == Dir+"/README.md":
			readme = readmeProgram(t, string(f.Content))
		default:
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f.Path, len(f.Content))
		h.Write(f.Content)
	}
	if len(sources) < 5 || readme == "" {
		t.Fatalf("the package has %d sources and README examples %q", len(sources), readme)
	}
	key := hex.EncodeToString(h.Sum(nil))[:24]
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	stamp := filepath.Join(cache, "kiln", "swift-emit", key+".ok")
	if _, err := os.Stat(stamp); err == nil {
		t.Logf("compiled before (%s): not compiled again", stamp)
		return
	}
	readmeFile := filepath.Join(dir, "ReadmeExamples.swift")
	if err := os.WriteFile(readmeFile, []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	build := filepath.Join(dir, "build")
	os.MkdirAll(build, 0o755)
	start := time.Now()
	run(t, true, swiftc, append([]string{"-emit-library", "-emit-module", "-module-name", "Kiln", "-swift-version", "6",
		"-emit-module-path", filepath.Join(build, "Kiln.swiftmodule"), "-o", filepath.Join(build, "libKiln.so")}, sources...)...)
	run(t, true, swiftc, append([]string{"-typecheck", "-swift-version", "5", "-warnings-as-errors", "-module-name", "Kiln"}, sources...)...)
	run(t, false, swiftc, "-typecheck", "-swift-version", "6", "-I", build, readmeFile) // snippets: unused values are fine
	t.Logf("compiled %d sources and the README's examples in %s", len(sources), time.Since(start).Round(time.Millisecond))
	os.MkdirAll(filepath.Dir(stamp), 0o755)
	os.WriteFile(stamp, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// readmeProgram is the README's Swift examples, inside a function.
func readmeProgram(t *testing.T, readme string) string {
	t.Helper()
	_, text, ok := strings.Cut(readme, "## Configure")
	if !ok {
		t.Fatal("the README has no Configure section")
	}
	var body strings.Builder
	n := 0
	for _, part := range strings.Split(text, "```swift\n")[1:] {
		code, _, _ := strings.Cut(part, "```")
		for _, line := range strings.Split(code, "\n") {
			if line != "" && !strings.HasPrefix(line, "import ") {
				body.WriteString("    " + line + "\n")
			}
		}
		n++
	}
	if n < 4 {
		t.Fatalf("the README has only %d Swift examples", n)
	}
	return "import Foundation\n#if canImport(FoundationNetworking)\nimport FoundationNetworking\n#endif\nimport Kiln\n\n// The README's examples, type-checked (never run).\nfunc readmeExamples(photoURL: URL) async throws {\n" + body.String() + "}\n"
}

// compilerID tells compilers apart in cache keys: its path and version.
func compilerID(t *testing.T, swiftc string) string {
	t.Helper()
	out, err := exec.Command(swiftc, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -version: %v\n%s", swiftc, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, "libSwiftScan") && strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return swiftc + "\n" + strings.Join(lines, "\n")
}

// run runs the compiler and fails on an error or, when strict, any
// diagnostic but the toolchain's harmless libSwiftScan note.
func run(t *testing.T, strict bool, swiftc string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, swiftc, args...).CombinedOutput()
	var diags []string
	for _, l := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		if l != "" && !strings.Contains(l, "Unable to locate libSwiftScan") {
			diags = append(diags, l)
		}
	}
	if err != nil || (strict && len(diags) > 0) {
		t.Fatalf("swiftc %s: %v\n%s", strings.Join(args[:min(len(args), 6)], " "), err, strings.Join(diags, "\n"))
	}
}
