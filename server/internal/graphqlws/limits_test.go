package graphqlws

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testClient counts every connection against one address and against the
// user of its token ("user:<token>"); the token "admin" is not counted.
func testClient(ctx context.Context) (ip, user string) {
	v, _ := viewerFrom(ctx).(string)
	if v == "user:admin" {
		return "", ""
	}
	return "192.0.2.1", v
}

// errorCode returns extensions.code of the single error of an error
// message's payload.
func errorCode(t testing.TB, m msg) (code string, ext map[string]any) {
	t.Helper()
	var errs []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 || errs[0].Message == "" {
		t.Fatalf("error payload %s (%v)", m.Payload, err)
	}
	code, _ = errs[0].Extensions["code"].(string)
	return code, errs[0].Extensions
}

// dialInit dials and sends connection_init with token, without waiting.
func (e *env) dialInit(t *testing.T, token string) *client {
	t.Helper()
	c := e.dial(t, nil)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": token}})
	return c
}

func TestConnectionCapsPerClient(t *testing.T) {
	tok := newTokens("a", "b", "c", "admin")
	e := newEnv(t, &Transport{Authenticate: tok.authenticate, Revalidate: tok.revalidate, RevalidateEvery: -1,
		Client: testClient, MaxConnectionsPerUser: 2, MaxConnectionsPerIP: 3})
	a1 := e.dialInit(t, "a")
	a1.expect("connection_ack", "")
	a2 := e.dialInit(t, "a")
	a2.expect("connection_ack", "")
	a3 := e.dialInit(t, "a")
	a3.expectClose(CloseTryAgainLater, "Too many connections for this user (at most 2)")

	b1 := e.dialInit(t, "b")
	b1.expect("connection_ack", "")
	c1 := e.dialInit(t, "c")
	c1.expectClose(CloseTryAgainLater, "Too many connections from this address (at most 3)")
	// Administrators are not counted.
	for range 3 {
		e.dialInit(t, "admin").expect("connection_ack", "")
	}

	// A closed connection gives its slot back.
	_ = a1.ws.Close(websocket.StatusNormalClosure, "")
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		c := e.dialInit(t, "c")
		select {
		case m := <-c.msgs:
			ok = m.Type == "connection_ack"
		case <-c.done:
		}
		if !ok {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("no room after a connection closed")
	}

	// Switching a connection's token to a user at the cap closes it.
	a2.send(map[string]any{"type": "ping", "payload": map[string]any{"accessToken": "c"}})
	a2.expect("pong", "")
	b1.send(map[string]any{"type": "ping", "payload": map[string]any{"accessToken": "c"}})
	b1.expectClose(CloseTryAgainLater, "Too many connections for this user (at most 2)")
}

func TestSubscriptionCapsAcrossConnections(t *testing.T) {
	tok := newTokens("a", "b")
	e := newEnv(t, &Transport{Authenticate: tok.authenticate, RevalidateEvery: -1,
		Client: testClient, MaxSubscriptionsPerUser: 2, MaxSubscriptionsPerIP: 3})
	c1 := e.dial(t, nil)
	c1.init(map[string]any{"token": "a"})
	c2 := e.dial(t, nil)
	c2.init(map[string]any{"token": "a"})
	c1.subscribe("s1", "subscription { forever(everyMs: 50) }", nil)
	c2.subscribe("s2", "subscription { forever(everyMs: 50) }", nil)
	c1.expect("next", "s1")
	c2.expect("next", "s2")
	// Queries are not subscriptions: not counted.
	c2.subscribe("q", "{ hello }", nil)
	for m := c2.next(); m.ID != "q" || m.Type != "complete"; m = c2.next() {
	}
	c2.subscribe("s3", "subscription { forever(everyMs: 50) }", nil)
	for m := c2.next(); ; m = c2.next() {
		if m.ID == "s3" {
			if m.Type != "error" {
				t.Fatalf("third subscription of the user: %+v", m)
			}
			if code, _ := errorCode(t, m); code != ErrorCodeTooManySubscriptions {
				t.Fatalf("code %q", code)
			}
			break
		}
	}
	// Another user of the address gets the last slot of the address.
	b := e.dial(t, nil)
	b.init(map[string]any{"token": "b"})
	b.subscribe("b1", "subscription { forever(everyMs: 50) }", nil)
	b.expect("next", "b1")
	b.subscribe("b2", "subscription { forever(everyMs: 50) }", nil)
	for m := b.next(); ; m = b.next() {
		if m.ID == "b2" {
			if m.Type != "error" || !strings.Contains(string(m.Payload), "from this address") {
				t.Fatalf("fourth subscription of the address: %+v %s", m, m.Payload)
			}
			break
		}
	}
	// Completing one makes room for the user.
	c1.send(map[string]any{"id": "s1", "type": "complete"})
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		id := "again" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		c2.subscribe(id, "subscription { ticks(n: 1) }", nil)
		for m := c2.next(); ; m = c2.next() {
			if m.ID == id {
				ok = m.Type == "next"
				break
			}
		}
		if !ok {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("no room after a subscription completed")
	}
}

func TestRateLimitedOperations(t *testing.T) {
	var allowed atomic.Int64
	allowed.Store(5)
	e := newEnv(t, &Transport{RateLimitCloseAfter: 3, RateLimit: func(ctx context.Context) (bool, time.Duration) {
		if _, ok := FromContext(ctx); !ok {
			t.Error("RateLimit without the connection context")
		}
		if allowed.Add(-1) >= 0 {
			return true, 0
		}
		return false, 1500 * time.Millisecond
	}})
	c := e.dial(t, nil)
	c.init(nil)
	for i := range 5 {
		id := string(rune('a' + i))
		c.subscribe(id, "{ hello }", nil)
		c.expect("next", id)
		c.expect("complete", id)
	}
	for _, id := range []string{"x", "y", "z"} {
		c.subscribe(id, "{ hello }", nil)
		m := c.expect("error", id)
		code, ext := errorCode(t, m)
		if code != ErrorCodeRateLimited || ext["retryAfter"] != float64(2) {
			t.Fatalf("refused operation: %s", m.Payload)
		}
	}
	// Allowed again: the count of refusals in a row starts over.
	allowed.Store(1)
	c.subscribe("ok", "{ hello }", nil)
	c.expect("next", "ok")
	c.expect("complete", "ok")
	for _, id := range []string{"x", "y", "z"} {
		c.subscribe(id, "{ hello }", nil)
		c.expect("error", id)
	}
	c.subscribe("w", "{ hello }", nil)
	c.expectClose(CloseTryAgainLater, "Rate limit exceeded")
}
