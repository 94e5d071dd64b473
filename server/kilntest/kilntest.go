// Package kilntest starts real Kiln server binaries for end-to-end tests and
// talks GraphQL to them over HTTP. It also hands out throwaway PostgreSQL
// databases from KILN_TEST_POSTGRES_URL.
package kilntest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
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

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for creating test databases
)

// Build compiles the Go package at dir into a binary under a new temp
// directory and returns its path; the caller removes filepath.Dir(bin)
// when done. Tests use BuildT, which does that for them.
func Build(dir string, extraEnv ...string) (string, error) {
	out, err := os.MkdirTemp("", "kiln-bin-")
	if err != nil {
		return "", err
	}
	bin := out + "/kiln"
	if err := build(dir, bin, extraEnv); err != nil {
		os.RemoveAll(out)
		return "", err
	}
	return bin, nil
}

// BuildT compiles the Go package at dir into the test's temp directory
// (removed when the test ends) and returns the binary's path; a failed
// build fails the test.
func BuildT(t testing.TB, dir string, extraEnv ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kiln")
	if err := build(dir, bin, extraEnv); err != nil {
		t.Fatal(err)
	}
	return bin
}

func build(dir, bin string, extraEnv []string) error {
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %v\n%s", dir, err, b)
	}
	return nil
}

// Server is a running server process.
type Server struct {
	URL string // http://127.0.0.1:port
	// AdminSecret, taken from KILN_ADMIN_SECRET in the environment given to
	// Start, is sent by Do and MustDo: those run as admin.
	AdminSecret string
	// Client sends Do, DoAs, MustDo and Get; nil means
	// http.DefaultClient. A test of short idle timeouts sets one without
	// keep-alives, so that no request races the server closing an idle
	// pooled connection.
	Client *http.Client
	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   bytes.Buffer
	done   chan struct{}
}

var readyRE = regexp.MustCompile(`kiln ready.*addr=(\S+)`)

// Start runs bin with a random loopback port and the given environment
// (KEY=VALUE), waits until it is ready, and stops it when the test ends.
func Start(t testing.TB, bin string, env ...string) *Server {
	t.Helper()
	s, err := StartE(bin, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop server: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Logs())
		}
	})
	return s
}

// StartE is Start without a test.
func StartE(bin string, env ...string) (*Server, error) {
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	// Tests make many quick requests from one address: no request rate
	// limits unless a test sets them (its own values come later and win).
	cmd.Env = append(os.Environ(), "KILN_LOG_LEVEL=info", "KILN_RATE_PER_IP=inf", "KILN_RATE_PER_USER=inf", "REDIS_URL=")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// Standard output (traces with OTEL_TRACES_EXPORTER=console) joins the log.
	s := &Server{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = lockedWriter{s}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "KILN_ADMIN_SECRET="); ok {
			s.AdminSecret = v
		}
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case addr := <-ready:
		s.URL = "http://" + addr
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("server exited before it was ready:\n%s", s.Logs())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("server not ready after 60s:\n%s", s.Logs())
	}
}

// Logs returns what the server wrote to stderr.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// Stop sends SIGTERM and waits up to 20s for a clean exit.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("server exited with %d", code)
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("server did not stop within 20s")
	}
}

// Kill kills the server with SIGKILL (no shutdown at all) and waits for
// it to be gone.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Response is a GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
}

// Error is a GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code returns extensions.code of the first error, or "".
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Decode unmarshals data into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// Do posts a GraphQL request as admin (when the server has an admin
// secret) and returns the response.
func (s *Server) Do(t testing.TB, query string, vars map[string]any) *Response {
	t.Helper()
	req := s.request(query, vars)
	if s.AdminSecret != "" {
		req.Header.Set("X-Kiln-Admin-Secret", s.AdminSecret)
	}
	return s.send(t, req)
}

// DoAs posts a GraphQL request with a bearer token; "" sends none.
func (s *Server) DoAs(t testing.TB, token, query string, vars map[string]any) *Response {
	t.Helper()
	req := s.request(query, vars)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return s.send(t, req)
}

// MustDoAs is DoAs that fails the test on any GraphQL error.
func (s *Server) MustDoAs(t testing.TB, token, query string, vars map[string]any, out any) {
	t.Helper()
	r := s.DoAs(t, token, query, vars)
	if len(r.Errors) > 0 {
		b, _ := json.Marshal(r.Errors)
		t.Fatalf("unexpected errors: %s\nquery: %s", b, query)
	}
	if out != nil {
		r.Decode(t, out)
	}
}

func (s *Server) request(query string, vars map[string]any) *http.Request {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// Get sends a GraphQL query with GET.
func (s *Server) Get(t testing.TB, query string, vars map[string]any) *Response {
	t.Helper()
	q := url.Values{"query": {query}}
	if vars != nil {
		b, _ := json.Marshal(vars)
		q.Set("variables", string(b))
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/graphql?"+q.Encode(), nil)
	if s.AdminSecret != "" {
		req.Header.Set("X-Kiln-Admin-Secret", s.AdminSecret)
	}
	return s.send(t, req)
}

func (s *Server) send(t testing.TB, req *http.Request) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("graphql request: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := &Response{Status: res.StatusCode}
	if err := json.Unmarshal(b, r); err != nil {
		t.Fatalf("graphql response (status %d) is not JSON: %s", res.StatusCode, b)
	}
	return r
}

// MustDo is Do that fails the test on any GraphQL error.
func (s *Server) MustDo(t testing.TB, query string, vars map[string]any, out any) {
	t.Helper()
	r := s.Do(t, query, vars)
	if len(r.Errors) > 0 {
		b, _ := json.Marshal(r.Errors)
		t.Fatalf("unexpected errors: %s\nquery: %s", b, query)
	}
	if out != nil {
		r.Decode(t, out)
	}
}

// Metric reads one unlabelled counter or gauge from /metrics.
func (s *Server) Metric(t testing.TB, name string) float64 {
	t.Helper()
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, name)), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// PostgresURL returns the URL of a fresh, empty database on the server in
// KILN_TEST_POSTGRES_URL, dropped when the test ends. Without that variable
// the test is skipped, or fails when KILN_REQUIRE_POSTGRES=1.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("KILN_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("KILN_REQUIRE_POSTGRES") == "1" {
			t.Fatal("KILN_REQUIRE_POSTGRES=1 but KILN_TEST_POSTGRES_URL is not set")
		}
		t.Skip("PostgreSQL test skipped: set KILN_TEST_POSTGRES_URL (start one with: export KILN_TEST_POSTGRES_URL=$(.ci/pg.sh start))")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kiln_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.logs.Write(b)
}
