package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/graph"
	"kiln/server/kilntest"
)

// rawAnswer is an HTTP answer with its request id.
type rawAnswer struct {
	Status    int
	Code      string
	RequestID string
	Body      string
}

// send sends req and decodes a GraphQL-shaped error answer.
func send(t *testing.T, req *http.Request) rawAnswer {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var r kilntest.Response
	_ = json.Unmarshal(b, &r)
	return rawAnswer{Status: res.StatusCode, Code: r.Code(), RequestID: res.Header.Get("X-Request-Id"), Body: string(b)}
}

// unsized hides a reader's length so that the client sends it chunked.
type unsized struct{ io.Reader }

// TestMalformedBodies: bodies that are not a GraphQL request (an array, a
// string, truncated JSON, non-object variables, ...) answer 400
// BAD_REQUEST, and a chunked body over KILN_MAX_BODY_BYTES 413
// REQUEST_TOO_LARGE, each logged in at most one line, never as a panic or
// an error with a stack.
func TestMalformedBodies(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		post := func(body io.Reader, hdr map[string]string) rawAnswer {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", body)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			return send(t, req)
		}
		var ids []string
		for _, body := range []string{
			`[]`, `[{"query":"{ __typename }"}]`, `"x"`, `42`, `null`, `{"query":`, `{"query": "{ __typename }"`,
			`{"query": "{ __typename }", "variables": [1]}`, `{"query": "{ __typename }", "variables": "x"}`,
			`{"query": 1}`, `{"query": "{ __typename }", "operationName": {}}`, `{"query": "{ __typename }", "extensions": 3}`, ``,
		} {
			for _, hdr := range []map[string]string{nil, {"Idempotency-Key": "k-" + body}, {"Accept": "text/event-stream"}} {
				a := post(strings.NewReader(body), hdr)
				if a.Status != http.StatusBadRequest || a.Code != "BAD_REQUEST" {
					t.Errorf("body %q (headers %v): want 400 BAD_REQUEST, got %d %s", body, hdr, a.Status, a.Body)
				}
				ids = append(ids, a.RequestID)
			}
		}
		big := func() io.Reader {
			return unsized{io.MultiReader(strings.NewReader(`{"query": "{ __typename }", "x": "`),
				bytes.NewReader(bytes.Repeat([]byte("a"), 2<<20)), strings.NewReader(`"}`))}
		}
		for _, hdr := range []map[string]string{nil, {"Idempotency-Key": "chunked"}} {
			a := post(big(), hdr)
			if a.Status != http.StatusRequestEntityTooLarge || a.Code != "REQUEST_TOO_LARGE" {
				t.Errorf("chunked body over the limit (headers %v): want 413 REQUEST_TOO_LARGE, got %d %s", hdr, a.Status, a.Body)
			}
			ids = append(ids, a.RequestID)
		}
		// A good request still works.
		if r := s.DoAs(t, "", "{ __typename }", nil); len(r.Errors) > 0 {
			t.Fatalf("a good request after bad ones: %+v", r.Errors)
		}
		logs := s.Logs()
		for _, bad := range []string{"panic", "stack=", "level=ERROR", "goroutine "} {
			if strings.Contains(logs, bad) {
				t.Errorf("the log has %q:\n%s", bad, logs)
			}
		}
		for _, id := range ids {
			if n := strings.Count(logs, id); n > 1 {
				t.Errorf("request %s logged in %d lines", id, n)
			}
		}
	})
}

// TestAdminSecretFailures: wrong admin secrets, over HTTP and in the
// WebSocket connection_init, are logged at WARN with the client address
// and request id (never the secret) and limited per client address: past
// KILN_ADMIN_FAIL_BURST failures the address gets 429 RATE_LIMITED for any
// admin secret, even the right one. With Redis the failures are counted
// there.
func TestAdminSecretFailures(t *testing.T) {
	run := func(t *testing.T, env ...string) {
		s := kilntest.Start(t, serverBin, append([]string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret,
			"KILN_ADMIN_FAIL_BURST=3"}, env...)...)
		const wrong = "not-the-admin-secret-guess-1"
		withSecret := func(secret string) rawAnswer {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Kiln-Admin-Secret", secret)
			return send(t, req)
		}
		if a := withSecret(adminSecret); a.Status != 200 {
			t.Fatalf("right secret: %d %s", a.Status, a.Body)
		}
		// Two failures over WebSocket, one over HTTP: within the burst.
		for range 2 {
			if _, err := s.DialE(map[string]any{"X-Kiln-Admin-Secret": wrong}); err == nil || !strings.Contains(err.Error(), "4403") {
				t.Fatalf("wrong secret over WebSocket: %v", err)
			}
		}
		var ids []string
		a := withSecret(wrong)
		if a.Status != http.StatusUnauthorized || a.Code != "UNAUTHENTICATED" {
			t.Fatalf("wrong secret within the burst: %d %s", a.Status, a.Body)
		}
		ids = append(ids, a.RequestID)
		// The fourth failure is limited, and then so is the right secret.
		for _, secret := range []string{wrong, adminSecret} {
			a := withSecret(secret)
			if a.Status != http.StatusTooManyRequests || a.Code != "RATE_LIMITED" {
				t.Fatalf("admin secret past the limit: want 429 RATE_LIMITED, got %d %s", a.Status, a.Body)
			}
		}
		if _, err := s.DialE(map[string]any{"X-Kiln-Admin-Secret": adminSecret}); err == nil {
			t.Fatal("a limited address opened an admin WebSocket")
		}
		// Other requests of the address are not affected.
		if r := s.DoAs(t, "", "{ __typename }", nil); len(r.Errors) > 0 {
			t.Fatalf("request without a secret: %+v", r.Errors)
		}
		logs := s.Logs()
		if strings.Contains(logs, wrong) {
			t.Error("a log line carries the wrong secret")
		}
		var httpLines, wsLines int
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, `msg="wrong admin secret"`) {
				continue
			}
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "client_ip=127.0.0.1") || !requestIDAttr.MatchString(line) {
				t.Errorf("failure line without WARN, client_ip or request_id: %s", line)
			}
			switch {
			case strings.Contains(line, "transport=http"):
				httpLines++
			case strings.Contains(line, "transport=websocket"):
				wsLines++
			}
		}
		if httpLines < 2 || wsLines < 2 {
			t.Errorf("want every failure logged (>= 2 over HTTP, 2 over WebSocket), got %d and %d:\n%s", httpLines, wsLines, logs)
		}
		for _, id := range ids {
			if !strings.Contains(logs, "request_id="+id) {
				t.Errorf("no log line with request_id=%s", id)
			}
		}
	}
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		run(t)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		run(t, "REDIS_URL="+kilntest.PrivateRedis(t).URL)
	})
}

var pidRE = regexp.MustCompile(`process \d+`)

// TestDataDirLock: a second server on the data directory of a running
// SQLite server refuses to start, naming the directory and the other
// process; once the first stops, the directory can be used again.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+dir)
	second, err := kilntest.StartE(serverBin, "KILN_DATA_DIR="+dir)
	if err == nil {
		second.Stop()
		t.Fatal("a second server started on the same data directory")
	}
	msg := err.Error()
	if !strings.Contains(msg, "in use by another Kiln server") || !strings.Contains(msg, dir) || !pidRE.MatchString(msg) {
		t.Fatalf("the refusal should name the directory and the other process: %v", err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	third := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+dir)
	if r := third.DoAs(t, "", "{ __typename }", nil); len(r.Errors) > 0 {
		t.Fatalf("after the first stopped: %+v", r.Errors)
	}
}

// TestSQLiteFilePermissions: the data directory is created 0700 and the
// SQLite files (with -wal and -shm) 0600, like the key files.
func TestSQLiteFilePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+dir)
	signUp(t, s, "perm@example.com") // writes: the WAL exists
	want := map[string]os.FileMode{"": 0o700, "kiln.db": 0o600, "kiln.db-wal": 0o600, "kiln.db-shm": 0o600, "jwt-keys.json": 0o600}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", filepath.Join(dir, name), fi.Mode().Perm(), mode)
		}
	}
}

// TestJWTKeysFormat: KILN_JWT_KEYS takes the README's format {kid, key};
// a wrong value is refused with an error stating that format.
func TestJWTKeysFormat(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := `[{"kid": "readme-1", "key": "` + base64.StdEncoding.EncodeToString(priv.Seed()) + `"}]`
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ENV=production", "KILN_JWT_KEYS="+keys)
	u := signUp(t, s, "keys@example.com")
	s.MustDoAs(t, u.AccessToken, `{ viewer { id } }`, nil, nil)
	res, err := http.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"kid":"readme-1"`) {
		t.Fatalf("JWKS lacks the configured kid: %s", b)
	}
	for _, bad := range []string{"nonsense", `[{"kid": "x"}]`} {
		err := Run(t.Context(), graph.App(), []string{"-data-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, func(k string) string {
			switch k {
			case "KILN_ENV":
				return "production"
			case "KILN_JWT_KEYS":
				return bad
			}
			return ""
		}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `{"kid": "...", "key": "<base64 Ed25519 seed>"}`) {
			t.Errorf("KILN_JWT_KEYS=%s: want an error stating the format, got %v", bad, err)
		}
	}
}

// TestTimeouts: with short read, write and idle timeouts a client sending
// its body slowly is cut off and an idle keep-alive connection is closed,
// while a WebSocket subscription and a Server-Sent Events stream outlive
// them.
func TestTimeouts(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_READ_TIMEOUT=1s", "KILN_WRITE_TIMEOUT=1s", "KILN_IDLE_TIMEOUT=1s")
	// A pooled keep-alive connection may be closed by the 1 s idle timeout
	// just as a request goes out on it (EOF on a POST, which is not
	// retried): one connection per request.
	s.Client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	addr := strings.TrimPrefix(s.URL, "http://")

	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const size = 200
		if _, err := io.WriteString(conn, "POST /graphql HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		answered := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, conn) // a response or the close
			close(answered)
		}()
		sent := 0
	send:
		for ; sent < size; sent++ {
			select {
			case <-answered:
				break send
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				break
			}
		}
		if sent == size {
			t.Fatalf("the server waited for all %d bytes of a slow body", size)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: kiln\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("healthz: %v", err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		// Idle: the server closes the connection (EOF), long before this
		// guard deadline.
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = br.ReadByte()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("the idle connection was not closed by the server: %v", err)
		}
	})

	t.Run("streams outlive the timeouts", func(t *testing.T) {
		u, p := profileFor(t, s, "tim")
		w := s.Dial(t, map[string]any{"accessToken": u.AccessToken})
		sub := w.Subscribe(t, `subscription { postCreated { body } }`, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"subscription { postCreated { body } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+u.AccessToken)
		res, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		got := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "after the timeouts") {
					got <- true
					return
				}
			}
			got <- false
		}()
		time.Sleep(2500 * time.Millisecond) // past the read, write and idle timeouts
		s.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "after the timeouts"}) { id } }`, map[string]any{"a": p}, nil)
		if m, ok := kilntest.Next(sub, 10*time.Second); !ok || !strings.Contains(string(m.Payload), "after the timeouts") {
			t.Errorf("the WebSocket subscription did not outlive the timeouts: %+v %v (close %d)", m, ok, w.CloseCode)
		}
		if !<-got {
			t.Error("the SSE stream did not outlive the timeouts")
		}
	})
}
