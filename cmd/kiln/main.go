// Command kiln is Kiln's command line: `kiln new` creates an app, `kiln
// generate` turns its schema into code, `kiln version` says which Kiln it
// is.
//
//	go run kiln/cmd/kiln new ./myapp -module example.com/myapp
//	cd myapp && make run
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"kiln/generator/generate"
)

const usage = `usage: kiln <command> [flags]

commands:
  new DIR -module PATH   create an app in DIR (a Go module) and generate its code
  generate               regenerate ent/, graph/, migrations/ and clients/ from schema/
  version                print Kiln's version

Run "kiln <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "new":
		err = newApp(ctx, args[1:], stdout, stderr)
	case "generate":
		err = generateCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kiln", version())
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "kiln: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "kiln: %v\n", err)
		}
		return 1
	}
	return 0
}

// version is Kiln's module version as built (devel in this repository).
func version() string {
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Out = stdout
	return generateErr(generate.Run(ctx, cfg))
}

// generateErr reports schema errors all at once, as file:line:col lines.
func generateErr(err error) error {
	var se generate.SchemaErrors
	if errors.As(err, &se) {
		return fmt.Errorf("%s\n%d schema errors; nothing was written", se, len(se))
	}
	return err
}
