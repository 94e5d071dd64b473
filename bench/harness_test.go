package bench

// Process and database helpers for the benchmarks. The server start/stop code
// is a trimmed copy of server/internal/kilntest, which code outside server/
// cannot import.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	// Re-executed as the out-of-process baseline server (see baseline_test.go).
	if os.Getenv(baselineServeEnv) != "" {
		os.Exit(serveBaselineProcess())
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	for _, d := range cleanupDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// moduleRoot is the directory holding kiln's go.mod (the parent of bench/).
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module kiln\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("cannot find kiln's go.mod above the working directory")
		}
		dir = parent
	}
}

// cleanupDirs are temp directories shared by all rounds of a benchmark,
// removed when the test binary exits.
var cleanupDirs []string

var (
	buildOnce sync.Once
	buildDir  string
	serverBin string
	buildErr  error
)

// kilnBinary builds the example server (the module root) once per test binary run (outside any timer:
// callers call it before b.ResetTimer or before timed sections), or returns
// $KILN_BENCH_SERVER_BIN when set.
func kilnBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("KILN_BENCH_SERVER_BIN"); bin != "" {
		// A prebuilt server, e.g. one built with profiling enabled.
		return bin
	}
	root := moduleRoot(tb)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kiln-bench-bin-")
		if buildErr != nil {
			return
		}
		serverBin = filepath.Join(buildDir, "kiln")
		cmd := exec.Command("go", "build", "-o", serverBin, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build .: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return serverBin
}

// server is a running server process (Kiln, or the re-executed baseline).
type server struct {
	URL  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	logs bytes.Buffer
	// Startup is what the server reported in its ready line (startup=...),
	// zero when absent.
	Startup time.Duration
}

var (
	readyRE   = regexp.MustCompile(`(?:kiln|baseline) ready.*addr=(\S+)`)
	startupRE = regexp.MustCompile(`startup=(\S+)`)
)

// startServer runs bin with args and env (KEY=VALUE, added to ours) and
// waits for its ready line on stderr. The server is stopped in tb.Cleanup.
func startServer(tb testing.TB, bin string, args []string, env ...string) *server {
	tb.Helper()
	s, err := startProcess(bin, args, env)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("stop %s: %v\n%s", bin, err, s.Logs())
		}
	})
	return s
}

// startProcess starts bin and returns once it printed its ready line. The
// time between the call and the return is what BenchmarkColdStart measures:
// the ready line is read on the calling goroutine.
func startProcess(bin string, args, env []string) (*server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	stopWithParent(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	// Bound the wait: kill the process if it is not ready in time, which
	// makes the scanner below see EOF.
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	addr := ""
	for addr == "" && sc.Scan() {
		line := sc.Text()
		s.log(line)
		if m := readyRE.FindStringSubmatch(line); m != nil {
			addr = m[1]
			if m := startupRE.FindStringSubmatch(line); m != nil {
				s.Startup, _ = time.ParseDuration(m[1])
			}
		}
	}
	timer.Stop()
	if addr == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s exited or timed out before it was ready:\n%s", bin, s.Logs())
	}
	s.URL = "http://" + addr
	go func() {
		for sc.Scan() {
			s.log(sc.Text())
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// pid is the server's process id, or 0 for an in-process server.
func (s *server) pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *server) log(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs.Len() > 1<<20 { // keep memory bounded
		s.logs.Reset()
		s.logs.WriteString("[earlier log lines dropped]\n")
	}
	s.logs.WriteString(line + "\n")
}

// Logs returns what the process wrote to stderr.
func (s *server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// stop sends SIGTERM and waits up to 20s for a clean exit, then kills.
func (s *server) stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("exited with status %d", code)
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("did not stop within 20s after SIGTERM; killed")
	}
}

// gqlResponse is a GraphQL response.
type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// do posts one GraphQL request and decodes data into out (if non-nil); any
// transport, HTTP or GraphQL error is returned.
func do(ctx context.Context, client *http.Client, endpoint, query string, vars map[string]any, out any) error {
	return doHeader(ctx, client, endpoint, query, vars, out, nil)
}

// doHeader is do with extra request headers.
func doHeader(ctx context.Context, client *http.Client, endpoint, query string, vars map[string]any, out any, header http.Header) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kiln-Admin-Secret", benchAdminSecret)
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var r gqlResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("status %d, response is not JSON: %.500s", res.StatusCode, b)
	}
	if len(r.Errors) > 0 || res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, errors: %.500s", res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

// metric reads one unlabelled counter or gauge from a Kiln /metrics page.
func metric(tb testing.TB, client *http.Client, baseURL, name string) float64 {
	tb.Helper()
	res, err := client.Get(baseURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	tb.Fatalf("metric %s not found at %s/metrics", name, baseURL)
	return 0
}

// newClient returns an HTTP client that keeps enough idle connections for
// the parallel benchmark workers (loopback, no compression).
func newClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// postgresBaseURL returns the admin URL of the benchmark PostgreSQL server,
// or skips the benchmark.
func postgresBaseURL(tb testing.TB) string {
	tb.Helper()
	for _, k := range []string{"KILN_BENCH_POSTGRES_URL", "KILN_TEST_POSTGRES_URL"} {
		if u := os.Getenv(k); u != "" {
			return u
		}
	}
	tb.Skip("PostgreSQL benchmark skipped: set KILN_BENCH_POSTGRES_URL or KILN_TEST_POSTGRES_URL " +
		"(start a throwaway server with: export KILN_TEST_POSTGRES_URL=$(.ci/pg.sh start))")
	return ""
}

// freshDatabase creates an empty database kiln_bench_<random> on the server
// at base, returns its URL, and drops it (WITH FORCE) in tb.Cleanup.
func freshDatabase(tb testing.TB, base string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", redactURL(base), err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kiln_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer a.Close(context.Background())
		if _, err := a.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}
