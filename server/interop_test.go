package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// processContext bounds an external process (an install, a client,
// schemathesis) by the test binary's own deadline (go test -timeout) less
// a minute to report, not by a budget of its own: on a loaded machine a
// run is slow but passes, and a hang still ends with the output so far.
func processContext(t *testing.T) (context.Context, context.CancelFunc) {
	if d, ok := t.Deadline(); ok {
		return context.WithDeadline(t.Context(), d.Add(-time.Minute))
	}
	return context.WithCancel(t.Context())
}

// TestInteropClients runs two third-party graphql-transport-ws clients, the
// reference graphql-ws npm client (testdata/interop/client.mjs) and Python's
// gql with its websockets transport (testdata/interop/client.py), against a
// real server: each subscribes to postCreated as a signed-in user, receives
// the 3 posts the test creates, and sees a bad token refused with 4403.
//
// The clients' packages are installed from the pinned package-lock.json and
// requirements.txt into testdata/interop/node_modules and
// testdata/interop/.venv on the first run and reused while those files are
// unchanged. Without node/npm or python3 (or the registries, the first time)
// a client's subtest is skipped, unless KILN_REQUIRE_INTEROP=1 (CI).
func TestInteropClients(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("server is not on loopback: %s", s.URL)
	}
	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
	u, profileID := profileFor(t, s, "interop")

	clients := []struct {
		name    string
		prepare func(t *testing.T, dir string) []string // the command line, less its two arguments
	}{
		{"node-graphql-ws", prepareNodeClient},
		{"python-gql", preparePythonClient},
	}
	// One after the other: every subscriber sees every public post.
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			argv := c.prepare(t, dir)
			waitSubscriptions(t, s, func(n float64) bool { return n == 0 }) // the previous client's is gone
			runInteropClient(t, s, dir, append(argv, wsURL, u.AccessToken), u.AccessToken, profileID, c.name)
		})
	}
}

// interopUnavailable skips the test, or fails it when KILN_REQUIRE_INTEROP=1.
func interopUnavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("KILN_REQUIRE_INTEROP") == "1" {
		t.Fatalf("interop unavailable (KILN_REQUIRE_INTEROP=1): "+format, args...)
	}
	t.Skipf("interop unavailable: "+format, args...)
}

// interopStamp is the fingerprint of an install: the files it came from
// and anything else it depends on.
func interopStamp(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// installed reports whether stampFile holds stamp.
func installed(stampFile, stamp string) bool {
	b, err := os.ReadFile(stampFile)
	return err == nil && strings.TrimSpace(string(b)) == stamp
}

// runInstall runs one install step; a failure
// (no registry, for one) makes the client unavailable.
func runInstall(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := processContext(t)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("stopped after %v at the test's deadline (go test -timeout)", time.Since(start).Round(time.Second))
	}
	if err != nil {
		interopUnavailable(t, "%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// prepareNodeClient installs node_modules with npm ci from package-lock.json
// unless an install from the same lockfile is there.
func prepareNodeClient(t *testing.T, dir string) []string {
	node, err := exec.LookPath("node")
	if err != nil {
		interopUnavailable(t, "node not found: %v", err)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	stamp := interopStamp(lock)
	stampFile := filepath.Join(dir, "node_modules", ".kiln-interop-stamp")
	if installed(stampFile, stamp) {
		t.Log("node_modules: reusing the install from package-lock.json")
	} else {
		npm, err := exec.LookPath("npm")
		if err != nil {
			interopUnavailable(t, "npm not found: %v", err)
		}
		runInstall(t, dir, []string{"npm_config_update_notifier=false"}, npm, "ci",
			"--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline",
			"--fetch-retries=1", "--fetch-retry-maxtimeout=10000", "--fetch-timeout=30000")
		if err := os.WriteFile(stampFile, []byte(stamp+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{node, "client.mjs"}
}

// preparePythonClient prepares the venv of the Python interop client.
func preparePythonClient(t *testing.T, dir string) []string {
	return []string{filepath.Join(prepareVenv(t, dir), "python"), "client.py"}
}

// prepareVenv creates dir/.venv with python3 -m venv and installs
// dir/requirements.txt into it, unless a venv from the same requirements
// and the same python3 is there. It returns the venv's bin directory.
func prepareVenv(t *testing.T, dir string) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		interopUnavailable(t, "python3 not found: %v", err)
	}
	ctx, cancel := processContext(t)
	defer cancel()
	version, err := exec.CommandContext(ctx, python, "-c", "import sys; print(sys.version); print(sys.base_prefix)").Output()
	if err != nil {
		interopUnavailable(t, "python3 does not run: %v", err)
	}
	reqs, err := os.ReadFile(filepath.Join(dir, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join(dir, ".venv")
	bin := filepath.Join(venv, "bin")
	stamp := interopStamp(reqs, version)
	stampFile := filepath.Join(venv, ".kiln-stamp")
	if _, err := os.Stat(filepath.Join(bin, "python")); err == nil && installed(stampFile, stamp) {
		t.Logf("%s: reusing the install from requirements.txt", venv)
		return bin
	}
	if err := os.RemoveAll(venv); err != nil {
		t.Fatal(err)
	}
	runInstall(t, dir, nil, python, "-m", "venv", venv)
	runInstall(t, dir, []string{"PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1"}, filepath.Join(bin, "python"), "-m", "pip", "install",
		"--quiet", "--retries=1", "--timeout=30", "-r", "requirements.txt")
	if err := os.WriteFile(stampFile, []byte(stamp+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return bin
}

// runInteropClient runs one client, creates 3 public posts once it says
// "ready", and checks what it printed.
func runInteropClient(t *testing.T, s *kilntest.Server, dir string, argv []string, token, profileID, name string) {
	ctx, cancel := processContext(t)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	cmd.WaitDelay = 5 * time.Second
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() { // on any early exit: kill and reap the client
		if !waited {
			cancel()
			_ = cmd.Wait()
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		cancel()
		_ = cmd.Wait()
		waited = true
		t.Fatalf("%s: "+format+"\nstderr:\n%s", append(append([]any{name}, args...), stderr.String())...)
	}

	var got struct {
		BadTokenClose json.RawMessage `json:"badTokenClose"`
		Events        []struct {
			ID   string `json:"id"`
			Body string `json:"body"`
		} `json:"events"`
	}
	var wantIDs, wantBodies []string
	ready := false
	for line := range lines {
		t.Logf("%s: %s", name, line)
		if line == "ready" {
			if ready {
				fail(`"ready" printed twice`)
			}
			ready = true
			waitSubscriptions(t, s, func(n float64) bool { return n >= 1 })
			for i := 1; i <= 3; i++ {
				body := fmt.Sprintf("%s post %d", name, i)
				var c struct{ CreatePost struct{ ID string } }
				s.MustDoAs(t, token, `mutation($a: ID!, $b: String!) { createPost(input: {authorID: $a, body: $b, visibility: PUBLIC}) { id } }`,
					map[string]any{"a": profileID, "b": body}, &c)
				wantIDs = append(wantIDs, c.CreatePost.ID)
				wantBodies = append(wantBodies, body)
			}
			continue
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			fail("output line %q is neither \"ready\" nor JSON: %v", line, err)
		}
	}
	err = cmd.Wait()
	waited = true
	if ctx.Err() != nil {
		t.Fatalf("%s: stopped after %v at the test's deadline (go test -timeout)\nstderr:\n%s", name, time.Since(start).Round(time.Second), stderr.String())
	}
	if err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", name, err, stderr.String())
	}
	t.Logf("%s: ran in %v", name, time.Since(start).Round(time.Millisecond))

	if string(got.BadTokenClose) != "4403" {
		t.Errorf("%s: bad token: close %s, want 4403", name, got.BadTokenClose)
	}
	if !ready {
		t.Fatalf("%s: never printed \"ready\"", name)
	}
	var gotIDs, gotBodies []string
	for _, e := range got.Events {
		gotIDs = append(gotIDs, e.ID)
		gotBodies = append(gotBodies, e.Body)
	}
	if strings.Join(gotBodies, "\n") != strings.Join(wantBodies, "\n") || strings.Join(gotIDs, "\n") != strings.Join(wantIDs, "\n") {
		t.Errorf("%s: events %+v, want bodies %q with ids %q", name, got.Events, wantBodies, wantIDs)
	}
}

// waitSubscriptions waits up to 5s until the server's
// kiln_subscriptions_active gauge satisfies ok. The clients print "ready"
// once the server has read their subscribe message (a ping after it was
// answered), but the server subscribes to the event bus in the operation's
// own goroutine, a moment later: the gauge counts subscriptions from that
// point. A server without the gauge gets a fixed grace period instead.
func waitSubscriptions(t *testing.T, s *kilntest.Server, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, found := subscriptionsActive(t, s)
		if !found {
			time.Sleep(300 * time.Millisecond)
			return
		}
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln_subscriptions_active stayed at %v", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscriptionsActive reads kiln_subscriptions_active from /metrics.
func subscriptionsActive(t *testing.T, s *kilntest.Server) (float64, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/metrics", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "kiln_subscriptions_active "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("kiln_subscriptions_active %q: %v", v, err)
			}
			return n, true
		}
	}
	return 0, false
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine of exec and
// a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
