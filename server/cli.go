package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agnivade/levenshtein"

	"kiln/runtime/app"
	"kiln/server/internal/config"
	"kiln/server/internal/database"
	"kiln/server/internal/jobs"
	"kiln/server/jwtkeys"
)

// Version is the app's release version, stamped when a release is built:
//
//	go build -ldflags "-X kiln/server.Version=v1.4.0" .
//
// When it is empty, `version` reports the module version the Go toolchain
// recorded in the binary.
var Version string

// invocation is one run of an app's command line.
type invocation struct {
	prog    string // the program's name, for usage lines
	getenv  func(string) string
	environ []string // KEY=VALUE, for the unknown-variable check
	stdout  io.Writer
	stderr  io.Writer
}

// command is a subcommand of an app's binary.
type command struct {
	name    string // "serve", "migrate status"
	summary string // one line, for the list of commands
	about   string // what it does, for its help
	run     func(ctx context.Context, a app.Definition, inv *invocation, args []string) error
}

// commands are the subcommands, in the order of the help (set in init:
// help refers to them).
var commands []command

func init() {
	commands = []command{{"serve", "serve the app (the default: no command, or flags only)",
		"Serve the app's GraphQL API, GraphiQL, health checks and metrics until SIGINT or SIGTERM. " +
			"The listen address is opened first, then the data directory is checked, the database " +
			"connected (a PostgreSQL that is not up yet is retried for KILN_DB_CONNECT_TIMEOUT) and " +
			"pending migrations applied.", serveCmd},
		{"migrate status", "list the app's migrations, applied and pending, and exit",
			"List the app's migrations for the configured database, oldest first, each applied (with " +
				"when) or pending. Serves nothing.", migrateCmd(false)},
		{"migrate up", "apply the pending migrations and exit",
			"Apply the app's pending migrations to the configured database (under the same lock as a " +
				"starting server), list them all, and exit. Serves nothing.", migrateCmd(true)},
		{"keys generate", "print a new KILN_JWT_KEYS value",
			"Print a new access-token signing key as a KILN_JWT_KEYS value (a JSON array of " +
				`{"kid", "key"} with one Ed25519 key) on standard output, and how to use it on standard error.`,
			keysGenerateCmd},
		{"version", "print the app's and Kiln's versions",
			"Print the app's module and version (the release stamp, or what the Go toolchain recorded), " +
				"Kiln's version, and the Go version and platform.", versionCmd},
		{"help", "show this help, or a command's (help COMMAND)", "Show the commands, or a command's help.", helpCmd},
	}
}

// usageError is a command line the app does not take; it exits with
// status 2 after the usage.
type usageError struct {
	err   error
	usage string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// execute runs the command args name, serve when args is empty or starts
// with a flag.
func execute(ctx context.Context, a app.Definition, inv *invocation, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return serveCmd(ctx, a, inv, args)
	}
	if isHelp(args[0]) {
		return helpCmd(ctx, a, inv, nil)
	}
	cmd, rest, err := findCommand(inv, args)
	if err != nil {
		return err
	}
	return cmd.run(ctx, a, inv, rest)
}

// findCommand matches the first one or two words of args.
func findCommand(inv *invocation, args []string) (command, []string, error) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slicesEqual(args[:len(words)], words) {
			return c, args[len(words):], nil
		}
	}
	var subs []string
	for _, c := range commands {
		if group, sub, ok := strings.Cut(c.name, " "); ok && group == args[0] {
			subs = append(subs, group+" "+sub)
		}
	}
	if len(subs) > 0 {
		what := "needs a subcommand"
		if len(args) > 1 {
			what = fmt.Sprintf("has no subcommand %q", args[1])
		}
		return command{}, nil, &usageError{fmt.Errorf("%s %s: use %s", args[0], what, strings.Join(subs, " or ")), topUsage(inv)}
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := suggestCommand(args[0]); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return command{}, nil, &usageError{errors.New(msg), topUsage(inv)}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func suggestCommand(word string) string {
	best, bestD := "", 3
	for _, c := range commands {
		first, _, _ := strings.Cut(c.name, " ")
		if d := levenshtein.ComputeDistance(word, first); d < bestD {
			best, bestD = first, d
		}
	}
	return best
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// exitCode prints err as the process's last words and returns its exit
// status: 0 for nil, 2 for a command line the app does not take (with the
// usage), 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "kiln: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "\n%s", ue.usage)
		return 2
	}
	return 1
}

// environOf is the environment as getenv sees it: the process's variables
// for which getenv returns a value.
func environOf(getenv func(string) string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if v := getenv(name); v != "" {
			out = append(out, name+"="+v)
		}
	}
	return out
}

func progName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return filepath.Base(os.Args[0])
	}
	return "kiln"
}

// topUsage lists the commands.
func topUsage(inv *invocation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s [command] [flags]\n\nCommands:\n", inv.prog)
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nRun \"%s COMMAND -h\" for a command's help and every setting.\n", inv.prog)
	return b.String()
}

func commandUsage(inv *invocation, c command) string {
	flags := " [flags]"
	switch c.name {
	case "keys generate", "version":
		flags = ""
	case "help":
		flags = " [command]"
	}
	return fmt.Sprintf("usage: %s %s%s\n\nRun \"%s %s -h\" for its help and every setting.\n", inv.prog, c.name, flags, inv.prog, c.name)
}

// writeHelp writes a command's help: usage, what it does, every setting.
func writeHelp(inv *invocation, c command) {
	w := inv.stdout
	flags := " [flags]"
	switch c.name {
	case "keys generate", "version":
		flags = ""
	}
	fmt.Fprintf(w, "usage: %s %s%s\n\n%s\n\n", inv.prog, c.name, flags, wrap(c.about, 76))
	if c.name == "serve" {
		fmt.Fprintf(w, "serve is the default: %q and %q serve too.\n\n", inv.prog, inv.prog+" -addr :9000")
	}
	config.WriteHelp(w)
}

// wrap breaks text into lines of at most width columns.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		if n > 0 && n+1+len(word) > width {
			b.WriteString("\n")
			n = 0
		} else if n > 0 {
			b.WriteString(" ")
			n++
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

func helpCmd(_ context.Context, _ app.Definition, inv *invocation, args []string) error {
	if len(args) > 0 && !isHelp(args[0]) {
		c, rest, err := findCommand(inv, args)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return &usageError{fmt.Errorf("help: unexpected argument %q", rest[0]), commandUsage(inv, c)}
		}
		writeHelp(inv, c)
		return nil
	}
	fmt.Fprintf(inv.stdout, "%s is a Kiln app: a GraphQL backend for its schema.\n\n%s\n", inv.prog, topUsage(inv))
	config.WriteHelp(inv.stdout)
	return nil
}

// noFlags parses the arguments of a command without flags: -h asks for
// its help (true), anything else is a usage error.
func noFlags(inv *invocation, name string, args []string) (help bool, err error) {
	c, _, _ := findCommand(inv, strings.Fields(name))
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeHelp(inv, c)
			return true, nil
		}
		return false, &usageError{fmt.Errorf("%s: %w", name, err), commandUsage(inv, c)}
	}
	if fs.NArg() > 0 {
		return false, &usageError{fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0)), commandUsage(inv, c)}
	}
	return false, nil
}

// setup reads the configuration for a command that takes the settings
// and reports unknown KILN_ variables: a warning each, an error in
// production. It returns a nil config, and no error, after printing the
// help.
func setup(inv *invocation, name string, args []string) (*config.Config, *slog.Logger, error) {
	c, _, _ := findCommand(inv, strings.Fields(name))
	cfg, err := config.Load(args, inv.getenv)
	var ue *config.UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeHelp(inv, c)
		return nil, nil, nil
	case errors.As(err, &ue):
		return nil, nil, &usageError{fmt.Errorf("%s: %w", name, ue.Err), commandUsage(inv, c)}
	}
	unknown := config.UnknownVariables(inv.environ)
	if err != nil {
		for _, u := range unknown {
			err = errors.Join(err, fmt.Errorf("(note: %s)", u))
		}
		return nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg, inv.stderr)
	if len(unknown) > 0 && cfg.Production {
		lines := make([]string, len(unknown))
		for i, u := range unknown {
			lines[i] = u.String()
		}
		return nil, nil, fmt.Errorf("configuration:\n%s\nKILN_ENV=production refuses unknown KILN_ variables: fix or unset them", strings.Join(lines, "\n"))
	}
	for _, u := range unknown {
		log.Warn(u.String(), "variable", u.Env)
	}
	return cfg, log, nil
}

// checkDataDir makes sure the data directory exists and takes new files
// before anything is written there, so that a read-only one is reported
// as such. With PostgreSQL it is needed only for the generated signing
// key and the local-disk file store.
func checkDataDir(cfg *config.Config) error {
	postgres := strings.HasPrefix(cfg.DatabaseURL, "postgres://") || strings.HasPrefix(cfg.DatabaseURL, "postgresql://")
	if postgres && cfg.JWTKeys != "" && cfg.Files.S3 != nil {
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s (set KILN_DATA_DIR): %w", cfg.DataDir, err)
	}
	return database.CheckWritableDir("data directory", cfg.DataDir)
}

// openDatabase opens the configured database, waiting for a PostgreSQL
// that is not up yet.
func openDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger) (*database.DB, error) {
	return database.Open(ctx, database.Options{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, MaxConns: cfg.DBMaxConns,
		AcquireTimeout: cfg.DBAcquireTimeout, ConnectTimeout: cfg.DBConnectTimeout, Logger: log})
}

func migrateCmd(up bool) func(context.Context, app.Definition, *invocation, []string) error {
	name := "migrate status"
	if up {
		name = "migrate up"
	}
	return func(ctx context.Context, a app.Definition, inv *invocation, args []string) error {
		cfg, log, err := setup(inv, name, args)
		if err != nil || cfg == nil {
			return err
		}
		db, err := openDatabase(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer db.Close()
		if up {
			if err := db.Migrate(ctx, a.Migrations, log); err != nil {
				return err
			}
			if err := jobs.Migrate(ctx, db.SQL, db.Dialect, log); err != nil {
				return err
			}
		}
		list, err := db.Migrations(ctx, a.Migrations)
		if err != nil {
			return err
		}
		// Then the job engine's (River's own versioned migrations).
		engine, err := jobs.Migrations(ctx, db.SQL, db.Dialect, log)
		if err != nil {
			return err
		}
		for _, m := range engine {
			list = append(list, database.Migration{Version: int64(m.Version), File: m.File, Applied: m.Applied})
		}
		fmt.Fprintf(inv.stdout, "Migrations on %s (%s):\n", db.Dialect, db.Where)
		tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
		pending := 0
		for _, m := range list {
			if m.Applied {
				at := ""
				if !m.AppliedAt.IsZero() {
					at = m.AppliedAt.UTC().Format(time.DateTime + " MST")
				}
				fmt.Fprintf(tw, "  applied\t%s\t%s\n", m.File, at)
			} else {
				pending++
				fmt.Fprintf(tw, "  pending\t%s\t\n", m.File)
			}
		}
		tw.Flush()
		fmt.Fprintf(inv.stdout, "%d migrations: %d applied, %d pending\n", len(list), len(list)-pending, pending)
		return nil
	}
}

func keysGenerateCmd(_ context.Context, _ app.Definition, inv *invocation, args []string) error {
	if help, err := noFlags(inv, "keys generate", args); help || err != nil {
		return err
	}
	v, err := jwtkeys.Generate()
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	fmt.Fprintln(inv.stdout, v)
	fmt.Fprintln(inv.stderr, jwtkeys.Hint(inv.prog+" keys generate"))
	return nil
}

func versionCmd(_ context.Context, _ app.Definition, inv *invocation, args []string) error {
	if help, err := noFlags(inv, "version", args); help || err != nil {
		return err
	}
	fmt.Fprint(inv.stdout, versionText())
	return nil
}

// kilnModule is the module path of Kiln (this package's, without /server).
var kilnModule = strings.TrimSuffix(reflect.TypeFor[invocation]().PkgPath(), "/server")

// versionText is the app's module and version, Kiln's version, and the
// Go version and platform, one per line.
func versionText() string {
	appPath, appVersion, kilnVersion := "app", "(unknown)", "(unknown)"
	var commit string
	if bi, ok := debug.ReadBuildInfo(); ok {
		appPath, appVersion = bi.Main.Path, bi.Main.Version
		if bi.Main.Path == kilnModule {
			kilnVersion = bi.Main.Version
			if Version != "" {
				kilnVersion = Version
			}
		}
		for _, d := range bi.Deps {
			if d.Path == kilnModule {
				kilnVersion = d.Version
				if d.Replace != nil {
					kilnVersion += " (replaced by " + d.Replace.Path + ")"
				}
			}
		}
		var rev, at, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (modified)"
				}
			}
		}
		if rev != "" {
			commit = fmt.Sprintf("commit %s %s%s\n", rev, at, dirty)
		}
	}
	if Version != "" {
		appVersion = Version
	}
	if appVersion == "" {
		appVersion = "(devel)"
	}
	return fmt.Sprintf("%s %s\nkiln %s\n%s%s %s/%s\n", appPath, appVersion, kilnVersion, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
