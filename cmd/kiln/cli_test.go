package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The app these tests run: this repository's root, the example app.
const exampleApp = "../.."

// TestKilnHelp: -h on every command exits 0 with a description on
// standard output; kiln serve -h adds the app's settings.
func TestKilnHelp(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		dir  string
		args []string
		want string
	}{
		{exampleApp, []string{"-h"}, "kiln serve"},
		{exampleApp, []string{"help"}, "migrate status|up"},
		{exampleApp, []string{"help", "migrate"}, "usage: kiln migrate"},
		{exampleApp, []string{"new", "-h"}, "-module"},
		{exampleApp, []string{"generate", "--help"}, "-allow-destructive"},
		{exampleApp, []string{"keys", "generate", "-h"}, "KILN_JWT_KEYS"},
		{exampleApp, []string{"keys", "-h"}, "usage: kiln keys generate"},
		{exampleApp, []string{"version", "-h"}, "usage: kiln version"},
		{exampleApp, []string{"migrate", "-h"}, "migrate status"},
		{exampleApp, []string{"serve", "-h"}, "KILN_DB_CONNECT_TIMEOUT, -db-connect-timeout (default: 30s)"},
		{exampleApp, []string{"migrate", "status", "-h"}, "DATABASE_URL, -database-url"},
		{empty, []string{"serve", "--help"}, "run it in an app's directory"},
	} {
		var out, errOut bytes.Buffer
		code := appCommand{Dir: c.dir}.main(t.Context(), c.args, &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), c.want) || !strings.Contains(out.String(), "usage") {
			t.Errorf("kiln %v: exit %d, want 0 and %q on stdout\nstdout:\n%s\nstderr:\n%s", c.args, code, c.want, out.String(), errOut.String())
		}
	}
}

func TestKilnUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"migrate"}, {"migrate", "sideways"}, {"keys"}, {"keys", "make"}, {"help", "nothing"}} {
		var out, errOut bytes.Buffer
		if code := (appCommand{Dir: exampleApp}).main(t.Context(), args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
			t.Errorf("kiln %v: exit %d, want 2 with the usage on stderr:\n%s", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := (appCommand{Dir: t.TempDir()}).main(t.Context(), []string{"serve"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no go.mod") {
		t.Errorf("kiln serve outside an app: exit %d:\n%s", code, errOut.String())
	}
}

func TestKilnKeysGenerate(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"keys", "generate"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var keys []struct{ KID, Key string }
	if err := json.Unmarshal(out.Bytes(), &keys); err != nil || len(keys) != 1 || keys[0].KID == "" || len(keys[0].Key) != 44 {
		t.Fatalf("stdout %q: want one key (%v)", out.String(), err)
	}
	if !strings.Contains(errOut.String(), "kiln keys generate") {
		t.Errorf("no hint on stderr: %q", errOut.String())
	}
}

// TestKilnMigrateAndServe runs the example app through kiln: migrate
// status and up, the app's exit statuses passed through (2 for a usage
// error, 1 for a failure), and serve until kiln's context ends (the app
// gets SIGTERM and exits 0).
func TestKilnMigrateAndServe(t *testing.T) {
	data := t.TempDir()
	app := appCommand{Dir: exampleApp, Env: append(os.Environ(), "KILN_DATA_DIR="+data, "REDIS_URL=")}
	runApp := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := app.main(t.Context(), args, &out, &errOut)
		return out.String(), errOut.String(), code
	}
	n, _ := filepath.Glob(filepath.Join(exampleApp, "migrations", "sqlite", "*.sql"))
	// A row per migration: the app's, then the job engine's (river/...).
	if out, errOut, code := runApp("migrate", "status"); code != 0 || strings.Count(out, "river/") == 0 ||
		strings.Count(out, "  pending  ") != len(n)+strings.Count(out, "river/") {
		t.Fatalf("migrate status: exit %d\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := runApp("migrate", "up"); code != 0 || !strings.Contains(out, "0 pending") {
		t.Fatalf("migrate up: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := runApp("serve", "extra"); code != 2 || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("serve extra: exit %d, want the app's 2:\n%s", code, errOut)
	}
	bad := appCommand{Dir: exampleApp, Env: append(os.Environ(), "KILN_DATA_DIR="+data, "KILN_MAX_DEPTH=deep")}
	var out, errOut bytes.Buffer
	if code := bad.main(t.Context(), []string{"migrate", "status"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "KILN_MAX_DEPTH") {
		t.Errorf("migrate status with a bad setting: exit %d, want the app's 1:\n%s", code, errOut.String())
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &watchWriter{ready: make(chan string, 1)}
	done := make(chan int, 1)
	go func() { done <- app.main(ctx, []string{"serve", "-addr", "127.0.0.1:0"}, &bytes.Buffer{}, logs) }()
	select {
	case addr := <-logs.ready:
		res, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("/healthz: %d", res.StatusCode)
		}
	case code := <-done:
		t.Fatalf("kiln serve exited %d before the app was ready:\n%s", code, logs.String())
	case <-time.After(3 * time.Minute): // a hang guard, not a timing assertion
		t.Fatalf("the app not ready after 3 minutes:\n%s", logs.String())
	}
	cancel()
	if code := <-done; code != 0 || !strings.Contains(logs.String(), "stopped") {
		t.Errorf("kiln serve after SIGTERM: exit %d, want 0 after a clean stop:\n%s", code, logs.String())
	}
}

var readyRE = regexp.MustCompile(`kiln ready.*addr=(\S+)`)

// watchWriter keeps what the app logs and reports its address when ready.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan string
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := readyRE.FindStringSubmatch(w.buf.String()); m != nil {
		select {
		case w.ready <- m[1]:
		default:
		}
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestKilnCheck: kiln check passes on the example app, and on a copy of it
// reports a schema error at file:line:col, a schema change that needs
// kiln generate, and an operation that no longer matches, each with exit 1
// and without writing anything.
func TestKilnCheck(t *testing.T) {
	check := func(dir string) (int, string) {
		var out, errOut bytes.Buffer
		code := appCommand{Dir: dir}.main(t.Context(), []string{"check", "-root", dir}, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := check(exampleApp); code != 0 || !strings.Contains(out, "generated code: up to date") || !strings.Contains(out, "operations: valid") {
		t.Fatalf("kiln check on the example app: exit %d:\n%s", code, out)
	}

	app := t.TempDir()
	for _, p := range []string{"go.mod", "gqlgen.yml", "migrations/embed.go", "schema", "graph", "ent/schema"} {
		copyTree(t, filepath.Join(exampleApp, p), filepath.Join(app, p))
	}
	schemaFile := filepath.Join(app, "schema", "app.graphql")
	orig, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, app)
	for _, c := range []struct {
		name, schema string
		op           string // an extra operation file's content
		want         []string
	}{
		{"schema error", string(orig) + "\ntype Broken @model { id: ID! title: Strin }\n",
			"", []string{"schema/app.graphql:", "Strin", "schema errors"}},
		{"stale", string(orig) + "\ntype Extra @model { name: String! }\n",
			"", []string{"generated code: ", "out of date; run kiln generate", "graph/", "operations: not checked"}},
		{"operation", string(orig),
			"query Broken { posts { edges { node { nosuchfield } } } }\n", []string{"operations do not match the schema", "nosuchfield"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(schemaFile, []byte(c.schema), 0o644); err != nil {
				t.Fatal(err)
			}
			opFile := filepath.Join(app, "schema", "operations", "zz_check_test.graphql")
			os.Remove(opFile)
			if c.op != "" {
				if err := os.WriteFile(opFile, []byte(c.op), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out := check(app)
			if code != 1 {
				t.Errorf("exit %d, want 1:\n%s", code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			os.Remove(opFile)
			if err := os.WriteFile(schemaFile, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if after := snapshotTree(t, app); after != before {
				t.Errorf("kiln check changed files in the app")
			}
		})
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o755); err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshotTree is every file's path and content under dir, as one string.
func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		c, err := os.ReadFile(p)
		b.WriteString(p + "\n" + string(c) + "\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
