package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"

	"kiln/generator/generate"
)

// kilnModule is the module path of Kiln itself.
const kilnModule = "kiln"

// docsURL is where the starter files point readers.
const docsURL = "https://github.com/kiln-dev/kiln/blob/main/docs"

//go:embed starter/*.tmpl
var starterFS embed.FS

var starter = template.Must(template.ParseFS(starterFS, "starter/*.tmpl"))

// starterFiles maps the files of a new app to their templates.
var starterFiles = map[string]string{
	"go.mod":             "go.mod.tmpl",
	"main.go":            "main.go.tmpl",
	"code.go":            "code.go.tmpl",
	"schema/app.graphql": "app.graphql.tmpl",
	"Makefile":           "Makefile.tmpl",
	"README.md":          "README.md.tmpl",
	".gitignore":         "gitignore.tmpl",
}

// appRequires are the modules an app's generated code imports directly,
// required at the versions this kiln was built with (go mod tidy adds the
// rest).
var appRequires = []string{"entgo.io/ent", "entgo.io/contrib", "github.com/99designs/gqlgen", "github.com/google/uuid",
	"github.com/vektah/gqlparser/v2", "github.com/hashicorp/go-multierror", "github.com/jackc/pgx/v5", "modernc.org/sqlite"}

var modulePathRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$`)

type module struct{ Path, Version string }

type starterData struct {
	Module, Name, GoVersion, KilnDir, Docs string
	Requires                               []module
}

// newApp creates an app: a Go module with a starter schema, a main that
// serves it with Kiln's server, a Makefile and a README; then generates its
// code and tidies its go.mod.
func newApp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mod := fs.String("module", "", "Go module path of the app, e.g. example.com/myapp (required)")
	kilnDir := fs.String("kiln", "", "use the Kiln source in this directory (a replace directive); the default when this kiln runs from a source checkout")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: kiln new DIR -module PATH [-kiln DIR]"); fs.PrintDefaults() }
	// The directory may come before the flags.
	var dir string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dir == "" && fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	switch {
	case dir == "":
		fs.Usage()
		return errors.New("kiln new needs the app's directory")
	case *mod == "":
		fs.Usage()
		return errors.New("kiln new needs -module, the app's Go module path (e.g. example.com/myapp)")
	case !modulePathRE.MatchString(*mod) || *mod == kilnModule || strings.HasPrefix(*mod, kilnModule+"/"):
		return fmt.Errorf("-module %q is not a module path for an app (e.g. example.com/myapp)", *mod)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", dir)
	}
	d := starterData{Module: *mod, Name: path.Base(*mod), GoVersion: goVersion(), Docs: docsURL, KilnDir: *kilnDir}
	if d.KilnDir == "" {
		d.KilnDir = sourceDir(ctx)
	}
	if d.KilnDir != "" {
		abs, err := filepath.Abs(d.KilnDir)
		if err != nil {
			return err
		}
		d.KilnDir = abs
	}
	d.Requires = requires(d.KilnDir)
	for name, tmpl := range starterFiles {
		var b bytes.Buffer
		if err := starter.ExecuteTemplate(&b, tmpl, d); err != nil {
			return fmt.Errorf("starter %s: %w", name, err)
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "kiln: created %s (module %s)\n", dir, *mod)
	// Generation loads the app's packages: let go record the sums it needs.
	if os.Getenv("GOFLAGS") == "" {
		os.Setenv("GOFLAGS", "-mod=mod")
		defer os.Unsetenv("GOFLAGS")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := generateErr(generate.Run(ctx, generate.Config{Root: root, Module: *mod, Out: stdout})); err != nil {
		return err
	}
	tidy := exec.CommandContext(ctx, "go", "mod", "tidy")
	tidy.Dir, tidy.Stdout, tidy.Stderr = root, stdout, stderr
	if err := tidy.Run(); err != nil {
		return fmt.Errorf("go mod tidy in %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "kiln: done. Next:\n  cd %s\n  make run    # http://localhost:8080/graphql\n  make test\n", dir)
	return nil
}

// goVersion is the go directive of a new app: this toolchain's release.
func goVersion() string {
	v := strings.TrimPrefix(runtime.Version(), "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return v
}

// sourceDir is the directory of Kiln's source when this kiln runs from a
// source checkout (go run ./cmd/kiln in the repository), else "".
func sourceDir(ctx context.Context) string {
	if v := version(); v != "(devel)" && v != "" {
		return ""
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", kilnModule).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// requires lists Kiln and the modules a new app starts with, at Kiln's
// versions: every requirement of Kiln's go.mod when its source is at hand
// (so that the app's module graph is Kiln's, and go mod tidy keeps only what
// the app uses), else the modules of appRequires this kiln was built with.
func requires(kilnDir string) []module {
	kv := version()
	if kilnDir != "" || kv == "(devel)" || kv == "" {
		kv = "v0.0.0"
	}
	out := []module{{kilnModule, kv}}
	if kilnDir != "" {
		if b, err := os.ReadFile(filepath.Join(kilnDir, "go.mod")); err == nil {
			if f, err := modfile.ParseLax("go.mod", b, nil); err == nil {
				for _, r := range f.Require {
					out = append(out, module{r.Mod.Path, r.Mod.Version})
				}
				return out
			}
		}
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	for _, want := range appRequires {
		for _, d := range bi.Deps {
			if d.Path == want {
				out = append(out, module{d.Path, d.Version})
			}
		}
	}
	return out
}
