package graphqlws

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestRevalidateAll: with RevalidateAll, one call per period checks every
// live connection; a refused connection closes with 4403 and the others
// stay; a connection that switched tokens by ping is judged on its new
// token; the sweep's timer goes away with the last connection.
func TestRevalidateAll(t *testing.T) {
	tok := newTokens("a", "b", "c")
	every := 150 * time.Millisecond
	var (
		mu      sync.Mutex
		calls   int
		largest int
	)
	tr := &Transport{
		Authenticate: tok.authenticate,
		Revalidate:   tok.revalidate,
		RevalidateAll: func(ctxs []context.Context) []error {
			mu.Lock()
			calls++
			largest = max(largest, len(ctxs))
			mu.Unlock()
			errs := make([]error, len(ctxs))
			for i, ctx := range ctxs {
				token, _ := ctx.Value(tokenKey{}).(string)
				errs[i] = tok.check(token)
			}
			return errs
		},
		RevalidateEvery: every,
	}
	e := newEnv(t, tr)
	clients := map[string]*client{}
	for _, token := range []string{"a", "b", "c"} {
		c := e.dial(t, nil)
		c.init(map[string]any{"token": token})
		c.subscribe("s", "subscription { forever(everyMs: 20) }", nil)
		c.expect("next", "s")
		clients[token] = c
	}
	// Several periods with every token valid: nobody is closed, and one
	// call saw all three connections.
	time.Sleep(3 * every)
	for _, c := range clients {
		c.sync()
	}
	mu.Lock()
	if calls < 2 || largest != 3 {
		t.Errorf("after 3 periods: %d calls, at most %d connections in one; want at least 2 calls, and 3", calls, largest)
	}
	mu.Unlock()

	// c switches to a fresh token by ping; then b and c's first token are
	// revoked: only b closes.
	tok.set("fresh", true)
	clients["c"].send(map[string]any{"type": "ping", "payload": map[string]any{"accessToken": "fresh"}})
	for m := clients["c"].next(); m.Type != "pong"; m = clients["c"].next() {
	}
	tok.set("b", false)
	tok.set("c", false)
	if code, _ := clients["b"].closed(every + time.Second); code != CloseForbidden {
		t.Fatalf("b closed with %d, want %d", code, CloseForbidden)
	}
	time.Sleep(2 * every)
	clients["a"].sync()
	clients["c"].sync()

	// The rest close: the sweep stops.
	for _, token := range []string{"a", "c"} {
		_ = clients[token].ws.CloseNow()
		<-clients[token].done
	}
	if !waitUntil(waitFor, func() bool {
		tr.sweepMu.Lock()
		defer tr.sweepMu.Unlock()
		return len(tr.swept) == 0 && tr.sweepTimer == nil
	}) {
		t.Fatal("the sweep still runs with no connection")
	}
}
