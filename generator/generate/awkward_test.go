package generate

import (
	"os"
	"path/filepath"
	"testing"

	"kiln/generator/internal/ir"
	"kiln/generator/internal/sdl"
	"kiln/server/kilntest"
)

// TestAwkwardSchema: the Swift emitter's schema of Swift keywords and
// Foundation type names (an enum named Type, a model named URL, fields named
// default, in, self, where) also generates Go that compiles and serves: one
// record per model on SQLite.
func TestAwkwardSchema(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds an app; skipped with -short (run it without -short)")
	}
	const name = "schema/app.graphql"
	b, err := os.ReadFile("../internal/emit/swift/testdata/awkward/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	dir := skeleton(t)
	if err := os.MkdirAll(filepath.Join(dir, "schema"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := generateIn(t, dir, nil); err != nil {
		t.Fatal(err)
	}
	bin := kilntest.BuildT(t, dir)
	s, err := sdl.Load([]ir.File{{Name: name, Content: string(b)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET=awkward-admin-secret-123")
	for _, m := range s.Models {
		createOne(t, srv, s, m)
	}
}
