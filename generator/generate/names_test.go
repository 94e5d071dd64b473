package generate

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"kiln/generator/internal/ir"
)

// TestGeneratedImports: every package the example app's generated code
// imports (other than the models' own ent packages) is in
// ir.GeneratedImports, so the schema checker refuses a model whose package
// would clash with it.
func TestGeneratedImports(t *testing.T) {
	root := repoRoot(t)
	s := loadDir(t, filepath.Join(root, "schema"))
	own := map[string]bool{}
	for _, m := range s.Models {
		for _, p := range m.Packages() {
			own[p] = true
		}
	}
	for _, dir := range []string{"ent", "graph", "migrations"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if d != nil && d.IsDir() && d.Name() == "schema" && filepath.Base(filepath.Dir(p)) == "ent" {
				return filepath.SkipDir // imports no model package
			}
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range f.Imports {
				pth, _ := strconv.Unquote(im.Path.Value)
				name := path.Base(pth)
				switch {
				case im.Name != nil:
					name = im.Name.Name
				case strings.HasPrefix(name, "v") && strings.Count(pth, "/") > 1:
					name = path.Base(path.Dir(pth)) // a major version suffix
				}
				name = strings.TrimPrefix(name, "go-")
				if name == "_" || own[name] && strings.HasPrefix(pth, "kiln/ent/") || slices.Contains(ir.EntPackages, name) {
					continue
				}
				if !slices.Contains(ir.GeneratedImports, name) {
					t.Errorf("%s imports %s (%s), which is not in ir.GeneratedImports", p, name, pth)
				}
			}
			return nil
		})
	}
}
