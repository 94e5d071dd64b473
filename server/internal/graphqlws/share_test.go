package graphqlws

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// sharedTransport shares subscriptions between connections of the same viewer.
func sharedTransport(tok *tokens, members *atomic.Int64) *Transport {
	return &Transport{
		Authenticate: tok.authenticate,
		Revalidate:   tok.revalidate,
		ShareKey: func(ctx context.Context) string {
			v, _ := ctx.Value(viewerKey{}).(string)
			return v
		},
		SharedMembers: func(d int) { members.Add(int64(d)) },
	}
}

// TestSharedSubscriptions: identical subscriptions of one viewer run once,
// every subscriber receives every event from its join on; another viewer,
// or other variables, get their own execution; a subscriber that leaves
// does not stop the others.
func TestSharedSubscriptions(t *testing.T) {
	tok := newTokens("a", "b")
	var members atomic.Int64
	e := newEnv(t, sharedTransport(tok, &members))
	const q = "subscription($e: Int) { forever(everyMs: $e) }"
	var cs []*client
	for i, token := range []string{"a", "a", "a", "b"} {
		c := e.dial(t, nil)
		c.init(map[string]any{"token": token})
		c.subscribe("s", q, map[string]any{"e": 10})
		c.expect("next", "s")
		if i == 0 {
			c.subscribe("other", q, map[string]any{"e": 11})
			c.sync()
		}
		cs = append(cs, c)
	}
	// a with e=10, a with e=11, b with e=10.
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 3 }) {
		t.Fatalf("%d executions for 3 distinct subscriptions", e.schema.active.Load())
	}
	if n := members.Load(); n != 2 {
		t.Fatalf("SharedMembers counts %d, want 2", n)
	}
	// The first subscriber (the group's leader) leaves: the others go on.
	cs[0].send(map[string]any{"id": "s", "type": "complete"})
	cs[0].sync()
	if !waitUntil(waitFor, func() bool { return members.Load() == 1 }) {
		t.Fatalf("SharedMembers counts %d after a leave, want 1", members.Load())
	}
	for _, c := range cs[1:] {
		c.sync()
		c.expect("next", "s")
	}
	for _, c := range cs {
		_ = c.ws.CloseNow()
	}
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatalf("%d executions still running after every subscriber left", e.schema.active.Load())
	}
	if n := members.Load(); n != 0 {
		t.Fatalf("SharedMembers counts %d at the end, want 0", n)
	}
}

// TestSharedSubscriptionCompletes: when the shared execution ends, every
// subscriber gets complete.
func TestSharedSubscriptionCompletes(t *testing.T) {
	tok := newTokens("a")
	var members atomic.Int64
	e := newEnv(t, sharedTransport(tok, &members))
	a, b := e.dial(t, nil), e.dial(t, nil)
	a.init(map[string]any{"token": "a"})
	b.init(map[string]any{"token": "a"})
	a.subscribe("1", "subscription { ticks(n: 5, everyMs: 50) }", nil)
	a.expect("next", "1")
	b.subscribe("2", "subscription { ticks(n: 5, everyMs: 50) }", nil)
	for _, c := range []struct {
		c  *client
		id string
	}{{a, "1"}, {b, "2"}} {
		for {
			m := c.c.next()
			if m.ID != c.id {
				t.Fatalf("unexpected %+v", m)
			}
			if m.Type == "complete" {
				break
			}
			if m.Type != "next" {
				t.Fatalf("unexpected %+v", m)
			}
		}
	}
	// The schema counts down in a context.AfterFunc goroutine.
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) || members.Load() != 0 {
		t.Fatalf("after complete: %d executions, %d members", e.schema.active.Load(), members.Load())
	}
}

// TestSharedSubscriptionRekey: a connection whose credentials switch to
// another viewer leaves its shared subscriptions with RESYNC, then
// complete; it can subscribe again as the new viewer.
func TestSharedSubscriptionRekey(t *testing.T) {
	tok := newTokens("old", "new")
	var members atomic.Int64
	e := newEnv(t, sharedTransport(tok, &members))
	c := e.dial(t, nil)
	c.init(map[string]any{"token": "old"})
	c.subscribe("w", "subscription { viewer(n: 1000, everyMs: 20) }", nil)
	if got := data(t, c.expect("next", "w")); got != `{"viewer":"user:old"}` {
		t.Fatalf("viewer = %s", got)
	}
	c.send(map[string]any{"type": "ping", "payload": map[string]any{"accessToken": "new"}})
	sawResync, sawComplete, sawPong := false, false, false
	for !sawComplete || !sawPong {
		m := c.next()
		switch {
		case m.Type == "pong":
			sawPong = true
		case m.Type == "complete" && m.ID == "w":
			sawComplete = true
		case sawResync || sawComplete || m.Type != "next":
			t.Fatalf("unexpected %+v", m)
		case strings.Contains(string(m.Payload), `"code":"RESYNC"`):
			sawResync = true
		case data(t, m) != `{"viewer":"user:old"}`:
			t.Fatalf("a shared execution delivered %s after the switch", m.Payload)
		}
	}
	if !sawResync {
		t.Fatal("no RESYNC before complete")
	}
	c.subscribe("w", "subscription { viewer(n: 1000, everyMs: 20) }", nil)
	if got := data(t, c.expect("next", "w")); got != `{"viewer":"user:new"}` {
		t.Fatalf("viewer after resubscribing = %s", got)
	}
}

// TestSharedSlowMember: a member whose queue overflows leaves the group
// with RESYNC after the messages it had queued; the others stay.
func TestSharedSlowMember(t *testing.T) {
	tr := &Transport{}
	cancelled := false
	slow, g, created := tr.join("k", "v", false, nil, nil, &operation{id: "slow"}, func() { cancelled = true })
	fast, _, _ := tr.join("k", "v", false, nil, nil, &operation{id: "fast"}, func() {})
	if !created {
		t.Fatal("the first join did not create the group")
	}
	for i := range memberQueue + 1 {
		g.broadcast(&frame{typ: msgNext, payload: []byte(`{"n":` + string(rune('0'+i%10)) + `}`)}, nil)
		if i < memberQueue {
			takeAll(fast) // fast keeps up
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("the slow member was not dropped")
	}
	if slow.final != resyncFrame || !strings.Contains(string(slow.final.payload), `"code":"RESYNC"`) {
		t.Fatalf("final message %+v", slow.final)
	}
	if n := len(takeAll(slow)); n != memberQueue {
		t.Fatalf("the slow member kept %d queued messages, want %d", n, memberQueue)
	}
	select {
	case <-fast.done:
		t.Fatal("the fast member was dropped")
	default:
	}
	if n := len(takeAll(fast)); n != 1 {
		t.Fatalf("fast member has %d queued, want 1", n)
	}
	fast.leave()
	if !cancelled {
		t.Fatal("the group was not cancelled when its last member left")
	}
}

// TestCrossViewerBroadcast: in a group shared across viewers, a response
// reaches only the members whose CURRENT connection context (its gate
// subject) passes its
// check; a member whose context switches follows the new viewer, and is
// not dropped by rekey.
func TestCrossViewerBroadcast(t *testing.T) {
	tr := &Transport{ShareKey: func(ctx context.Context) string {
		v, _ := ctx.Value(viewerKey{}).(string)
		return v
	}}
	sess := func(viewer string) *Session {
		// The gate subject is the viewer's name, taken from each new
		// connection context.
		s := newSession(context.Background(), func(ctx context.Context) any { return ctx.Value(viewerKey{}) })
		s.setContext(context.WithValue(s.base, viewerKey{}, viewer))
		return s
	}
	alice, bob := sess("alice"), sess("bob")
	ma, g, _ := tr.join("*k", "alice", true, nil, alice, &operation{id: "a"}, func() {})
	mb, _, _ := tr.join("*k", "bob", true, nil, bob, &operation{id: "b"}, func() {})
	onlyAlice := func(subject any) bool { return subject == "alice" }
	g.broadcast(&frame{typ: msgNext, payload: []byte(`{"private":"alice"}`)}, onlyAlice)
	g.broadcast(&frame{typ: msgNext, payload: []byte(`{"public":1}`)}, func(any) bool { return true })
	got := func(m *member) string {
		var out []string
		for _, f := range takeAll(m) {
			out = append(out, string(f.payload))
		}
		return strings.Join(out, " ")
	}
	if a, b := got(ma), got(mb); a != `{"private":"alice"} {"public":1}` || b != `{"public":1}` {
		t.Fatalf("alice got %s, bob got %s", a, b)
	}
	// Bob's connection switches to alice: the member stays, and from now
	// on gets what alice may read.
	c := &conn{t: tr, session: bob, ops: map[string]*operation{}}
	op := &operation{id: "b"}
	op.member.Store(mb)
	c.ops["b"] = op
	bob.setContext(context.WithValue(bob.base, viewerKey{}, "alice"))
	c.rekey()
	select {
	case <-mb.done:
		t.Fatal("rekey dropped a member of a group shared across viewers")
	default:
	}
	g.broadcast(&frame{typ: msgNext, payload: []byte(`{"private":"alice"}`)}, onlyAlice)
	if b := got(mb); b != `{"private":"alice"}` {
		t.Fatalf("after the switch, bob's connection got %q", b)
	}
}

// takeAll takes m's queued frames as its goroutine would, and releases it.
func takeAll(m *member) []*frame {
	fs := m.take(nil)
	m.release()
	return fs
}

// TestSharedDeliveryDirectWrites: a broadcast writes to the sockets itself
// (in parallel for a large group) when they accept the frame at once, and
// queues it otherwise. Every member must still receive every message of
// the group, whole and in order, then complete: 600 members of a group of
// small messages (more than one broadcast goroutine's share), and a fast
// and a slow reader of 6 MiB messages, which no socket takes whole: direct
// writes are cut short and their rest is written later.
func TestSharedDeliveryDirectWrites(t *testing.T) {
	e := newEnv(t, &Transport{ShareKey: func(context.Context) string { return "everyone" }})
	// Big messages are larger than a socket's send buffer can grow to
	// (4 MiB by default): no write(2) takes one whole.
	const small, big, bigKB = 50, 8, 6 << 10
	var clients []*client
	for range 600 {
		c := e.dial(t, nil)
		c.init(nil)
		c.subscribe("s", fmt.Sprintf("subscription { seq(n: %d, kb: 0) }", small), nil)
		clients = append(clients, c)
	}
	fast := e.dial(t, nil)
	fast.ws.SetReadLimit(8 << 20) // before any message: its read loop waits
	fast.init(nil)
	fast.subscribe("s", fmt.Sprintf("subscription { seq(n: %d, kb: %d) }", big, bigKB), nil)
	clients = append(clients, fast)
	// The slow reader: no read loop, each message read from the socket
	// after a pause.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(8 << 20)
	write := func(m string) {
		if err := slow.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"type":"connection_init"}`)
	if _, ack, err := slow.Read(ctx); err != nil || !strings.Contains(string(ack), "connection_ack") {
		t.Fatalf("ack: %s, %v", ack, err)
	}
	write(fmt.Sprintf(`{"id":"s","type":"subscribe","payload":{"query":"subscription { seq(n: %d, kb: %d) }"}}`, big, bigKB))

	tr := e.tr
	// Every member has joined its group before the groups emit.
	if !waitUntil(10*time.Second, func() bool {
		tr.shareMu.Lock()
		defer tr.shareMu.Unlock()
		n := 0
		for _, g := range tr.groups {
			n += len(g.members)
		}
		return n == len(clients)+1
	}) {
		t.Fatal("not every subscriber joined")
	}
	partials := partialFrames.Load()
	close(e.schema.start)

	// check reads n messages "1:…" to "n:…" with next(), then complete.
	check := func(name string, n int, next func() (msg, error)) error {
		for want := 1; want <= n+1; want++ {
			m, err := next()
			if err != nil {
				return fmt.Errorf("%s: message %d: %w", name, want, err)
			}
			if want == n+1 {
				if m.Type != "complete" {
					return fmt.Errorf("%s: after the last message: %s", name, m.Type)
				}
				return nil
			}
			var d struct{ Data struct{ Seq string } }
			if m.Type != "next" || json.Unmarshal(m.Payload, &d) != nil {
				return fmt.Errorf("%s: message %d: %s %.200s", name, want, m.Type, m.Payload)
			}
			if num, _, _ := strings.Cut(d.Data.Seq, ":"); num != strconv.Itoa(want) {
				return fmt.Errorf("%s: got message %s, want %d", name, num, want)
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(clients)+1)
	for i, c := range clients {
		n := small
		if c == fast {
			n = big
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- check(fmt.Sprintf("subscriber %d", i), n, func() (msg, error) {
				select {
				case m := <-c.msgs:
					return m, nil
				case <-c.done:
					return msg{}, fmt.Errorf("closed: %v", c.err)
				case <-ctx.Done():
					return msg{}, ctx.Err()
				}
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- check("the slow reader", big, func() (msg, error) {
			time.Sleep(5 * time.Millisecond)
			_, data, err := slow.Read(ctx)
			var m msg
			if err == nil {
				err = json.Unmarshal(data, &m)
			}
			return m, err
		})
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	n := partialFrames.Load() - partials
	t.Logf("%d direct writes were cut short and finished later", n)
	if n == 0 {
		t.Error("no direct write was cut short: the test does not reach that path")
	}
}
