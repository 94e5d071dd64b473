// Command kiln is Kiln's command line for developers: `kiln new` creates
// an app, `kiln generate` turns its schema into code, `kiln serve` and
// `kiln migrate` build and run the app in the current directory, `kiln keys
// generate` makes a production signing key, `kiln version` says which
// Kiln it is.
//
//	go run kiln/cmd/kiln new ./myapp -module example.com/myapp
//	cd myapp && kiln serve
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"

	"kiln/generator/generate"
	"kiln/server/jwtkeys"
)

const usage = `usage: kiln <command> [flags]

commands:
  new DIR -module PATH   create an app in DIR (a Go module) and generate its code
  generate               regenerate ent/, graph/, migrations/ and clients/ from schema/
  check                  validate the schema and operations, and say whether the generated code is stale
  serve [flags]          build the app in this directory and serve it (its settings: kiln serve -h)
  migrate status|up      build the app in this directory and list or apply its migrations
  keys generate          print a new KILN_JWT_KEYS value for production
  version                print Kiln's version
  help [command]         show this help, or a command's

Run "kiln <command> -h" for a command's help.
`

// about is each command's help, before its flags.
var about = map[string]string{
	"new": `usage: kiln new DIR -module PATH [-kiln DIR]

Create an app in DIR: a Go module with a starter schema (schema/app.graphql),
a main that serves it with Kiln's server, a Makefile and a README; then
generate its code and tidy its go.mod.
`,
	"generate": `usage: kiln generate [flags]

Regenerate the app's code from schema/*.graphql: the ent schema and client,
the GraphQL layer, the operation allow-list, the Swift and Kotlin SDKs, and
a new migration per database when the tables changed. Nothing is written
when the schema has errors, and a change that would drop data is refused
(before anything slow runs) unless -allow-destructive is given. A run
whose schema, generator and generated files are unchanged since the last
one does nothing (-force generates anyway).
`,
	"check": `usage: kiln check [flags]

Check the app without writing anything: validate the schema (every error at
file:line:col), say whether Kiln's generated code (ent/schema, graph/, the
directives file) matches it, and validate schema/operations against the
generated GraphQL schema. Exits 1 when anything needs fixing or kiln
generate; quick enough for a pre-commit hook or an editor.
`,
	"serve": `usage: kiln serve [flags]

Build the app in the current directory (go build) and run "<app> serve" with
the flags given, standard input and output attached; SIGINT and SIGTERM are
passed on, and kiln exits with the app's status. The flags and settings are
the app's:
`,
	"migrate": `usage: kiln migrate status|up [flags]

Build the app in the current directory (go build) and run "<app> migrate
status" (list its migrations, applied and pending, for the configured
database) or "<app> migrate up" (apply the pending ones), then exit with the
app's status. "kiln migrate status -h" lists the settings (DATABASE_URL,
KILN_DATA_DIR, ...).
`,
	"keys": `usage: kiln keys generate

Print a new access-token signing key as a KILN_JWT_KEYS value (a JSON array
of {"kid", "key"} with one Ed25519 key) on standard output, and how to use it
on standard error. The same as "<app> keys generate".
`,
	"version": `usage: kiln version

Print Kiln's version (its module version, or (devel) in a source checkout).
`,
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the kiln command line with args (without the program name) and
// returns the exit status; serve and migrate run the app in the current
// directory.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return appCommand{Dir: ".", Stdin: os.Stdin}.main(ctx, args, stdout, stderr)
}

func (app appCommand) main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	help := slices.ContainsFunc(rest, isHelp)
	var err error
	switch cmd {
	case "new", "generate", "check":
		if help {
			// The flag set prints its flags where it writes errors: here, standard output.
			fmt.Fprint(stdout, about[cmd])
			stderr = stdout
		}
		switch cmd {
		case "new":
			err = newApp(ctx, rest, stdout, stderr)
		case "check":
			err = checkCmd(rest, stdout, stderr)
		default:
			err = generateCmd(ctx, rest, stdout, stderr)
		}
	case "serve":
		if help {
			fmt.Fprint(stdout, about[cmd])
		}
		return app.run(ctx, append([]string{"serve"}, rest...), stdout, stderr, help)
	case "migrate":
		switch {
		case len(rest) == 0 || isHelp(rest[0]):
			if len(rest) == 0 {
				fmt.Fprintf(stderr, "kiln: migrate needs status or up\n\n%s", about[cmd])
				return 2
			}
			fmt.Fprint(stdout, about[cmd])
			return 0
		case rest[0] != "status" && rest[0] != "up":
			fmt.Fprintf(stderr, "kiln: unknown migrate command %q: use status or up\n\n%s", rest[0], about[cmd])
			return 2
		}
		return app.run(ctx, append([]string{"migrate"}, rest...), stdout, stderr, help)
	case "keys":
		switch {
		case len(rest) > 0 && isHelp(rest[0]), len(rest) > 1 && rest[0] == "generate" && help:
			fmt.Fprint(stdout, about[cmd])
			return 0
		case len(rest) != 1 || rest[0] != "generate":
			fmt.Fprintf(stderr, "kiln: keys needs generate and nothing more\n\n%s", about[cmd])
			return 2
		}
		v, err := jwtkeys.Generate()
		if err != nil {
			fmt.Fprintf(stderr, "kiln: keys generate: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, v)
		fmt.Fprintln(stderr, jwtkeys.Hint("kiln keys generate"))
	case "version":
		if help {
			fmt.Fprint(stdout, about[cmd])
			return 0
		}
		fmt.Fprintln(stdout, "kiln", version())
	case "help":
		if len(rest) > 0 {
			if a, ok := about[rest[0]]; ok {
				fmt.Fprint(stdout, a)
				return 0
			}
			fmt.Fprintf(stderr, "kiln: no command %q\n\n%s", rest[0], usage)
			return 2
		}
		fmt.Fprint(stdout, usage)
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "kiln: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "kiln: %v\n", err)
		return 1
	}
	return 0
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// Version is Kiln's release version, stamped when a release is built
// (go build -ldflags "-X main.Version=v1.4.0"); empty, version reports the
// module version the Go toolchain recorded.
var Version string

// version is Kiln's version as built (devel in this repository).
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == kilnModule {
			return bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == kilnModule {
				return d.Version
			}
		}
	}
	return "(devel)"
}

func generateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg generate.Config
	fs.StringVar(&cfg.Root, "root", ".", "app root (holding go.mod)")
	fs.StringVar(&cfg.SchemaDir, "schema", "", "schema directory (default <root>/schema)")
	fs.BoolVar(&cfg.AllowDestructive, "allow-destructive", false, "allow migrations that drop tables or columns or narrow types")
	fs.StringVar(&cfg.MigrationName, "name", "schema", "name of a new migration")
	fs.BoolVar(&cfg.Force, "force", false, "generate even when nothing changed since the last run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Out = stdout
	return generateErr(generate.Run(ctx, cfg))
}

func checkCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiln check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg generate.Config
	fs.StringVar(&cfg.Root, "root", ".", "app root (holding go.mod)")
	fs.StringVar(&cfg.SchemaDir, "schema", "", "schema directory (default <root>/schema)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := generate.Check(cfg)
	if err != nil {
		return generateErr(err)
	}
	fmt.Fprint(stdout, res)
	if !res.OK() {
		return errors.New("check failed")
	}
	return nil
}

// generateErr reports schema errors all at once, as file:line:col lines.
func generateErr(err error) error {
	var se generate.SchemaErrors
	if errors.As(err, &se) {
		return fmt.Errorf("%s\n%d schema errors; nothing was written", se, len(se))
	}
	return err
}
