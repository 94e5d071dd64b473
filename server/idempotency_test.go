package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// dbBackends runs fn against a fresh server on SQLite and on PostgreSQL
// (with env added), with a connection to the server's database for tests
// that look at what is stored.
func dbBackends(t *testing.T, env []string, fn func(t *testing.T, s *kilntest.Server, db *sql.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s := kilntest.Start(t, serverBin, append([]string{"KILN_DATA_DIR=" + dir, "KILN_ADMIN_SECRET=" + adminSecret}, env...)...)
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "kiln.db")+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, s, db)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := kilntest.PostgresURL(t)
		s := kilntest.Start(t, serverBin, append([]string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret, "DATABASE_URL=" + url}, env...)...)
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, s, db)
	})
}

// idemRow is a row of kiln_idempotency_keys.
type idemRow struct {
	Scope, Key, RequestHash string
	Done                    bool
	Response                []byte
}

func idemRows(t *testing.T, db *sql.DB) []idemRow {
	t.Helper()
	rows, err := db.Query(`SELECT scope, key, request_hash, done, response FROM kiln_idempotency_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []idemRow
	for rows.Next() {
		var r idemRow
		if err := rows.Scan(&r.Scope, &r.Key, &r.RequestHash, &r.Done, &r.Response); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// keyedAnswer is the answer to a request with an Idempotency-Key.
type keyedAnswer struct {
	Status   int
	Body     []byte
	Replayed bool
}

func (a keyedAnswer) code() string {
	var r kilntest.Response
	_ = json.Unmarshal(a.Body, &r)
	return r.Code()
}

// postKeyed posts a GraphQL request with an Idempotency-Key; token and
// forwardedFor (the client address, with KILN_TRUST_PROXY) may be "".
func postKeyed(t *testing.T, s *kilntest.Server, token, forwardedFor, key, query string, vars map[string]any) keyedAnswer {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return keyedAnswer{}
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return keyedAnswer{Status: res.StatusCode, Body: out, Replayed: res.Header.Get("Idempotent-Replayed") == "true"}
}

// TestIdempotencyKeys: the same key sent 100 times concurrently creates one
// record and every retry gets the same answer; the same key with another
// request is refused. The table holds the key's hash, never the key.
func TestIdempotencyKeys(t *testing.T) {
	dbBackends(t, nil, func(t *testing.T, s *kilntest.Server, db *sql.DB) {
		u, p := profileFor(t, s, "hana")
		post := func(key, body string) (int, []byte) {
			a := postKeyed(t, s, u.AccessToken, "", key, `mutation($a: ID!, $b: String!) { createPost(input: {authorID: $a, body: $b}) { id } }`,
				map[string]any{"a": p, "b": body})
			return a.Status, a.Body
		}
		var wg sync.WaitGroup
		bodies := make([][]byte, 100)
		for i := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, b := post("key-1", "once")
				if status != 200 {
					t.Errorf("status %d: %s", status, b)
				}
				bodies[i] = b
			}()
		}
		wg.Wait()
		for i := range bodies {
			if !bytes.Equal(bodies[i], bodies[0]) {
				t.Fatalf("responses differ: %s vs %s", bodies[i], bodies[0])
			}
		}
		if n := total(t, s, u.AccessToken, `{ posts(where: {body: "once"}) { totalCount } }`, nil); n != 1 {
			t.Fatalf("%d posts created for one Idempotency-Key", n)
		}
		status, b := post("key-1", "different")
		if status != http.StatusUnprocessableEntity || !bytes.Contains(b, []byte("IDEMPOTENCY_KEY_REUSED")) {
			t.Fatalf("reused key: %d %s", status, b)
		}
		if status, _ := post("key-2", "twice"); status != 200 {
			t.Fatalf("new key: %d", status)
		}
		sum := sha256.Sum256([]byte("key-1"))
		found := false
		for _, r := range idemRows(t, db) {
			if r.Key == "key-1" || r.Key == "key-2" {
				t.Errorf("the table holds the raw key %q", r.Key)
			}
			found = found || r.Key == hex.EncodeToString(sum[:])
		}
		if !found {
			t.Error("no row with the SHA-256 of key-1")
		}
	})
}

// TestIdempotencyAnonymousScope: requests without a token are scoped to
// their client address: another address replaying a victim's
// signInAnonymously key runs its own sign-in instead of receiving the
// victim's tokens, and the stored response holds no token text.
func TestIdempotencyAnonymousScope(t *testing.T) {
	dbBackends(t, []string{"KILN_TRUST_PROXY=true"}, func(t *testing.T, s *kilntest.Server, db *sql.DB) {
		const q = `mutation { signInAnonymously { accessToken refreshToken user { id } } }`
		tokens := func(a keyedAnswer) session {
			t.Helper()
			var out struct {
				Data struct{ SignInAnonymously session }
			}
			if err := json.Unmarshal(a.Body, &out); err != nil || a.Status != 200 || out.Data.SignInAnonymously.AccessToken == "" {
				t.Fatalf("signInAnonymously: %d %s", a.Status, a.Body)
			}
			return out.Data.SignInAnonymously
		}
		victim := postKeyed(t, s, "", "203.0.113.7", "anon-key", q, nil)
		v := tokens(victim)
		if victim.Replayed {
			t.Fatal("the first request was marked as replayed")
		}
		// The victim's own retry is replayed.
		retry := postKeyed(t, s, "", "203.0.113.7", "anon-key", q, nil)
		if !retry.Replayed || !bytes.Equal(retry.Body, victim.Body) {
			t.Fatalf("the victim's retry was not replayed: %+v", retry)
		}
		// Another address with the same key signs in on its own.
		other := postKeyed(t, s, "", "203.0.113.99", "anon-key", q, nil)
		o := tokens(other)
		if other.Replayed || o.AccessToken == v.AccessToken || o.RefreshToken == v.RefreshToken || o.User.ID == v.User.ID {
			t.Fatalf("another address got the victim's answer: replayed=%v", other.Replayed)
		}
		rows := idemRows(t, db)
		if len(rows) != 2 {
			t.Fatalf("%d rows, want one per address", len(rows))
		}
		for _, r := range rows {
			for what, secret := range map[string]string{"access token": v.AccessToken, "refresh token": v.RefreshToken,
				"other access token": o.AccessToken, "other refresh token": o.RefreshToken, "user id": v.User.ID, "key": "anon-key"} {
				if bytes.Contains(r.Response, []byte(secret)) || strings.Contains(r.Key, secret) || strings.Contains(r.Scope, secret) {
					t.Errorf("a stored row contains the %s", what)
				}
			}
			if !r.Done || len(r.Response) == 0 {
				t.Errorf("row not stored: %+v", r)
			}
		}
	})
}

// TestIdempotencySSE: Server-Sent Events requests (a subscription stream
// and a mutation) with an Idempotency-Key pass through: nothing is kept.
func TestIdempotencySSE(t *testing.T) {
	dbBackends(t, nil, func(t *testing.T, s *kilntest.Server, db *sql.DB) {
		u, p := profileFor(t, s, "ivy")
		before := len(idemRows(t, db))

		// SSE: a subscription stream and a mutation.
		sse := func(key, query string, read func(*bufio.Scanner)) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			b, _ := json.Marshal(map[string]any{"query": query, "variables": map[string]any{"a": p}})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+u.AccessToken)
			req.Header.Set("Idempotency-Key", key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				b, _ := io.ReadAll(res.Body)
				t.Errorf("SSE %s: %d %q %s", key, res.StatusCode, ct, b)
				return
			}
			read(bufio.NewScanner(res.Body))
		}
		got := make(chan bool, 1)
		go func() {
			sse("sse-sub", `subscription { postCreated { body } }`, func(sc *bufio.Scanner) {
				for sc.Scan() {
					if strings.Contains(sc.Text(), "streamed") {
						got <- true
						return // closes the stream
					}
				}
				got <- false
			})
		}()
		time.Sleep(300 * time.Millisecond)
		s.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "streamed"}) { id } }`, map[string]any{"a": p}, nil)
		if !<-got {
			t.Fatal("no SSE event")
		}
		for range 2 {
			sse("sse-mut", `mutation($a: ID!) { createPost(input: {authorID: $a, body: "sse mutation"}) { id } }`, func(sc *bufio.Scanner) {
				for sc.Scan() {
					if strings.Contains(sc.Text(), "complete") {
						return
					}
				}
			})
		}
		// Let the subscription's handler finish before counting.
		time.Sleep(300 * time.Millisecond)
		if n := len(idemRows(t, db)); n != before {
			t.Fatalf("SSE requests with an Idempotency-Key were stored: %d rows, want %d", n, before)
		}
	})
}

// TestIdempotencyLargeResponse: a response over KILN_IDEMPOTENCY_MAX_BYTES
// is not kept, but the mutation still runs once: its retry is told so
// (409 IDEMPOTENCY_RESPONSE_TOO_LARGE).
func TestIdempotencyLargeResponse(t *testing.T) {
	dbBackends(t, []string{"KILN_IDEMPOTENCY_MAX_BYTES=512"}, func(t *testing.T, s *kilntest.Server, db *sql.DB) {
		u, p := profileFor(t, s, "joy")

		// A response over 512 bytes: the mutation runs once, the retry is
		// told, and no response is stored.
		long := strings.Repeat("long ", 200)
		create := `mutation($a: ID!, $b: String!) { createPost(input: {authorID: $a, body: $b}) { id body } }`
		first := postKeyed(t, s, u.AccessToken, "", "big", create, map[string]any{"a": p, "b": long})
		if first.Status != 200 || !bytes.Contains(first.Body, []byte(long)) {
			t.Fatalf("large mutation: %d %s", first.Status, first.Body)
		}
		again := postKeyed(t, s, u.AccessToken, "", "big", create, map[string]any{"a": p, "b": long})
		if again.Status != http.StatusConflict || again.code() != "IDEMPOTENCY_RESPONSE_TOO_LARGE" {
			t.Fatalf("retry of a large mutation: %d %s", again.Status, again.Body)
		}
		if n := total(t, s, u.AccessToken, `query($b: String!) { posts(where: {body: $b}) { totalCount } }`, map[string]any{"b": long}); n != 1 {
			t.Fatalf("the large mutation ran %d times", n)
		}
		for _, r := range idemRows(t, db) {
			if len(r.Response) > 600 {
				t.Errorf("a stored response has %d bytes, over the 512-byte limit", len(r.Response))
			}
		}

	})
}

// TestIdempotencyRetryable: a retryable answer (RATE_LIMITED) is not kept
// nor replayed: the key is released and a retry runs again.
func TestIdempotencyRetryable(t *testing.T) {
	dbBackends(t, nil, func(t *testing.T, s *kilntest.Server, db *sql.DB) {
		// Sign-in attempts until the limit.
		const signIn = `mutation { signIn(input: {email: "nobody@example.com", password: "wrong password here"}) { accessToken } }`
		limited := false
		for range 60 {
			if r := s.DoAs(t, "", signIn, nil); r.Code() == "RATE_LIMITED" {
				limited = true
				break
			}
		}
		if !limited {
			t.Fatal("sign-in attempts were never rate limited")
		}
		rows := len(idemRows(t, db))
		a := postKeyed(t, s, "", "", "limited", signIn, nil)
		if a.code() != "RATE_LIMITED" {
			t.Fatalf("keyed sign-in while limited: %d %s", a.Status, a.Body)
		}
		if n := len(idemRows(t, db)); n != rows {
			t.Fatalf("a RATE_LIMITED answer was stored (%d rows, want %d)", n, rows)
		}
		if b := postKeyed(t, s, "", "", "limited", signIn, nil); b.Replayed {
			t.Fatalf("a RATE_LIMITED answer was replayed: %s", b.Body)
		}
	})
}

// TestIdempotencyMultipart: an upload (a multipart mutation) retried with
// the same Idempotency-Key is replayed even when the client encodes it
// again with another multipart boundary.
func TestIdempotencyMultipart(t *testing.T) {
	dbBackends(t, nil, func(t *testing.T, s *kilntest.Server, db *sql.DB) {
		u := signUp(t, s, "mp@example.com")
		img := randomBytes(2 << 20) // spooled past the in-memory part
		send := func() keyedAnswer {
			var buf bytes.Buffer
			w := multipart.NewWriter(&buf) // a new random boundary each time
			w.WriteField("operations", `{"query":"mutation($f: Upload!) { uploadFile(file: $f) { id size } }","variables":{"f":null}}`)
			w.WriteField("map", `{"0":["variables.f"]}`)
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="0"; filename="photo.png"`)
			h.Set("Content-Type", "image/png")
			pw, _ := w.CreatePart(h)
			pw.Write(img)
			w.Close()
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", &buf)
			req.Header.Set("Content-Type", w.FormDataContentType())
			req.Header.Set("Authorization", "Bearer "+u.AccessToken)
			req.Header.Set("Idempotency-Key", "upload-1")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return keyedAnswer{Status: res.StatusCode, Body: b, Replayed: res.Header.Get("Idempotent-Replayed") == "true"}
		}
		first := send()
		if first.Status != 200 || !bytes.Contains(first.Body, []byte(`"size":2097152`)) {
			t.Fatalf("upload: %d %s", first.Status, first.Body)
		}
		again := send()
		if again.Status != 200 || !again.Replayed || !bytes.Equal(again.Body, first.Body) {
			t.Fatalf("retried upload: %d replayed=%v %s", again.Status, again.Replayed, again.Body)
		}
	})
}
