package sdl

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kiln/generator/internal/ir"
)

// Names of the files FuzzLoad builds from its input.
const (
	fuzzFileA = "schema/a.graphql"
	fuzzFileB = "schema/b.graphql"
)

// fuzzFiles turns one fuzz input into one or two schema files: the input is
// split at its first NUL byte (a NUL is not valid GraphQL, so nothing is lost).
func fuzzFiles(in string) []ir.File {
	a, b, two := strings.Cut(in, "\x00")
	files := []ir.File{{Name: fuzzFileA, Content: a}}
	if two {
		files = append(files, ir.File{Name: fuzzFileB, Content: b})
	}
	return files
}

// addDirSeeds adds one seed per directory (its *.graphql files joined by NUL,
// in name order) and fails if a directory has none, so seeds cannot vanish
// silently when files move.
func addDirSeeds(f *testing.F, dirs ...string) {
	f.Helper()
	for _, dir := range dirs {
		paths, err := filepath.Glob(filepath.Join(dir, "*.graphql"))
		if err != nil {
			f.Fatal(err)
		}
		var parts []string
		for _, p := range paths {
			if filepath.Base(p) == DirectivesFile {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			parts = append(parts, string(b))
		}
		if len(parts) == 0 {
			f.Fatalf("no seed schema in %s", dir)
		}
		// Load takes at most two files from one input; join any rest into
		// the second.
		seed := parts[0]
		if len(parts) > 1 {
			seed += "\x00" + strings.Join(parts[1:], "\n")
		}
		f.Add(seed)
	}
}

// FuzzLoad checks invariants of Load on arbitrary input. Besides the seeds
// added here from the repository's schemas, hand-written seeds and
// regression inputs live in testdata/fuzz/FuzzLoad.
//
//	go test ./generator/internal/sdl/ -run '^$' -fuzz FuzzLoad -fuzztime 20s
func FuzzLoad(f *testing.F) {
	errDirs, err := filepath.Glob("testdata/errors/*")
	if err != nil || len(errDirs) == 0 {
		f.Fatalf("no error seeds: %v", err)
	}
	addDirSeeds(f, append([]string{"../../../schema", "../../testdata/tasks/schema"}, errDirs...)...)
	// The example schema alone, without the pass-through custom.graphql.
	if b, err := os.ReadFile("../../../schema/app.graphql"); err == nil {
		f.Add(string(b))
	} else {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, in string) {
		files := fuzzFiles(in)
		s1, err1 := Load(files)
		checkLoadResult(t, files, s1, err1)

		s2, err2 := Load(fuzzFiles(in))
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Load is not deterministic: first err=%v, second err=%v", err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("Load is not deterministic:\nfirst:\n%v\nsecond:\n%v", err1, err2)
			}
			return
		}
		if sum1, sum2 := schemaSummary(s1), schemaSummary(s2); sum1 != sum2 {
			t.Fatalf("Load is not deterministic:\nfirst:\n%s\nsecond:\n%s", sum1, sum2)
		}
		if !reflect.DeepEqual(s1, s2) {
			t.Fatalf("Load is not deterministic: schemas differ beyond the summary:\n%s", schemaSummary(s1))
		}
	})
}

func checkLoadResult(t *testing.T, files []ir.File, s *ir.Schema, err error) {
	t.Helper()
	if err != nil {
		if s != nil {
			t.Fatalf("Load returned both a schema and an error: %v", err)
		}
		errs, ok := err.(Errors)
		if !ok {
			t.Fatalf("Load returned %T, want sdl.Errors: %v", err, err)
		}
		if len(errs) == 0 {
			t.Fatal("Load returned an empty sdl.Errors")
		}
		names := map[string]bool{}
		for _, f := range files {
			names[f.Name] = true
		}
		for i, e := range errs {
			if e == nil {
				t.Fatalf("error %d is nil", i)
			}
			if !names[e.File] {
				t.Errorf("error %d has file %q, not an input file: %q", i, e.File, e.Error())
			}
			if e.Line < 1 || e.Col < 1 {
				t.Errorf("error %d has position %d:%d: %q", i, e.Line, e.Col, e.Error())
			}
			if e.Msg == "" {
				t.Errorf("error %d has an empty message: %q", i, e.Error())
			}
			if strings.ContainsAny(e.Msg, "\r\n") {
				t.Errorf("error %d message spans lines: %q", i, e.Msg)
			}
			if i > 0 {
				p := errs[i-1]
				if p.File > e.File || p.File == e.File && (p.Line > e.Line || p.Line == e.Line && p.Col > e.Col) {
					t.Errorf("errors not sorted: %q before %q", p.Error(), e.Error())
				}
			}
		}
		return
	}
	if s == nil {
		t.Fatal("Load returned neither a schema nor an error")
	}
	models := map[string]*ir.Model{}
	for _, m := range s.Models {
		if m == nil {
			t.Fatal("nil model")
		}
		if models[m.Name] != nil {
			t.Errorf("duplicate model %s", m.Name)
		}
		models[m.Name] = m
		if m.Table == "" {
			t.Errorf("model %s has no table", m.Name)
		}
		// Fields and edges become fields of one GraphQL type and one ent
		// schema, so their names must not clash.
		seen := map[string]bool{}
		for _, f := range m.Fields {
			if seen[f.Name] {
				t.Errorf("model %s has two fields named %s", m.Name, f.Name)
			}
			seen[f.Name] = true
		}
		for _, e := range m.Edges {
			if seen[e.Name] {
				t.Errorf("model %s has an edge and another field or edge named %s", m.Name, e.Name)
			}
			seen[e.Name] = true
		}
	}
	for _, m := range s.Models {
		for _, e := range m.Edges {
			if e.Inverse == "" {
				t.Errorf("edge %s.%s has no inverse", m.Name, e.Name)
			}
			target := models[e.Target]
			if target == nil {
				t.Errorf("edge %s.%s targets unknown model %s", m.Name, e.Name, e.Target)
				continue
			}
			if inv := target.Edge(e.Inverse); inv == nil || inv.Inverse != e.Name || inv.Target != m.Name {
				t.Errorf("edge %s.%s: inverse %s.%s does not point back", m.Name, e.Name, e.Target, e.Inverse)
			}
			if e.Relation == ir.BelongsTo && (e.FK == nil || m.Field(e.FK.Name) != e.FK) {
				t.Errorf("belongsTo edge %s.%s has no foreign-key field", m.Name, e.Name)
			}
		}
	}
}

// schemaSummary is a stable, readable digest of a schema: model, field and
// edge names with their main properties.
func schemaSummary(s *ir.Schema) string {
	var b strings.Builder
	for _, m := range s.Models {
		fmt.Fprintf(&b, "model %s table=%s rules=%d realtime=%v uniques=%v indexes=%v\n", m.Name, m.Table, len(m.Rules), m.Realtime, m.Uniques, m.Indexes)
		for _, f := range m.Fields {
			fmt.Fprintf(&b, "  field %s %s%s list=%v null=%v owner=%v\n", f.Name, f.Kind, f.Enum, f.List, f.Nullable, f.Owner)
		}
		for _, e := range m.Edges {
			fmt.Fprintf(&b, "  edge %s %s %s inverse=%s owner=%v\n", e.Name, e.Relation, e.Target, e.Inverse, e.Owner)
		}
	}
	for _, e := range s.Enums {
		fmt.Fprintf(&b, "enum %s %v\n", e.Name, e.Values)
	}
	for _, x := range s.Extensions {
		fmt.Fprintf(&b, "extension %s (%d bytes)\n", x.Name, len(x.Content))
	}
	return b.String()
}
