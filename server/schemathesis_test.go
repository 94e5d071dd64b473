package server

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// Settings of TestSchemathesis. The seed fixes the generated cases; the
// examples bound them (per operation, per pass). There is no wall-clock
// budget: a slow machine runs the same cases more slowly, and a hang ends
// at the test binary's deadline (processContext).
const (
	schemathesisSeed           = 20261125
	schemathesisAdminExamples  = 100
	schemathesisAnonExamples   = 50
	schemathesisRequestTimeout = 60 // seconds, one request: a hang guard, not a budget
)

// TestSchemathesis runs schemathesis (PyPI), property-based testing from
// the schema, against a real server on SQLite: it introspects /graphql
// and sends generated queries and mutations for every root field, valid
// and invalid arguments and nested selections (its fuzzing phase; the
// stateful phase is off, as the chains it builds feed server-made ids and
// timestamps back into generation, so its number of cases varies from run
// to run, where the fuzzing phase's is fixed by the seed). Two passes:
// as admin (X-Kiln-Admin-Secret, so the mutations get past the rules and
// write), then as an anonymous client. Every response must pass:
//
//   - kiln_not_a_server_error: no HTTP 5xx, and no GraphQL error that is a
//     server error (INTERNAL_SERVER_ERROR, UNAVAILABLE, TIMEOUT, or no
//     code at all); schemathesis' not_a_server_error with Kiln's
//     client-error codes (UNAUTHENTICATED, NOT_FOUND, ...) allowed;
//   - no_internal_leaks: no panic, goroutine dump, Go file:line, SQLite or
//     PostgreSQL error text, or runtime error in the body.
//
// Both checks are in testdata/schemathesis/hooks.py, with strategies for
// the custom scalars (Time, Cursor, JSON: mostly valid, sometimes not);
// schemathesis.toml beside it has the dictionaries that make creates valid
// often enough to reach the database, with ids of records the test creates
// first. A failure prints schemathesis' report, each failing case shrunk,
// with its response and a curl command that reproduces it against a server
// seeded the same way (the port is that run's), and the server's log.
//
// schemathesis and its dependencies are installed from the pinned
// requirements.txt into testdata/schemathesis/.venv on the first run and
// reused while that file and python3 are unchanged. Without python3 (or
// PyPI, the first time) the test is skipped, unless KILN_REQUIRE_INTEROP=1.
func TestSchemathesis(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "schemathesis"))
	if err != nil {
		t.Fatal(err)
	}
	bin := prepareVenv(t, dir)
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("server is not on loopback: %s", s.URL)
	}
	seedSchemathesis(t, s)
	introspection := schemathesisIntrospectionQuery(t, bin)

	passes := []struct {
		name     string
		admin    bool
		examples int
		args     []string
	}{
		{"admin", true, schemathesisAdminExamples, []string{"--header", "X-Kiln-Admin-Secret: " + adminSecret}},
		// Should a 429 come, waits out its Retry-After and sends again.
		{"anonymous", false, schemathesisAnonExamples, []string{"--rate-limit", "auto"}},
	}
	for _, p := range passes {
		t.Run(p.name, func(t *testing.T) {
			// schemathesis cannot load a schema the server refuses to
			// introspect; say why instead of showing its traceback.
			var r *kilntest.Response
			if p.admin {
				r = s.Do(t, introspection, nil)
			} else {
				r = s.DoAs(t, "", introspection, nil)
			}
			if len(r.Errors) > 0 {
				b, _ := json.Marshal(r.Errors)
				t.Fatalf("the server refuses the introspection query schemathesis sends "+
					"(graphql-core's get_introspection_query(), printed by %s -c 'import graphql; print(graphql.get_introspection_query())'): %s",
					filepath.Join(bin, "python"), b)
			}
			runSchemathesis(t, bin, dir, s.URL+"/graphql", p.examples, p.args...)
		})
	}
}

// seedSchemathesis creates, as admin, the records that the ids in
// testdata/schemathesis/schemathesis.toml name (keep the two in step), so
// that generated creates can refer to existing profiles, posts and
// conversations, and generated reads, updates and deletes find something.
func seedSchemathesis(t *testing.T, s *kilntest.Server) {
	t.Helper()
	const (
		owner1, owner2     = "00000000-0000-4000-8000-0000000000aa", "00000000-0000-4000-8000-0000000000bb"
		profile1, profile2 = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
		post1, post2       = "00000000-0000-4000-8000-000000000101", "00000000-0000-4000-8000-000000000102"
		conversation       = "00000000-0000-4000-8000-000000000201"
	)
	s.MustDo(t, `mutation($o1: ID!, $o2: ID!, $p1: ID!, $p2: ID!, $x1: ID!, $x2: ID!, $c: ID!) {
		p1: createProfile(input: {id: $p1, ownerID: $o1, handle: "seed_one", email: "seed1@example.com", displayName: "Seed One"}) { id }
		p2: createProfile(input: {id: $p2, ownerID: $o2, handle: "seed_two", email: "seed2@example.com", displayName: "Seed Two"}) { id }
		x1: createPost(input: {id: $x1, ownerID: $o1, authorID: $p1, body: "a public post", visibility: PUBLIC}) { id }
		x2: createPost(input: {id: $x2, ownerID: $o2, authorID: $p2, body: "a private post", visibility: PRIVATE}) { id }
		c: createConversation(input: {id: $c, ownerID: $o1, title: "seed", memberIDs: [$p1, $p2]}) { id }
	}`, map[string]any{"o1": owner1, "o2": owner2, "p1": profile1, "p2": profile2, "x1": post1, "x2": post2, "c": conversation}, nil)
}

// schemathesisIntrospectionQuery is the query schemathesis loads a GraphQL
// schema with: graphql-core's standard introspection query.
func schemathesisIntrospectionQuery(t *testing.T, bin string) string {
	t.Helper()
	ctx, cancel := processContext(t)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "python"), "-c", "import graphql; print(graphql.get_introspection_query())")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("graphql-core's introspection query: %v", err)
	}
	return string(out)
}

// runSchemathesis runs one pass of schemathesis against url and fails the
// test when it exits non-zero (a failing check, an error, a timeout).
func runSchemathesis(t *testing.T, bin, dir, url string, examples int, args ...string) {
	t.Helper()
	ctx, cancel := processContext(t)
	defer cancel()
	argv := []string{
		"--config-file", filepath.Join(dir, "schemathesis.toml"),
		"--no-color",
		"run", url,
		"--checks", "kiln_not_a_server_error,no_internal_leaks",
		"--phases", "fuzzing",
		"--max-examples", strconv.Itoa(examples),
		"--seed", strconv.Itoa(schemathesisSeed),
		"--workers", "1", // one request at a time: the same cases in the same order every run
		"--generation-database", "none", // no examples replayed from earlier runs
		"--request-timeout", strconv.Itoa(schemathesisRequestTimeout),
		"--output-sanitize", "false", // reproductions with the headers as sent
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "schemathesis"), argv...)
	cmd.Dir = t.TempDir() // .hypothesis/ and .schemathesis/ go there
	cmd.Env = append(os.Environ(),
		"SCHEMATHESIS_HOOKS="+filepath.Join(dir, "hooks.py"),
		"PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8", "NO_COLOR=1")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start).Round(time.Millisecond)
	shown := "SCHEMATHESIS_HOOKS=" + filepath.Join(dir, "hooks.py") + " " + filepath.Join(bin, "schemathesis")
	for _, a := range argv {
		if strings.ContainsAny(a, " '\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		shown += " " + a
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: stopped after %v at the test's deadline (go test -timeout)\n%s", shown, elapsed, out.String())
	}
	if err != nil {
		t.Fatalf("%s: %v after %v\n%s", shown, err, elapsed, out.String())
	}
	t.Logf("%s: passed in %v\n%s", shown, elapsed, schemathesisSummary(out.String()))
}

// schemathesisSummary is the SUMMARY section of schemathesis' report, or
// all of it when there is none.
func schemathesisSummary(out string) string {
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "=") && strings.Contains(line, " SUMMARY ") {
			return strings.Join(lines[i:], "\n")
		}
	}
	return out
}
