// Command generator is `make generate`: it reads schema/*.graphql and writes
// ent/, graph/, migrations/ and the client SDKs. See package generate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"kiln/generator/generate"
	"kiln/generator/internal/sdl"
)

func main() {
	var cfg generate.Config
	flag.StringVar(&cfg.Root, "root", ".", "project root (holding go.mod)")
	flag.StringVar(&cfg.SchemaDir, "schema", "", "schema directory (default <root>/schema)")
	flag.BoolVar(&cfg.AllowDestructive, "allow-destructive", false, "allow migrations that drop tables or columns or narrow types")
	flag.StringVar(&cfg.MigrationName, "name", "schema", "name of a new migration")
	flag.Parse()
	cfg.Out = os.Stdout
	if err := generate.Run(context.Background(), cfg); err != nil {
		var se sdl.Errors
		if errors.As(err, &se) {
			fmt.Fprintf(os.Stderr, "%s\nkiln: %d schema errors; nothing was written\n", se, len(se))
		} else {
			fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
		}
		os.Exit(1)
	}
}
