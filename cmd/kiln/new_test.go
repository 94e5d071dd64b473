package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestNewApp creates an app with another module path in a temp directory,
// as a new user would (pointing at this working tree), then builds it,
// runs its own tests, serves it, signs up and creates a record over HTTP.
func TestNewApp(t *testing.T) {
	if testing.Short() {
		t.Skip("creates, builds and serves an app; skipped with -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "notes")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"new", dir, "-module", "example.com/notes", "-kiln", root}, &out, &errOut); code != 0 {
		t.Fatalf("kiln new: exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, f := range []string{"go.mod", "main.go", "Makefile", "README.md", "schema/app.graphql", "graph/app.go", "graph/note.resolvers.go",
		"ent/note.go", "migrations/embed.go", "clients/swift/Package.swift", "clients/kotlin/pom.xml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the new app has no %s", f)
		}
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "module example.com/notes") || !strings.Contains(string(gomod), "replace kiln => "+root) {
		t.Fatalf("go.mod:\n%s", gomod)
	}
	// Its generated code imports Kiln as a dependency, not a copy.
	appGo, _ := os.ReadFile(filepath.Join(dir, "graph", "app.go"))
	if !strings.Contains(string(appGo), `"kiln/runtime/app"`) || !strings.Contains(string(appGo), `"example.com/notes/ent"`) {
		t.Fatalf("graph/app.go does not import Kiln's runtime and the app's ent:\n%s", appGo)
	}
	// Its own tests (the generated authorization matrix) pass.
	test := exec.Command("go", "test", "./...")
	test.Dir = dir
	if b, err := test.CombinedOutput(); err != nil {
		t.Fatalf("go test in the new app: %v\n%s", err, b)
	}
	bin := kilntest.BuildT(t, dir)
	s := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir())
	var up struct{ SignUp struct{ AccessToken string } }
	s.MustDoAs(t, "", `mutation { signUp(input: {email: "ada@example.com", password: "correct horse battery"}) { accessToken } }`, nil, &up)
	var note struct{ CreateNote struct{ ID, Title string } }
	s.MustDoAs(t, up.SignUp.AccessToken, `mutation { createNote(input: {title: "hello"}) { id title } }`, nil, &note)
	if note.CreateNote.Title != "hello" || note.CreateNote.ID == "" {
		t.Fatalf("createNote: %+v", note)
	}
	var list struct{ Notes struct{ TotalCount int } }
	s.MustDoAs(t, up.SignUp.AccessToken, `{ notes { totalCount } }`, nil, &list)
	if list.Notes.TotalCount != 1 {
		t.Fatalf("notes: %+v", list)
	}
	// Rules apply: a visitor cannot read the note.
	s.MustDoAs(t, "", `{ notes { totalCount } }`, nil, &list)
	if list.Notes.TotalCount != 0 {
		t.Fatalf("a visitor sees %d notes", list.Notes.TotalCount)
	}
}

func TestNewAppErrors(t *testing.T) {
	for _, args := range [][]string{
		{"new"},
		{"new", t.TempDir()},
		{"new", t.TempDir(), "-module", "kiln/x"},
		{"new", t.TempDir(), "-module", "Not A Path"},
		{"bogus"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code == 0 || errOut.Len() == 0 {
			t.Errorf("kiln %v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}
