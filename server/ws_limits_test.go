package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"kiln/server/kilntest"
)

// limitBackends runs fn on a fresh server with env on SQLite, on
// PostgreSQL, and on SQLite with Redis (pub/sub and rate limits) when
// KILN_TEST_REDIS_URL is set. The server trusts X-Forwarded-For, so that a
// test gives each of its clients an address of its own (rate limits kept
// in a shared Redis are per address).
func limitBackends(t *testing.T, env []string, fn func(t *testing.T, s *kilntest.Server)) {
	env = append([]string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_TRUST_PROXY=true"}, env...)
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+t.TempDir())...))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+t.TempDir(), "DATABASE_URL="+kilntest.PostgresURL(t))...))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+t.TempDir(), "REDIS_URL="+redisURL(t))...))
	})
}

// randomIP is a client address no other test uses (TEST-NET-2 and
// benchmarking ranges, randomised: a shared Redis keeps buckets for a while).
func randomIP() string {
	return fmt.Sprintf("198.%d.%d.%d", 18+rand.IntN(2), rand.IntN(256), 1+rand.IntN(254))
}

// wsClient is a raw graphql-transport-ws client from a given address.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan kilntest.Message
	done chan struct{}
	err  error // the read error, once done is closed
}

// openWS dials from ip and sends connection_init with payload, without
// waiting for the answer (see acked).
func openWS(t *testing.T, s *kilntest.Server, ip string, payload map[string]any) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   http.Header{"X-Forwarded-For": {ip}},
	})
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	w := &wsClient{t: t, conn: conn, msgs: make(chan kilntest.Message, 8192), done: make(chan struct{})}
	t.Cleanup(func() { _ = conn.CloseNow() })
	go func() {
		defer close(w.done)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				w.err = err
				return
			}
			var m kilntest.Message
			if err := json.Unmarshal(b, &m); err != nil {
				w.err = fmt.Errorf("bad message %q: %w", b, err)
				return
			}
			if m.Type == "ping" {
				go func() { _ = w.write(kilntest.Message{Type: "pong"}) }()
				continue
			}
			w.msgs <- m
		}
	}()
	p, _ := json.Marshal(payload)
	if err := w.write(kilntest.Message{Type: "connection_init", Payload: p}); err != nil {
		t.Fatalf("connection_init: %v", err)
	}
	return w
}

func (w *wsClient) write(m kilntest.Message) error {
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.conn.Write(ctx, websocket.MessageText, b)
}

// next returns the next message, or ok false when the connection closed;
// it fails the test when nothing comes within 10s.
func (w *wsClient) next() (kilntest.Message, bool) {
	w.t.Helper()
	m, ok, waited := w.nextWithin(10 * time.Second)
	if waited {
		w.t.Fatal("no message from the server within 10s")
	}
	return m, ok
}

// nextWithin returns the next message, or ok false when the connection
// closed, or waited true when nothing came within d.
func (w *wsClient) nextWithin(d time.Duration) (m kilntest.Message, ok, waited bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m := <-w.msgs:
		return m, true, false
	case <-w.done:
		select {
		case m := <-w.msgs:
			return m, true, false
		default:
			return kilntest.Message{}, false, false
		}
	case <-timer.C:
		return kilntest.Message{}, false, true
	}
}

// acked waits for the answer to connection_init: true for connection_ack,
// false when the server closed the connection (see closed).
func (w *wsClient) acked() bool {
	w.t.Helper()
	m, ok := w.next()
	if ok && m.Type != "connection_ack" {
		w.t.Fatalf("answer to connection_init: %+v", m)
	}
	return ok
}

// closed waits for the server to close the connection and returns the
// close code and reason.
func (w *wsClient) closed() (websocket.StatusCode, string) {
	w.t.Helper()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		w.t.Fatal("the connection is still open after 10s")
	}
	var ce websocket.CloseError
	if !errors.As(w.err, &ce) {
		w.t.Fatalf("the connection ended without a close frame: %v", w.err)
	}
	return ce.Code, ce.Reason
}

// subscribe sends a subscribe message.
func (w *wsClient) subscribe(id, query string, vars map[string]any) {
	w.t.Helper()
	if err := w.trySubscribe(id, query, vars); err != nil {
		w.t.Fatalf("subscribe %s: %v", id, err)
	}
}

// trySubscribe sends a subscribe message; usable off the test's goroutine.
func (w *wsClient) trySubscribe(id, query string, vars map[string]any) error {
	p, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return w.write(kilntest.Message{ID: id, Type: "subscribe", Payload: p})
}

// complete stops operation id.
func (w *wsClient) complete(id string) {
	if err := w.write(kilntest.Message{ID: id, Type: "complete"}); err != nil {
		w.t.Fatalf("complete %s: %v", id, err)
	}
}

// msgErrors returns the errors of an error message, or of a next message.
func msgErrors(t *testing.T, m kilntest.Message) []kilntest.Error {
	t.Helper()
	var errs []kilntest.Error
	if m.Type == "error" {
		if err := json.Unmarshal(m.Payload, &errs); err != nil {
			t.Fatalf("error payload %s: %v", m.Payload, err)
		}
		return errs
	}
	var r kilntest.Response
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	return r.Errors
}

// msgCode is extensions.code of a message's first error ("" for none).
func msgCode(t *testing.T, m kilntest.Message) string {
	errs := msgErrors(t, m)
	if len(errs) == 0 {
		return ""
	}
	c, _ := errs[0].Extensions["code"].(string)
	return c
}

// anonymousToken signs in a new anonymous account from ip.
func anonymousToken(t *testing.T, s *kilntest.Server, ip string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"mutation { signInAnonymously { accessToken } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data struct{ SignInAnonymously struct{ AccessToken string } }
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.Data.SignInAnonymously.AccessToken == "" {
		t.Fatalf("signInAnonymously: %d %v", res.StatusCode, err)
	}
	return out.Data.SignInAnonymously.AccessToken
}

// TestWebSocketOperationsAreRateLimited: every operation sent over a
// socket counts against the per-address and per-user request rates, the
// budget HTTP requests use: 2,000 operations on one socket get
// RATE_LIMITED (with retryAfter, the socket open) once the HTTP burst is
// used up, an HTTP request from the address is then refused too, and a
// client that keeps going past KILN_WS_RATE_LIMIT_CLOSE_AFTER refusals in
// a row is closed with 1013.
func TestWebSocketOperationsAreRateLimited(t *testing.T) {
	const ipBurst, userBurst, closeAfter = 60, 20, 100
	limitBackends(t, []string{"KILN_RATE_PER_IP=0.01", fmt.Sprint("KILN_RATE_IP_BURST=", ipBurst),
		"KILN_RATE_PER_USER=0.01", fmt.Sprint("KILN_RATE_USER_BURST=", userBurst)}, func(t *testing.T, s *kilntest.Server) {
		// run sends n queries on w, one after the other (each once the
		// previous one was answered), and counts the answers: results and
		// RATE_LIMITED errors, until the server closes the socket.
		run := func(w *wsClient, n int) (results, limited int) {
			for i := range n {
				id := fmt.Sprint(i)
				if w.trySubscribe(id, `query { __typename }`, nil) != nil {
					return // closed by the server
				}
			answer:
				for {
					m, ok := w.next()
					switch {
					case !ok:
						return
					case m.ID != id:
						t.Fatalf("unexpected message %+v %s", m, m.Payload)
					case m.Type == "next" && msgCode(t, m) == "":
						results++
					case m.Type == "complete":
						break answer
					case m.Type == "error" && msgCode(t, m) == "RATE_LIMITED":
						if limited++; limited == 1 {
							if ra, _ := msgErrors(t, m)[0].Extensions["retryAfter"].(float64); ra < 1 {
								t.Errorf("RATE_LIMITED without a positive retryAfter: %s", m.Payload)
							}
						}
						break answer
					default:
						t.Fatalf("unexpected message %+v %s", m, m.Payload)
					}
				}
			}
			return results, limited
		}

		// Per address: the upgrade is one request, then the operations.
		ip := randomIP()
		w := openWS(t, s, ip, nil)
		if !w.acked() {
			t.Fatal("no connection_ack")
		}
		results, limited := run(w, 2000)
		t.Logf("per address: %d results, %d RATE_LIMITED of 2000 operations", results, limited)
		if results < ipBurst-5 || results > ipBurst {
			t.Errorf("%d operations ran, want about the burst of %d requests (the upgrade was one)", results, ipBurst)
		}
		if limited != closeAfter {
			t.Errorf("%d operations got RATE_LIMITED before the close, want %d", limited, closeAfter)
		}
		if code, reason := w.closed(); code != 1013 {
			t.Errorf("closed with %d %q, want 1013 Try Again Later", code, reason)
		}
		// The address's budget is spent for HTTP too.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusTooManyRequests {
			t.Errorf("HTTP request from the address after the WebSocket operations: %d, want 429", res.StatusCode)
		}

		// Per user: a signed-in user is limited by the user's budget (smaller
		// here than the address's).
		ip2 := randomIP()
		token := anonymousToken(t, s, ip2)
		u := openWS(t, s, ip2, map[string]any{"accessToken": token})
		if !u.acked() {
			t.Fatal("no connection_ack")
		}
		results, limited = run(u, 200)
		t.Logf("per user: %d results, %d RATE_LIMITED of 200 operations", results, limited)
		if results != userBurst || limited != closeAfter {
			t.Errorf("user: %d results and %d RATE_LIMITED, want %d and %d", results, limited, userBurst, closeAfter)
		}

		// Admins are not limited (their upgrade request is: another address).
		a := openWS(t, s, randomIP(), map[string]any{"X-Kiln-Admin-Secret": adminSecret})
		if !a.acked() {
			t.Fatal("admin: no connection_ack")
		}
		if results, limited := run(a, 2*ipBurst); results != 2*ipBurst || limited != 0 {
			t.Errorf("admin: %d results, %d RATE_LIMITED, want %d and 0", results, limited, 2*ipBurst)
		}
	})
}

// TestWebSocketConnectionCaps: a connection_init beyond the connections of
// a user (KILN_WS_MAX_CONNECTIONS_PER_USER) or of an address
// (KILN_WS_MAX_CONNECTIONS_PER_IP) closes the socket with 1013 and a
// reason naming the cap; a closed connection makes room; admins are not
// counted.
func TestWebSocketConnectionCaps(t *testing.T) {
	limitBackends(t, []string{"KILN_WS_MAX_CONNECTIONS_PER_USER=2", "KILN_WS_MAX_CONNECTIONS_PER_IP=3"}, func(t *testing.T, s *kilntest.Server) {
		ip := randomIP()
		token := anonymousToken(t, s, ip)
		user := map[string]any{"accessToken": token}
		a1 := openWS(t, s, ip, user)
		a2 := openWS(t, s, ip, user)
		if !a1.acked() || !a2.acked() {
			t.Fatal("the user's first two connections were refused")
		}
		a3 := openWS(t, s, ip, user)
		if a3.acked() {
			t.Fatal("the user's third connection was acknowledged")
		}
		if code, reason := a3.closed(); code != 1013 || !strings.Contains(reason, "for this user") {
			t.Errorf("third connection of the user closed with %d %q, want 1013 and a reason naming the user cap", code, reason)
		}
		// Without a token the address is what counts.
		if anon := openWS(t, s, ip, nil); !anon.acked() {
			t.Fatal("the address's third connection was refused")
		}
		over := openWS(t, s, ip, nil)
		if over.acked() {
			t.Fatal("the address's fourth connection was acknowledged")
		}
		if code, reason := over.closed(); code != 1013 || !strings.Contains(reason, "from this address") {
			t.Errorf("fourth connection of the address closed with %d %q, want 1013 and a reason naming the address cap", code, reason)
		}
		// Another address, and admins, are not affected.
		if other := openWS(t, s, randomIP(), nil); !other.acked() {
			t.Error("a connection from another address was refused")
		}
		for range 3 {
			if admin := openWS(t, s, ip, map[string]any{"X-Kiln-Admin-Secret": adminSecret}); !admin.acked() {
				t.Fatal("an admin connection was refused")
			}
		}
		// Closing a connection makes room (once the server has seen it).
		_ = a1.conn.Close(websocket.StatusNormalClosure, "")
		for i := 0; ; i++ {
			if openWS(t, s, ip, user).acked() {
				break
			}
			if i == 100 {
				t.Fatal("no room for the user after one of their connections closed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestWebSocketSubscriptionCaps: live subscriptions are capped per user
// (KILN_WS_MAX_SUBSCRIPTIONS_PER_USER) and per address
// (KILN_WS_MAX_SUBSCRIPTIONS_PER_IP) across all their connections: one
// more gets TOO_MANY_SUBSCRIPTIONS and the socket stays open; queries are
// not subscriptions; completing one makes room.
func TestWebSocketSubscriptionCaps(t *testing.T) {
	limitBackends(t, []string{"KILN_WS_MAX_SUBSCRIPTIONS_PER_USER=3", "KILN_WS_MAX_SUBSCRIPTIONS_PER_IP=5"}, func(t *testing.T, s *kilntest.Server) {
		ip := randomIP()
		alice := map[string]any{"accessToken": anonymousToken(t, s, ip)}
		bob := map[string]any{"accessToken": anonymousToken(t, s, ip)}
		a1, a2 := openWS(t, s, ip, alice), openWS(t, s, ip, alice)
		b := openWS(t, s, ip, bob)
		for _, w := range []*wsClient{a1, a2, b} {
			if !w.acked() {
				t.Fatal("no connection_ack")
			}
		}
		author := createProfile(t, s, fmt.Sprint("author_", rand.IntN(1e9)), "").ID
		const sub = `subscription { postCreated { id } }`
		// refused subscribes id on w and reports whether it got
		// TOO_MANY_SUBSCRIPTIONS (the socket stays open), or else an event:
		// posts are created until it gets one or the other.
		refused := func(w *wsClient, id string) (bool, string) {
			w.subscribe(id, sub, nil)
			for round := range 30 {
				createPost(t, s, author, fmt.Sprint("probe ", round), `, visibility: PUBLIC`)
				for {
					m, ok, waited := w.nextWithin(time.Second)
					if waited {
						break
					}
					if !ok {
						t.Fatalf("connection closed: %v", w.err)
					}
					if m.ID != id {
						continue // an event of another subscription
					}
					errs := msgErrors(t, m)
					if len(errs) == 0 && m.Type == "next" {
						return false, ""
					}
					if m.Type != "error" || len(errs) == 0 || msgCode(t, m) != "TOO_MANY_SUBSCRIPTIONS" {
						t.Fatalf("subscription %s: %+v %s", id, m, m.Payload)
					}
					return true, errs[0].Message
				}
			}
			t.Fatalf("subscription %s got neither an event nor an error", id)
			return false, ""
		}
		for i, w := range []*wsClient{a1, a1, a2} {
			if no, msg := refused(w, fmt.Sprint("a", i)); no {
				t.Fatalf("alice's subscription %d of 3 refused: %s", i+1, msg)
			}
		}
		if no, msg := refused(a2, "a3"); !no || !strings.Contains(msg, "for this user") {
			t.Errorf("alice's 4th subscription: refused %v %q, want TOO_MANY_SUBSCRIPTIONS for the user", no, msg)
		}
		for i := range 2 {
			if no, msg := refused(b, fmt.Sprint("b", i)); no {
				t.Fatalf("bob's subscription %d refused: %s", i+1, msg)
			}
		}
		if no, msg := refused(b, "b2"); !no || !strings.Contains(msg, "from this address") {
			t.Errorf("the address's 6th subscription: refused %v %q, want TOO_MANY_SUBSCRIPTIONS for the address", no, msg)
		}
		// Completing one of alice's makes room for her.
		a1.complete("a0")
		for i := 0; ; i++ {
			if no, _ := refused(a2, fmt.Sprint("again", i)); !no {
				break
			}
			if i == 100 {
				t.Fatal("no room after a subscription completed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestRelationFilterCostPerEvent: a subscription whose where needs SQL (a
// relation filter) runs a statement for every event, so those are capped
// per user (KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_USER) and per address
// (..._PER_IP): 80 such subscriptions from two anonymous accounts of one
// address, all with different filters, add at most 8 statements per event
// (kiln_sql_statements_total), not 80. The refused ones get
// TOO_MANY_SUBSCRIPTIONS, over SSE as well.
func TestRelationFilterCostPerEvent(t *testing.T) {
	const perUser, perIP, attempts, events = 5, 8, 40, 5
	limitBackends(t, []string{fmt.Sprint("KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_USER=", perUser),
		fmt.Sprint("KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_IP=", perIP),
		// No periodic token checks during the count.
		"KILN_WS_REVALIDATE=1h"}, func(t *testing.T, s *kilntest.Server) {
		author := createProfile(t, s, "author_"+fmt.Sprint(rand.IntN(1e9)), "").ID
		publish := func(prefix string) {
			for i := range events {
				createPost(t, s, author, fmt.Sprint(prefix, " ", i), `, visibility: PUBLIC`)
			}
		}
		statements := func() float64 { return s.Metric(t, "kiln_sql_statements_total") }
		// The cost of the events without subscribers.
		before := statements()
		publish("alone")
		base := statements() - before

		ip := randomIP()
		const q = `subscription($b: String!) { postCreated(where: {hasAuthorWith: [{handleNEQ: $b}]}) { id body } }`
		names := []string{"alice", "bob"}
		sockets := map[string]*wsClient{}
		// Each subscription either is refused at once, or receives events:
		// probe events until every one is one or the other. Alice's settle
		// before bob subscribes, so that the caps split the same way on every
		// run (the server handles one socket's messages concurrently with
		// another's).
		refusals := map[string]int{} // by "<name>: <message>"
		live := map[string]bool{}    // ids
		seen := map[string]bool{}
		round := 0
		for n, name := range names {
			w := openWS(t, s, ip, map[string]any{"accessToken": anonymousToken(t, s, ip)})
			if !w.acked() {
				t.Fatal("no connection_ack")
			}
			sockets[name] = w
			for i := range attempts {
				w.subscribe(fmt.Sprint(name, i), q, map[string]any{"b": fmt.Sprint(name, " filter ", i)})
			}
			for ; len(seen) < (n+1)*attempts; round++ {
				if round == 60 {
					t.Fatalf("after %d probe events, %d of %d subscriptions neither failed nor got an event", round, (n+1)*attempts-len(seen), (n+1)*attempts)
				}
				createPost(t, s, author, fmt.Sprint("probe ", round), `, visibility: PUBLIC`)
				for _, name := range names[:n+1] {
					w := sockets[name]
					for {
						m, ok, waited := w.nextWithin(time.Second)
						if waited {
							break
						}
						if !ok {
							t.Fatalf("connection closed: %v", w.err)
						}
						if seen[m.ID] {
							continue
						}
						seen[m.ID] = true
						if errs := msgErrors(t, m); len(errs) > 0 {
							if msgCode(t, m) != "TOO_MANY_SUBSCRIPTIONS" {
								t.Fatalf("subscription %s: %s", m.ID, m.Payload)
							}
							refusals[name+": "+errs[0].Message]++
							continue
						}
						live[m.ID] = true
					}
				}
			}
		}
		t.Logf("%d live subscriptions with a relation filter; refusals: %v", len(live), refusals)

		// Every live subscription is subscribed: measure the events now.
		before = statements()
		publish("measured")
		for _, name := range names {
			w := sockets[name]
			waiting := map[string]int{} // live subscriptions of the socket: events to come
			for id := range live {
				if strings.HasPrefix(id, name) {
					waiting[id] = events
				}
			}
			for len(waiting) > 0 {
				m, ok := w.next()
				if !ok {
					t.Fatalf("connection closed: %v", w.err)
				}
				if !live[m.ID] {
					t.Fatalf("message of a refused subscription: %+v", m)
				}
				if _, ok := waiting[m.ID]; ok && strings.Contains(string(m.Payload), "measured") {
					if waiting[m.ID]--; waiting[m.ID] == 0 {
						delete(waiting, m.ID)
					}
				}
			}
		}
		added := statements() - before - base
		t.Logf("%d events cost %.0f statements alone, %.0f more with %d subscriptions with a relation filter open", events, base, added, len(live))
		if max := float64(events*perIP + 10); added > max {
			t.Errorf("the subscriptions added %.0f statements for %d events, want at most %.0f (the per-address cap %d per event)", added, events, max, perIP)
		}
		if len(live) != perIP {
			t.Errorf("%d subscriptions with a relation filter are live, want %d (alice %d, bob the rest of the address's %d)", len(live), perIP, perUser, perIP)
		}
		userRefused, ipRefused := 0, 0
		for msg, n := range refusals {
			switch {
			case strings.HasPrefix(msg, "alice: ") && strings.Contains(msg, "for this user"):
				userRefused += n
			case strings.HasPrefix(msg, "bob: ") && strings.Contains(msg, "from this address"):
				ipRefused += n
			default:
				t.Errorf("unexpected refusal %q", msg)
			}
		}
		if userRefused != attempts-perUser || ipRefused != attempts-(perIP-perUser) {
			t.Errorf("refusals: %d for alice's user cap, %d for the address cap of bob's, want %d and %d",
				userRefused, ipRefused, attempts-perUser, attempts-(perIP-perUser))
		}

		// The cap holds over Server-Sent Events too.
		body := strings.NewReader(`{"query":"subscription { postCreated(where: {hasAuthorWith: [{handleNEQ: \"sse\"}]}) { id } }"}`)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("X-Forwarded-For", ip)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		answered := false
		for !answered && sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data:") {
				answered = true
				if !strings.Contains(line, "TOO_MANY_SUBSCRIPTIONS") {
					t.Errorf("SSE subscription beyond the address's cap: %s", line)
				}
			}
		}
		if !answered {
			t.Errorf("SSE subscription beyond the address's cap: no answer (%v)", sc.Err())
		}
	})
}
