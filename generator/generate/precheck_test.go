package generate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/generator/internal/sdl"
)

// TestOwnFilesChecked: a developer who replaces the example's models keeps
// schema/custom.graphql and schema/operations that name the old ones. The
// run stops before ent's and gqlgen's code generation, with every error at
// its place in the developer's own files (it used to fail in gqlgen at
// graph/ext_custom.graphql, a generated copy, one error at a time).
func TestOwnFilesChecked(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the ent schema of a temp module; skipped with -short")
	}
	dir := skeleton(t)
	copySchema(t, "../testdata/tasks/schema", filepath.Join(dir, "schema"))
	custom := `# Hand-written API.

extend type Query {
  "Public posts with the highest score."
  trendingPosts(limit: Int = 10): [Post!]!
  busiest: Project
}

type Stats {
  owner: Profile
  tasks: Int!
}
`
	ops := `query Feed($first: Int = 20) {
  posts(first: $first) { edges { node { id } } }
}

query Projects {
  projects(first: 5) { edges { node { id nam } } }
}
`
	os.WriteFile(filepath.Join(dir, "schema", "custom.graphql"), []byte(custom), 0o644)
	os.WriteFile(filepath.Join(dir, "schema", sdl.DirectivesFile), []byte(sdl.Directives), 0o644) // as a previous run leaves it
	os.MkdirAll(filepath.Join(dir, "schema", "operations"), 0o755)
	os.WriteFile(filepath.Join(dir, "schema", "operations", "feed.graphql"), []byte(ops), 0o644)
	out, err := generateOut(t, dir, nil)
	if err == nil {
		t.Fatal("generate accepted operations and SDL naming types that do not exist")
	}
	msg := err.Error()
	for _, want := range []string{
		"schema/custom.graphql:5:36: Undefined type Post.",
		"schema/custom.graphql:10:10: Undefined type Profile.",
		`schema/operations/feed.graphql:2:3: Cannot query field "posts" on type "Query".`,
		`schema/operations/feed.graphql:6:42: Cannot query field "nam" on type "Project".`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "graph/ext_") {
		t.Errorf("an error points at a generated copy:\n%s", msg)
	}
	if strings.Contains(out, "ent + entgql generated") || strings.Contains(out, "gqlgen generated") {
		t.Errorf("ent or gqlgen ran before the errors were reported:\n%s", out)
	}
}

// TestBuiltinTypeNames: a model, an enum or another type named like a type
// of Kiln's own API (files, accounts, jobs) is refused at its place in the
// developer's file, every one at once, before ent and gqlgen run; Kiln's
// own generated schema is never blamed.
func TestBuiltinTypeNames(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the ent schema of a temp module; skipped with -short")
	}
	dir := skeleton(t)
	copySchema(t, "../testdata/tasks/schema", filepath.Join(dir, "schema"))
	clash := `enum ImageFormat {
  PNG
  JPEG
}

type ImageTransform @model @auth(rules: [{ allow: owner }]) {
  format: ImageFormat
}

input IdTokenInput {
  token: String!
}
`
	os.WriteFile(filepath.Join(dir, "schema", "clash.graphql"), []byte(clash), 0o644)
	out, err := generateOut(t, dir, nil)
	if err == nil {
		t.Fatal("generate accepted types named like Kiln's own")
	}
	msg := err.Error()
	for _, want := range []string{
		"schema/clash.graphql:1:6: type name ImageFormat is reserved: Kiln's API defines it (graph/files.graphql); rename the type",
		"schema/clash.graphql:6:6: type name ImageTransform is reserved",
		"schema/clash.graphql:10:7: type name IdTokenInput is reserved: Kiln's API defines it (graph/auth.graphql)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "a Kiln bug") || strings.Contains(out, "gqlgen generated") {
		t.Errorf("blamed Kiln's schema, or gqlgen ran:\n%s\n%s", msg, out)
	}
}
