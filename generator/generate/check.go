package generate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"kiln/generator/internal/sdl"
	"kiln/generator/internal/write"
)

// CheckResult is what Check found.
type CheckResult struct {
	// Models and Enums count what the schema declares.
	Models, Enums int
	// Stale lists the generated files (relative to the root) that differ
	// from what the schema generates, are missing, or are left over: the
	// app needs kiln generate.
	Stale []string
	// Operations are the problems of the operations in schema/operations
	// against the generated GraphQL schema (checked only when nothing is
	// stale, since they are validated against the generated schema).
	Operations error
}

// OK reports whether the app needs nothing: the schema is valid (Check
// returned no error), the generated code matches it and its operations
// are valid.
func (r CheckResult) OK() bool { return len(r.Stale) == 0 && r.Operations == nil }

// Check validates an app without writing anything: the schema (all its
// errors, as SchemaErrors, at file:line:col), whether Kiln's generated
// files (ent/schema, the GraphQL layer, the directives file) match the
// schema, and the operations in schema/operations. It takes about as long
// as loading the schema; ent's and gqlgen's own output and the migrations
// are checked by kiln generate (which also refuses destructive changes).
func Check(cfg Config) (CheckResult, error) {
	var r CheckResult
	if err := cfg.defaults(); err != nil {
		return r, err
	}
	files, err := readSchema(cfg.SchemaDir)
	if err != nil {
		return r, err
	}
	s, err := sdl.Load(files)
	if err != nil {
		return r, err
	}
	r.Models, r.Enums = len(s.Models), len(s.Enums)
	out, err := Emit(s, cfg.Module)
	if err != nil {
		return r, err
	}
	want := map[string]bool{"graph/operations.go": true} // written by generate after gqlgen
	for _, f := range out {
		want[filepath.ToSlash(f.Path)] = true
		old, err := os.ReadFile(filepath.Join(cfg.Root, f.Path))
		switch {
		case errors.Is(err, os.ErrNotExist):
			r.Stale = append(r.Stale, f.Path+" (missing)")
		case err != nil:
			return r, err
		case !bytes.Equal(old, f.Content):
			r.Stale = append(r.Stale, f.Path)
		}
	}
	left, err := write.Stale(cfg.Root, managed, want, write.IsGenerated)
	if err != nil {
		return r, err
	}
	for _, p := range left {
		r.Stale = append(r.Stale, p+" (left over)")
	}
	sort.Strings(r.Stale)
	if len(r.Stale) == 0 {
		if _, _, err := operations(cfg.Root, cfg.SchemaDir); err != nil {
			r.Operations = err
		}
	}
	return r, nil
}

// String says what Check found, one line per finding.
func (r CheckResult) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "schema: valid (%d models, %d enums)\n", r.Models, r.Enums)
	if len(r.Stale) == 0 {
		fmt.Fprintf(&b, "generated code: up to date\n")
	} else {
		fmt.Fprintf(&b, "generated code: %d files out of date; run kiln generate:\n", len(r.Stale))
		for i, p := range r.Stale {
			if i == 20 {
				fmt.Fprintf(&b, "  ... and %d more\n", len(r.Stale)-i)
				break
			}
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	switch {
	case r.Operations != nil:
		fmt.Fprintf(&b, "%v\n", r.Operations)
	case len(r.Stale) == 0:
		fmt.Fprintf(&b, "operations: valid\n")
	default:
		fmt.Fprintf(&b, "operations: not checked (they are validated against the generated schema)\n")
	}
	return b.String()
}
