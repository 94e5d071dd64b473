// Package generate runs Kiln's code generation: load and validate
// schema/*.graphql into the IR, emit ent schema, GraphQL SDL, resolvers and
// gqlgen config, run ent (with entgql) and gqlgen, and plan versioned SQL
// migrations. Nothing is written when the schema has errors; if a later step
// fails, the generated directories are restored to what they were.
package generate

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/emit/entschema"
	"kiln/generator/internal/emit/graphql"
	"kiln/generator/internal/emit/kotlin"
	"kiln/generator/internal/emit/swift"
	"kiln/generator/internal/ir"
	"kiln/generator/internal/migrate"
	"kiln/generator/internal/sdl"
	"kiln/generator/internal/write"
)

// Config says where to read and write.
type Config struct {
	// Root is the project root (holding go.mod); default ".".
	Root string
	// Module is the Go module path of Root; read from go.mod when empty.
	Module string
	// SchemaDir holds the *.graphql files; default Root/schema.
	SchemaDir string
	// AllowDestructive lets a migration drop tables or columns or narrow types.
	AllowDestructive bool
	// MigrationName names a new migration; default "schema".
	MigrationName string
	// Now stamps new migrations; default time.Now.
	Now func() time.Time
	// Out receives progress lines; default io.Discard.
	Out io.Writer
	// Force generates even when the schema, the generator and the
	// generated files are unchanged since the last successful run.
	Force bool
}

// managed are the directories whose Kiln-generated files the generator owns.
var managed = []string{"ent/schema", "graph", "schema"}

// Run generates everything from the schema.
func Run(ctx context.Context, cfg Config) error {
	start := time.Now()
	if err := cfg.defaults(); err != nil {
		return err
	}
	inputs, err := inputsHash(cfg)
	if err != nil {
		inputs = "" // no shortcut, but nothing is wrong with generating
	}
	if !cfg.Force && upToDate(cfg.Root, inputs) {
		fmt.Fprintf(cfg.Out, "kiln: up to date: the schema, the generator and the generated files are unchanged since the last run (-force generates anyway)\n")
		return nil
	}
	files, err := readSchema(cfg.SchemaDir)
	if err != nil {
		return err
	}
	s, err := sdl.Load(files)
	if err != nil {
		return err
	}
	var names []string
	for _, m := range s.Models {
		names = append(names, m.Name)
	}
	fmt.Fprintf(cfg.Out, "kiln: %d models (%s), %d enums\n", len(s.Models), strings.Join(names, ", "), len(s.Enums))

	out, err := Emit(s, cfg.Module)
	if err != nil {
		return err
	}
	snap, err := snapshot(cfg.Root, []string{"ent", "graph", "migrations", "schema", "gqlgen.yml", "clients"})
	if err != nil {
		return err
	}
	defer snap.discard()
	if err := run(ctx, cfg, s, files, out); err != nil {
		if rerr := snap.restore(); rerr != nil {
			return fmt.Errorf("%w (and restoring the previous files failed: %v)", err, rerr)
		}
		return err
	}
	saveStamp(cfg.Root, inputs)
	fmt.Fprintf(cfg.Out, "kiln: done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// Emit returns Kiln's own files for a schema (everything but ent's and
// gqlgen's output and the migrations), prepared for writing.
func Emit(s *ir.Schema, module string) ([]write.File, error) {
	var files []write.File
	files = append(files, entschema.Files(s, module)...)
	files = append(files, graphql.Files(s, module)...)
	files = append(files, write.File{Path: "schema/" + sdl.DirectivesFile, Content: []byte(sdl.Directives)})
	files = append(files, write.File{Path: "migrations/embed.go", Content: []byte(render("embed.go.tmpl", nil))})
	return write.Prepare(files)
}

// ClientDirs are the directories of the generated client SDKs.
var ClientDirs = []string{kotlin.Dir, swift.Dir}

// EmitClients returns the Swift and Kotlin SDKs for a schema and its typed
// custom operations, prepared for writing.
func EmitClients(s *ir.Schema, ops []*clientapi.Operation) ([]write.File, error) {
	api := clientapi.Build(s, ops)
	var files []write.File
	files = append(files, kotlin.Files(api)...)
	files = append(files, swift.Files(api)...)
	return write.Prepare(files)
}

func run(ctx context.Context, cfg Config, s *ir.Schema, schemaFiles []ir.File, files []write.File) error {
	// ent and gqlgen load Go packages relative to the working directory, so
	// run them from the project root (Run is not safe for concurrent use).
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(cfg.Root); err != nil {
		return err
	}
	defer os.Chdir(wd)
	// graph/operations.go is written after gqlgen (it is validated against
	// the final schema); keep the current one until then.
	if cur, err := os.ReadFile(filepath.Join(cfg.Root, "graph", "operations.go")); err == nil {
		files = append(files, write.File{Path: "graph/operations.go", Content: cur})
	}
	res, err := write.Write(cfg.Root, files, managed)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "kiln: %d files written, %d unchanged, %d removed\n", len(res.Written), len(res.Unchanged), len(res.Removed))

	// ent: remove its previous output so that removed models leave nothing behind.
	if err := removeToolOutput(cfg.Root, "ent", "Code generated by ent, DO NOT EDIT.", "ent/schema"); err != nil {
		return err
	}
	graph, ex, err := loadEnt(cfg, s)
	if err != nil {
		return err
	}
	if err := precheck(cfg, ex, graph, files, schemaFiles); err != nil {
		return err
	}
	// Migrations are planned from the loaded ent schema, before ent's and
	// gqlgen's code generation, so a destructive change is refused after
	// seconds rather than at the end.
	if err := planMigrations(ctx, cfg, graph); err != nil {
		return err
	}
	if err := graph.Gen(); err != nil {
		return fmt.Errorf("ent codegen: %w", err)
	}
	fmt.Fprintf(cfg.Out, "kiln: ent + entgql generated ent/\n")

	if err := removeToolOutput(cfg.Root, "graph", "Code generated by github.com/99designs/gqlgen, DO NOT EDIT.", ""); err != nil {
		return err
	}
	if err := runGqlgen(cfg.Out); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "kiln: gqlgen generated graph/\n")

	opsFile, ops, err := operations(cfg.Root, cfg.SchemaDir)
	if err != nil {
		return err
	}
	opsFiles, err := write.Prepare([]write.File{opsFile})
	if err != nil {
		return err
	}
	if _, err := write.Write(cfg.Root, opsFiles, nil); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "kiln: %d operations in the allow-list\n", len(ops))

	// The client SDKs, last: custom operations are typed against the final schema.
	clientFiles, err := EmitClients(s, ops)
	if err != nil {
		return err
	}
	cres, err := write.Write(cfg.Root, clientFiles, ClientDirs)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "kiln: client SDKs: %d files written, %d unchanged, %d removed\n", len(cres.Written), len(cres.Unchanged), len(cres.Removed))

	return nil
}

// planMigrations writes the migrations that take the databases from the
// previous schema to this one, refusing destructive changes unless allowed.
func planMigrations(ctx context.Context, cfg Config, graph *gen.Graph) error {
	tables, err := graph.Tables()
	if err != nil {
		return fmt.Errorf("ent tables: %w", err)
	}
	plans, err := migrate.Plan(ctx, migrate.Config{
		Dir:              filepath.Join(cfg.Root, "migrations"),
		Tables:           tables,
		Name:             cfg.MigrationName,
		Now:              cfg.Now,
		AllowDestructive: cfg.AllowDestructive,
	})
	if err != nil {
		return err
	}
	for _, p := range plans {
		if p.File == "" {
			fmt.Fprintf(cfg.Out, "kiln: migrations/%s up to date\n", p.Dialect)
		} else {
			fmt.Fprintf(cfg.Out, "kiln: migrations/%s/%s (%d changes)\n", p.Dialect, p.File, p.Changes)
		}
	}
	return nil
}

// attachTemplate adds ent/kiln_attach.go: an Attach method per entity that
// binds a record decoded outside a query (a realtime event's JSON) to a
// client, so its edges load through that client (and its rules).
var attachTemplate = gen.MustParse(gen.NewTemplate("kiln_attach").Parse(`{{ define "kiln_attach" }}
{{ $pkg := base $.Config.Package }}
{{ template "header" $ }}
{{ range $n := $.Nodes }}
// Attach binds this {{ $n.Name }}, decoded outside a query (for example from a
// realtime event) to c, so that its edges are loaded through c.
func (m *{{ $n.Name }}) Attach(c *Client) { m.config = c.config }
{{ end }}
{{ end }}`))

// Kiln's copies of two entgql templates (see the comment at the top of
// each): pagination, so that cursors page through NULLs
// (kiln/runtime/paging); edges, so that a required relation the viewer may
// not read resolves to null.
var (
	//go:embed entgql/pagination.tmpl
	entPagination string
	//go:embed entgql/edge.tmpl
	entEdge string
)

// entgqlTemplates are entgql's templates with the pagination and edge
// templates replaced by Kiln's, for schema s.
func entgqlTemplates(s *ir.Schema) []*gen.Template {
	funcs := template.FuncMap{
		// kilnMayHide reports whether the ent edge e of n is a required
		// relation that resolves to null when the viewer may not read it.
		"kilnMayHide": func(n *gen.Type, e *gen.Edge) bool {
			m := s.Model(n.Name)
			if m == nil {
				return false
			}
			for _, ie := range m.Edges {
				if ie.Column() == e.Name {
					return s.MayHide(m, ie)
				}
			}
			return false
		},
	}
	ts := make([]*gen.Template, 0, len(entgql.AllTemplates))
	for _, t := range entgql.AllTemplates {
		switch t {
		case entgql.PaginationTemplate:
			t = gen.MustParse(gen.NewTemplate("template/pagination.tmpl").Funcs(entgql.TemplateFuncs).Parse(entPagination))
		case entgql.EdgeTemplate:
			t = gen.MustParse(gen.NewTemplate("template/edge.tmpl").Funcs(entgql.TemplateFuncs).Funcs(funcs).Parse(entEdge))
		}
		ts = append(ts, t)
	}
	return ts
}

// loadEnt loads the ent schema (ent/schema, just written) into ent's
// graph, configured with entgql (returned, to build the GraphQL schema
// early) and Kiln's templates; Gen writes ent/.
// This is entc.Generate split in two, so the migrations can be planned
// between the load and the code generation.
func loadEnt(cfg Config, s *ir.Schema) (*gen.Graph, *entgql.Extension, error) {
	if err := os.MkdirAll(filepath.Join(cfg.Root, "graph"), 0o755); err != nil {
		return nil, nil, err
	}
	ex, err := entgql.NewExtension(
		entgql.WithTemplates(entgqlTemplates(s)...),
		entgql.WithSchemaGenerator(),
		entgql.WithSchemaPath(filepath.Join(cfg.Root, "graph", "ent.graphql")),
		entgql.WithWhereInputs(true),
		entgql.WithRelaySpec(true),
		entgql.WithNodeDescriptor(false),
		entgql.WithSchemaHook(graphql.EntSchemaHook(s, cfg.Module)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("entgql: %w", err)
	}
	gcfg := &gen.Config{
		Target:  filepath.Join(cfg.Root, "ent"),
		Package: cfg.Module + "/ent",
		Header:  "// Code generated by ent, DO NOT EDIT.",
		Features: []gen.Feature{
			gen.FeatureVersionedMigration,
			gen.FeatureUpsert,
			gen.FeatureExecQuery,
			gen.FeatureIntercept,
			gen.FeatureNamedEdges,
		},
		Templates: []*gen.Template{attachTemplate},
	}
	if err := entc.Extensions(ex)(gcfg); err != nil {
		return nil, nil, fmt.Errorf("entgql: %w", err)
	}
	if gcfg.Storage, err = gen.NewStorage("sql"); err != nil {
		return nil, nil, err
	}
	graph, err := entc.LoadGraph("./ent/schema", gcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("ent load: %w", err)
	}
	return graph, ex, nil
}

// runGqlgen runs gqlgen. It reports through the standard logger; its
// lines go to out, prefixed, instead of the terminal with timestamps.
func runGqlgen(out io.Writer) error {
	flags, prefix, w := log.Flags(), log.Prefix(), log.Writer()
	log.SetFlags(0)
	log.SetPrefix("kiln: gqlgen: ")
	log.SetOutput(out)
	defer func() { log.SetFlags(flags); log.SetPrefix(prefix); log.SetOutput(w) }()
	gc, err := config.LoadConfig("gqlgen.yml")
	if err != nil {
		return fmt.Errorf("gqlgen config: %w", err)
	}
	if err := api.Generate(gc); err != nil {
		return fmt.Errorf("gqlgen: %w", err)
	}
	return nil
}

// removeToolOutput removes files under dir whose first line has the tool's
// header, except under skip.
func removeToolOutput(root, dir, hdr, skip string) error {
	stale, err := write.Stale(root, []string{dir}, nil, func(b []byte) bool {
		first, _, _ := strings.Cut(string(b), "\n")
		return strings.Contains(first, hdr)
	})
	if err != nil {
		return err
	}
	for _, p := range stale {
		if skip != "" && strings.HasPrefix(p, skip+"/") {
			continue
		}
		if err := os.Remove(filepath.Join(root, p)); err != nil {
			return err
		}
	}
	write.RemoveEmptyDirs(root, []string{dir})
	return nil
}

func readSchema(dir string) ([]ir.File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	var files []ir.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".graphql") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files = append(files, ir.File{Name: filepath.ToSlash(filepath.Join(filepath.Base(dir), e.Name())), Content: string(b)})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.graphql files in %s", dir)
	}
	return files, nil
}

func (c *Config) defaults() error {
	if c.Root == "" {
		c.Root = "."
	}
	abs, err := filepath.Abs(c.Root)
	if err != nil {
		return err
	}
	c.Root = abs
	if c.SchemaDir == "" {
		c.SchemaDir = filepath.Join(c.Root, "schema")
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MigrationName == "" {
		c.MigrationName = "schema"
	}
	if c.Module == "" {
		b, err := os.ReadFile(filepath.Join(c.Root, "go.mod"))
		if err != nil {
			return fmt.Errorf("read go.mod: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "module ") {
				c.Module = strings.TrimSpace(strings.TrimPrefix(line, "module "))
			}
		}
		if c.Module == "" {
			return fmt.Errorf("no module line in %s/go.mod", c.Root)
		}
	}
	return nil
}

// SchemaErrors are the schema's problems, all at once, each at
// file:line:col; Run returns them (wrapped) when the schema is invalid.
type SchemaErrors = sdl.Errors
