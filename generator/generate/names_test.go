package generate

import (
	"go/ast"
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

// TestKilnEntities: ir.KilnEntities (names and packages no model may take)
// lists exactly the ent types of Kiln's own tables in runtime/store/schema.
func TestKilnEntities(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "runtime", "store", "schema", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("store schema files: %v", err)
	}
	var got []string
	for _, p := range files {
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, sp := range g.Specs {
				ts := sp.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fl := range st.Fields.List {
					if sel, ok := fl.Type.(*ast.SelectorExpr); ok && len(fl.Names) == 0 && sel.Sel.Name == "Schema" {
						got = append(got, ts.Name.Name)
					}
				}
			}
		}
	}
	want := slices.Clone(ir.KilnEntities)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("runtime/store/schema defines %v; ir.KilnEntities lists %v", got, want)
	}
}
