package sdl

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/generator/internal/ir"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readDir(t *testing.T, dir string) []ir.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	var files []ir.File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, ir.File{Name: "schema/" + filepath.Base(p), Content: string(b)})
	}
	return files
}

// TestErrors checks the exact messages for every error case: all problems
// at once, each file:line:col, with suggestions.
func TestErrors(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/errors/*")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, err := Load(readDir(t, dir))
			if err == nil {
				t.Fatal("expected errors")
			}
			got := err.Error() + "\n"
			golden := filepath.Join(dir, "errors.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s (run go test -update to accept):\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, "schema/") || strings.Count(line, ":") < 3 {
					t.Errorf("not file:line:col: %q", line)
				}
			}
		})
	}
}

func TestExampleSchemaLoads(t *testing.T) {
	s, err := Load(readDir(t, "../../../schema"))
	if err != nil {
		t.Fatal(err)
	}
	p := s.Model("Profile")
	if p == nil || p.Edge("following").Inverse != "followers" || p.Edge("following").Owner == p.Edge("followers").Owner {
		t.Fatalf("many-to-many not paired: %+v", p)
	}
	post := s.Model("Post")
	if post.Field("authorID") == nil || post.Edge("author").Inverse != "posts" || !post.Field("authorID").Readonly {
		t.Fatalf("belongsTo not built: %+v", post.Fields)
	}
	if set := s.Model("Settings"); !set.Edge("profile").Unique || set.Table != "profile_settings" {
		t.Fatalf("hasOne not unique or table not set")
	}
	if like := s.Model("Like"); len(like.Uniques) != 1 || strings.Join(like.Uniques[0], ",") != "profileID,postID" {
		t.Fatalf("composite unique: %v", like.Uniques)
	}
}
