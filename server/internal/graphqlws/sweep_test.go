package graphqlws

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestRevalidateAll: with RevalidateAll, every live connection is checked
// once per period, in batches (slices of the connections, one call each);
// a refused connection closes with 4403 and the others stay; a connection
// that switched tokens by ping is judged on its new token; the sweep's
// timer goes away with the last connection.
func TestRevalidateAll(t *testing.T) {
	tok := newTokens("a", "b", "c")
	every := 320 * time.Millisecond
	var (
		mu      sync.Mutex
		checked = map[string]int{} // token: checks
		largest int
	)
	tr := &Transport{
		Authenticate: tok.authenticate,
		Revalidate:   tok.revalidate,
		RevalidateAll: func(ctxs []context.Context) []error {
			errs := make([]error, len(ctxs))
			mu.Lock()
			defer mu.Unlock()
			largest = max(largest, len(ctxs))
			for i, ctx := range ctxs {
				token, _ := ctx.Value(tokenKey{}).(string)
				checked[token]++
				errs[i] = tok.check(token)
			}
			return errs
		},
		RevalidateEvery: every,
	}
	e := newEnv(t, tr)
	clients := map[string]*client{}
	// More connections than slices, so that some call carries several.
	var extra []*client
	for i := range 2 * sweepSlices {
		tok.set(fmt.Sprint("extra", i), true)
		c := e.dial(t, nil)
		c.init(map[string]any{"token": fmt.Sprint("extra", i)})
		extra = append(extra, c)
	}
	for _, token := range []string{"a", "b", "c"} {
		c := e.dial(t, nil)
		c.init(map[string]any{"token": token})
		c.subscribe("s", "subscription { forever(everyMs: 20) }", nil)
		c.expect("next", "s")
		clients[token] = c
	}
	// Several periods with every token valid: nobody is closed, every
	// connection was checked once per period, and calls were batches.
	// Counted, not timed: wait (a bounded number of polls) until a has been
	// checked 3 times; a loaded machine may take longer than 3 periods, but
	// every period checks every connection once, so the others are then
	// within one check of a.
	mu.Lock()
	clear(checked)
	mu.Unlock()
	for i := 0; ; i++ {
		mu.Lock()
		n := checked["a"]
		mu.Unlock()
		if n >= 3 {
			break
		}
		if i == 1000 {
			t.Fatalf("a was checked %d times in 1000 polls of %s", n, every/4)
		}
		time.Sleep(every / 4)
	}
	for _, c := range clients {
		c.sync()
	}
	mu.Lock()
	for _, token := range []string{"b", "c", "extra0"} {
		if n := checked[token]; n < checked["a"]-1 || n > checked["a"]+1 {
			t.Errorf("when a was checked %d times, %s was checked %d times, want within one", checked["a"], token, n)
		}
	}
	if largest < 2 {
		t.Errorf("at most %d connection(s) per call, want batches", largest)
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
	if code, _ := clients["b"].closed(2*every + time.Second); code != CloseForbidden {
		t.Fatalf("b closed with %d, want %d", code, CloseForbidden)
	}
	time.Sleep(2 * every)
	clients["a"].sync()
	clients["c"].sync()

	// The rest close: the sweep stops.
	for _, c := range append(extra, clients["a"], clients["c"]) {
		_ = c.ws.CloseNow()
		<-c.done
	}
	if !waitUntil(waitFor, func() bool {
		tr.sweepMu.Lock()
		defer tr.sweepMu.Unlock()
		return tr.sweptCount == 0 && tr.sweepTimer == nil
	}) {
		t.Fatal("the sweep still runs with no connection")
	}
}
