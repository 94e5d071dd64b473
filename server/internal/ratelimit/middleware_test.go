package ratelimit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// okHandler counts the requests that got through.
type okHandler struct{ n int }

func (h *okHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.n++
	w.Write([]byte(`{"data":{}}`))
}

// headerKeys takes the client address and user from test headers.
func headerKeys(r *http.Request) (string, string) {
	return r.Header.Get("X-Test-IP"), r.Header.Get("X-Test-User")
}

func do(h http.Handler, ip, user string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("X-Test-IP", ip)
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkLimited checks the 429 answer: Retry-After and the GraphQL error.
func checkLimited(t *testing.T, rec *httptest.ResponseRecorder, wantRetry int) {
	t.Helper()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429; body %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Retry-After"); got != itoa(wantRetry) {
		t.Errorf("Retry-After %q, want %d", got, wantRetry)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Errors []struct {
			Message    string
			Extensions struct {
				Code       string
				RetryAfter int
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	e := body.Errors[0]
	if e.Extensions.Code != "RATE_LIMITED" || e.Extensions.RetryAfter != wantRetry ||
		e.Message != "too many requests, retry in "+itoa(wantRetry)+" s" {
		t.Errorf("error %+v", e)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestMiddleware(t *testing.T) {
	clock := newClock()
	l := newMemory(Limits{PerIP: 1, IPBurst: 5, PerUser: 0.5, UserBurst: 2}, clock.Now)
	next := &okHandler{}
	h := l.Middleware(next, headerKeys)

	// The user limit applies on top of the IP limit.
	for range 2 {
		if rec := do(h, "192.0.2.1", "alice"); rec.Code != 200 {
			t.Fatalf("alice: %d %s", rec.Code, rec.Body)
		}
	}
	checkLimited(t, do(h, "192.0.2.1", "alice"), 2) // 0.5/s: next in 2s
	// The same IP still has budget for others: 3 counted of 5.
	if rec := do(h, "192.0.2.1", ""); rec.Code != 200 {
		t.Fatalf("anonymous: %d", rec.Code)
	}
	if rec := do(h, "192.0.2.1", "bob"); rec.Code != 200 {
		t.Fatalf("bob: %d", rec.Code)
	}
	// The IP is exhausted for everybody (alice's refused request counted).
	checkLimited(t, do(h, "192.0.2.1", "carol"), 1)
	checkLimited(t, do(h, "192.0.2.1", ""), 1)
	// Alice from another address is still limited as a user.
	checkLimited(t, do(h, "192.0.2.2", "alice"), 2)
	if next.n != 4 {
		t.Errorf("next ran %d times, want 4 (never for a refused request)", next.n)
	}
	// Admins are not limited at all.
	for range 50 {
		if rec := do(h, "192.0.2.1", Admin); rec.Code != 200 {
			t.Fatalf("admin: %d", rec.Code)
		}
	}
	// Time refills the buckets.
	clock.Advance(2 * time.Second)
	if rec := do(h, "192.0.2.1", "alice"); rec.Code != 200 {
		t.Fatalf("alice after 2s: %d %s", rec.Code, rec.Body)
	}
	// Retry-After is rounded up to whole seconds, at least 1.
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 59500 * time.Millisecond: 60} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}

// TestMiddlewareWebSocket: a WebSocket connection is one request however
// many messages go over it, and the middleware does not get in the way of
// the upgrade.
func TestMiddlewareWebSocket(t *testing.T) {
	l := Memory(Limits{PerIP: 0.001, IPBurst: 2})
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			w.Write([]byte("plain"))
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	}), func(*http.Request) (string, string) { return "203.0.113.5", "" })
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.Read(ctx); err != nil || string(b) != "hi" {
			t.Fatalf("echo %q, %v", b, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")

	get := func() (int, string) {
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "plain" { // the 2nd request of the burst
		t.Fatalf("after the WebSocket: %d %s", code, body)
	}
	if code, body := get(); code != http.StatusTooManyRequests || !strings.Contains(body, "RATE_LIMITED") {
		t.Fatalf("3rd request: %d %s", code, body)
	}
	// An upgrade over the limit is refused before the handshake.
	_, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade over the limit: %v, %+v", err, res)
	}
}
