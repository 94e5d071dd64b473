package graphqlws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// ---- a tiny executable schema, without codegen ----

const testSDL = `
type Query { hello: String viewer: String }
type Mutation { echo(s: String!): String! }
type Subscription {
  ticks(n: Int!, everyMs: Int): Int!
  viewer(n: Int!, everyMs: Int): String
  forever(everyMs: Int): Int!
  bulk(kb: Int!): String!
  seq(n: Int!, kb: Int!): String!
  boom: Int
}
`

type viewerKey struct{}

func viewerFrom(ctx context.Context) any {
	if v, ok := ctx.Value(viewerKey{}).(string); ok {
		return v
	}
	return nil
}

// testSchema implements the fields of testSDL by hand. active counts the
// subscription streams whose context is not yet cancelled.
type testSchema struct {
	schema *ast.Schema
	active atomic.Int64
	// start is closed to let seq subscriptions emit.
	start chan struct{}
}

func newTestSchema() *testSchema {
	return &testSchema{schema: gqlparser.MustLoadSchema(&ast.Source{Input: testSDL}), start: make(chan struct{})}
}

func (s *testSchema) executable() graphql.ExecutableSchema {
	return &graphql.ExecutableSchemaMock{
		SchemaFunc: func() *ast.Schema { return s.schema },
		ComplexityFunc: func(context.Context, string, string, int, map[string]any) (int, bool) {
			return 0, false
		},
		ExecFunc: s.exec,
	}
}

func (s *testSchema) exec(ctx context.Context) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	switch opCtx.Operation.Operation {
	case ast.Query, ast.Mutation:
		fields := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, nil)
		var buf bytes.Buffer
		buf.WriteByte('{')
		for i, f := range fields {
			var v any
			switch f.Name {
			case "hello":
				v = "world"
			case "viewer":
				v = viewerFrom(ctx)
			case "echo":
				v = f.ArgumentMap(opCtx.Variables)["s"]
			case "__typename":
				v = "Query"
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			k, _ := json.Marshal(f.Alias)
			b, _ := json.Marshal(v)
			buf.Write(k)
			buf.WriteByte(':')
			buf.Write(b)
		}
		buf.WriteByte('}')
		return graphql.OneShot(&graphql.Response{Data: buf.Bytes()})
	case ast.Subscription:
		f := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, nil)[0]
		args := f.ArgumentMap(opCtx.Variables)
		n, every := toInt(args["n"]), time.Duration(toInt(args["everyMs"]))*time.Millisecond
		if f.Name == "forever" || f.Name == "boom" || f.Name == "bulk" {
			n = -1
		}
		s.active.Add(1)
		context.AfterFunc(ctx, func() { s.active.Add(-1) })
		i := 0
		return func(rctx context.Context) *graphql.Response {
			if n >= 0 && i >= n {
				return nil
			}
			if f.Name == "seq" && i == 0 {
				select {
				case <-s.start:
				case <-rctx.Done():
					return nil
				}
			}
			if every > 0 {
				t := time.NewTimer(every)
				defer t.Stop()
				select {
				case <-rctx.Done():
					return nil
				case <-t.C:
				}
			}
			i++
			var v any = i
			switch f.Name {
			case "viewer":
				// The operation's context, read at every event: it must see
				// the latest connection context.
				v = viewerFrom(ctx)
			case "boom":
				panic("boom")
			case "bulk":
				v = strings.Repeat("x", toInt(args["kb"])<<10)
			case "seq": // "<i>:<kb KiB of padding>"
				v = strconv.Itoa(i) + ":" + strings.Repeat("x", toInt(args["kb"])<<10)
			}
			k, _ := json.Marshal(f.Alias)
			b, _ := json.Marshal(v)
			return &graphql.Response{Data: []byte("{" + string(k) + ":" + string(b) + "}")}
		}
	}
	return graphql.OneShot(graphql.ErrorResponse(ctx, "unsupported"))
}

func toInt(v any) int {
	switch v := v.(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	case json.Number:
		i, _ := v.Int64()
		return int(i)
	}
	return 0
}

// ---- tokens for Authenticate and Revalidate ----

// tokens is the set of valid access tokens; a token's viewer is "user:" + token.
type tokens struct {
	mu    sync.Mutex
	valid map[string]bool
}

func newTokens(valid ...string) *tokens {
	t := &tokens{valid: map[string]bool{}}
	for _, v := range valid {
		t.valid[v] = true
	}
	return t
}

func (t *tokens) set(token string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.valid[token] = ok
}

func (t *tokens) check(token string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.valid[token] {
		return fmt.Errorf("token %q: %w", token, errBadToken)
	}
	return nil
}

var errBadToken = errors.New("invalid or expired token")

type tokenKey struct{}

func (t *tokens) authenticate(ctx context.Context, payload map[string]any) (context.Context, error) {
	token, _ := payload["token"].(string)
	if err := t.check(token); err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, tokenKey{}, token)
	return context.WithValue(ctx, viewerKey{}, "user:"+token), nil
}

func (t *tokens) revalidate(ctx context.Context, payload map[string]any) (context.Context, error) {
	if payload != nil {
		token, _ := payload["accessToken"].(string)
		if err := t.check(token); err != nil {
			return nil, err
		}
		s, _ := FromContext(ctx)
		ctx = context.WithValue(s.BaseContext(), tokenKey{}, token)
		return context.WithValue(ctx, viewerKey{}, "user:"+token), nil
	}
	token, _ := ctx.Value(tokenKey{}).(string)
	return nil, t.check(token)
}

// ---- test server and client ----

type env struct {
	schema *testSchema
	tr     *Transport
	srv    *httptest.Server
	url    string
}

func newEnv(t *testing.T, tr *Transport) *env {
	return newEnvWithBase(t, tr, nil)
}

// newEnvWithBase serves tr with base, if not nil, as the requests' base context.
func newEnvWithBase(t *testing.T, tr *Transport, base context.Context) *env {
	t.Helper()
	schema := newTestSchema()
	h := handler.New(schema.executable())
	// gqlgen's default prints the stack of a recovered panic to stderr.
	h.SetRecoverFunc(func(context.Context, any) error { return errors.New("internal system error") })
	h.AddTransport(tr)
	h.AddTransport(transport.POST{})
	srv := httptest.NewUnstartedServer(h) // listens on 127.0.0.1
	if base != nil {
		srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{schema: schema, tr: tr, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// msg is a protocol message as a test client sees it.
type msg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type client struct {
	t    testing.TB
	ws   *websocket.Conn
	msgs chan msg
	done chan struct{}
	err  error // the read error, once done is closed
}

const waitFor = 5 * time.Second

func (e *env) dial(t testing.TB, header http.Header) *client {
	t.Helper()
	c, err := e.tryDial(header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.t = t
	t.Cleanup(func() { _ = c.ws.CloseNow() })
	return c
}

func (e *env) tryDial(header http.Header) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		Subprotocols: []string{Subprotocol},
		HTTPHeader:   header,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("status %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	c := &client{ws: ws, msgs: make(chan msg, 1024), done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var m msg
		if err := json.Unmarshal(data, &m); err != nil {
			c.err = fmt.Errorf("bad message from server %q: %w", data, err)
			return
		}
		c.msgs <- m
	}
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write %s: %v", s, err)
	}
}

func (c *client) send(m any) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// next returns the next message, failing if none comes within waitFor.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("connection closed while waiting for a message: %v", c.err)
	case <-time.After(waitFor):
		c.t.Fatalf("no message within %v", waitFor)
	}
	return msg{}
}

func (c *client) expect(typ, id string) msg {
	c.t.Helper()
	m := c.next()
	if m.Type != typ || m.ID != id {
		c.t.Fatalf("got %+v (payload %s), want type %q id %q", m, m.Payload, typ, id)
	}
	return m
}

// init sends connection_init and expects connection_ack.
func (c *client) init(payload any) {
	c.t.Helper()
	m := map[string]any{"type": "connection_init"}
	if payload != nil {
		m["payload"] = payload
	}
	c.send(m)
	c.expect("connection_ack", "")
}

func (c *client) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	p := map[string]any{"query": query}
	if vars != nil {
		p["variables"] = vars
	}
	c.send(map[string]any{"id": id, "type": "subscribe", "payload": p})
}

// closed waits for the server to close the connection and returns its close
// code and reason; messages before the close are skipped.
func (c *client) closed(within time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		c.t.Fatalf("connection not closed within %v", within)
	}
	var ce websocket.CloseError
	if !errors.As(c.err, &ce) {
		c.t.Fatalf("connection ended without a close frame: %v", c.err)
	}
	return ce.Code, ce.Reason
}

func (c *client) expectClose(code websocket.StatusCode, reason string) {
	c.t.Helper()
	gotCode, gotReason := c.closed(waitFor)
	if gotCode != code || (reason != "" && gotReason != reason) {
		c.t.Fatalf("closed with %d %q, want %d %q", gotCode, gotReason, code, reason)
	}
}

// sync sends a ping and returns the messages that arrive before its pong.
func (c *client) sync() []msg {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	var before []msg
	for {
		m := c.next()
		if m.Type == "pong" {
			return before
		}
		before = append(before, m)
	}
}

func data(t testing.TB, m msg) string {
	t.Helper()
	var p struct {
		Data   json.RawMessage `json:"data"`
		Errors json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	if len(p.Errors) > 0 {
		t.Fatalf("unexpected errors: %s", p.Errors)
	}
	return string(p.Data)
}

// waitUntil polls cond for at most d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- tests ----

func TestSupports(t *testing.T) {
	tr := &Transport{}
	cases := []struct {
		name   string
		method string
		header map[string]string
		want   bool
	}{
		{"upgrade with subprotocol", "GET", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Protocol": "graphql-transport-ws"}, true},
		{"among other subprotocols", "GET", map[string]string{"Upgrade": "WebSocket", "Sec-WebSocket-Protocol": "graphql-ws, graphql-transport-ws"}, true},
		{"legacy subprotocol only", "GET", map[string]string{"Upgrade": "websocket", "Sec-WebSocket-Protocol": "graphql-ws"}, false},
		{"no subprotocol", "GET", map[string]string{"Upgrade": "websocket"}, false},
		{"not an upgrade", "GET", map[string]string{"Sec-WebSocket-Protocol": "graphql-transport-ws"}, false},
		{"POST", "POST", map[string]string{"Upgrade": "websocket", "Sec-WebSocket-Protocol": "graphql-transport-ws"}, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "/graphql", nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		if got := tr.Supports(r); got != c.want {
			t.Errorf("%s: Supports = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestQueryAndMutationOverWebSocket(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(nil)

	c.subscribe("q", "{ hello }", nil)
	if got := data(t, c.expect("next", "q")); got != `{"hello":"world"}` {
		t.Fatalf("query data = %s", got)
	}
	c.expect("complete", "q")

	c.subscribe("m", "mutation($s: String!) { echo(s: $s) }", map[string]any{"s": "hi"})
	if got := data(t, c.expect("next", "m")); got != `{"echo":"hi"}` {
		t.Fatalf("mutation data = %s", got)
	}
	c.expect("complete", "m")

	// The same id may be used again once its operation completed.
	c.subscribe("q", "{ again: hello }", nil)
	if got := data(t, c.expect("next", "q")); got != `{"again":"world"}` {
		t.Fatalf("query data = %s", got)
	}
	c.expect("complete", "q")
}

func TestSubscriptionNextComplete(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(map[string]any{"anything": true})

	c.subscribe("s1", "subscription($n: Int!) { ticks(n: $n) }", map[string]any{"n": 3})
	for i := 1; i <= 3; i++ {
		if got, want := data(t, c.expect("next", "s1")), fmt.Sprintf(`{"ticks":%d}`, i); got != want {
			t.Fatalf("next %d = %s, want %s", i, got, want)
		}
	}
	c.expect("complete", "s1")

	// Two subscriptions at once, interleaved.
	c.subscribe("a", "subscription { ticks(n: 2, everyMs: 20) }", nil)
	c.subscribe("b", "subscription { t: ticks(n: 2, everyMs: 20) }", nil)
	count := map[string]int{}
	completed := map[string]bool{}
	for len(completed) < 2 {
		m := c.next()
		switch m.Type {
		case "next":
			if completed[m.ID] {
				t.Fatalf("next after complete for %s", m.ID)
			}
			count[m.ID]++
		case "complete":
			completed[m.ID] = true
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}
	if count["a"] != 2 || count["b"] != 2 {
		t.Fatalf("next counts = %v", count)
	}
}

func TestClientCompleteStopsOperation(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(nil)

	c.subscribe("s", "subscription { forever(everyMs: 5) }", nil)
	c.expect("next", "s")
	c.send(map[string]any{"id": "s", "type": "complete"})
	// Results already in flight may still arrive before the server handles
	// the complete, but never a complete.
	for _, m := range c.sync() {
		if m.Type != "next" || m.ID != "s" {
			t.Fatalf("unexpected %+v after client complete", m)
		}
	}
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatal("the operation's context was not cancelled")
	}
	time.Sleep(50 * time.Millisecond)
	if extra := c.sync(); len(extra) != 0 {
		t.Fatalf("messages after the operation was stopped: %+v", extra)
	}

	// Completing an unknown id is ignored, and the id can be reused.
	c.send(map[string]any{"id": "unknown", "type": "complete"})
	c.subscribe("s", "subscription { ticks(n: 1) }", nil)
	c.expect("next", "s")
	c.expect("complete", "s")
}

func TestSubscribeErrorsSendErrorMessage(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(nil)

	for _, q := range []string{
		"subscription { nope }",                   // validation
		"subscription {",                          // syntax
		"subscription($n: Int!) { ticks(n: $n) }", // missing variable
		"query A { hello } query B { hello }",     // no operationName
	} {
		c.subscribe("e", q, nil)
		m := c.expect("error", "e")
		var errs []struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 || errs[0].Message == "" {
			t.Fatalf("%s: error payload %s (%v)", q, m.Payload, err)
		}
		// No complete follows an error: the next message answers the ping.
		if extra := c.sync(); len(extra) != 0 {
			t.Fatalf("%s: messages after error: %+v", q, extra)
		}
	}

	// A panic in the resolver is reported as an error, not a crash.
	c.subscribe("boom", "subscription { boom }", nil)
	if m := c.expect("error", "boom"); !strings.Contains(string(m.Payload), "internal system error") {
		t.Fatalf("panic error payload = %s", m.Payload)
	}
	c.subscribe("ok", "{ hello }", nil)
	c.expect("next", "ok")
	c.expect("complete", "ok")
}

func TestPingPong(t *testing.T) {
	e := newEnv(t, &Transport{KeepAlive: 50 * time.Millisecond})
	c := e.dial(t, nil)

	// Ping is answered even before connection_init, without a payload.
	c.send(map[string]any{"type": "ping"})
	if m := c.expect("pong", ""); m.Payload != nil {
		t.Fatalf("pong payload = %s", m.Payload)
	}
	c.init(nil)
	c.send(map[string]any{"type": "ping", "payload": map[string]any{"x": 1}})
	// Server pings may interleave.
	for {
		m := c.next()
		if m.Type == "ping" {
			continue
		}
		if m.Type != "pong" || m.Payload != nil {
			t.Fatalf("got %+v, want pong without payload", m)
		}
		break
	}

	// The server pings every KeepAlive; the client's pongs are accepted.
	pings := 0
	deadline := time.After(waitFor)
	for pings < 3 {
		select {
		case m := <-c.msgs:
			if m.Type != "ping" {
				t.Fatalf("unexpected %+v", m)
			}
			pings++
			c.send(map[string]any{"type": "pong"})
		case <-c.done:
			t.Fatalf("closed: %v", c.err)
		case <-deadline:
			t.Fatalf("only %d server pings", pings)
		}
	}
	c.send(map[string]any{"type": "pong", "payload": map[string]any{"unsolicited": true}})
	c.subscribe("q", "{ hello }", nil)
	for {
		m := c.next()
		if m.Type == "ping" {
			continue
		}
		if m.Type != "next" {
			t.Fatalf("got %+v", m)
		}
		break
	}
}

func TestInitTimeout4408(t *testing.T) {
	e := newEnv(t, &Transport{InitTimeout: 150 * time.Millisecond})
	c := e.dial(t, nil)
	start := time.Now()
	c.expectClose(CloseConnectionInitialisationTimeout, "Connection initialisation timeout")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v", d)
	}

	// A connection that did init in time stays open past the timeout.
	c2 := e.dial(t, nil)
	c2.init(nil)
	time.Sleep(300 * time.Millisecond)
	c2.subscribe("q", "{ hello }", nil)
	c2.expect("next", "q")
}

func TestSecondInit4429(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(nil)
	c.send(map[string]any{"type": "connection_init"})
	c.expectClose(CloseTooManyInitialisationRequests, "Too many initialisation requests")
}

func TestSubscribeBeforeAck4401(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.subscribe("s", "{ hello }", nil)
	c.expectClose(CloseUnauthorized, "Unauthorized")
}

func TestDuplicateSubscriber4409(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(nil)
	c.subscribe("dup", "subscription { forever(everyMs: 20) }", nil)
	c.subscribe("dup", "subscription { ticks(n: 1) }", nil)
	c.expectClose(CloseSubscriberAlreadyExists, "Subscriber for dup already exists")
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatal("the running operation was not cancelled by the close")
	}
}

func TestInvalidMessages4400(t *testing.T) {
	e := newEnv(t, &Transport{})
	cases := []struct {
		name, raw string
		afterInit bool
	}{
		{"not JSON", `hello`, false},
		{"JSON array", `[1]`, false},
		{"JSON null", `null`, false},
		{"missing type", `{"id":"1"}`, false},
		{"type not a string", `{"type":1}`, false},
		{"unknown type", `{"type":"start","id":"1"}`, false},
		{"connection_init payload not an object", `{"type":"connection_init","payload":"x"}`, false},
		{"ping payload an array", `{"type":"ping","payload":[1]}`, false},
		{"connection_ack from client", `{"type":"connection_ack"}`, true},
		{"next from client", `{"type":"next","id":"1","payload":{}}`, true},
		{"error from client", `{"type":"error","id":"1","payload":[]}`, true},
		{"subscribe without id", `{"type":"subscribe","payload":{"query":"{ hello }"}}`, true},
		{"subscribe with empty id", `{"type":"subscribe","id":"","payload":{"query":"{ hello }"}}`, true},
		{"subscribe with numeric id", `{"type":"subscribe","id":1,"payload":{"query":"{ hello }"}}`, true},
		{"subscribe without payload", `{"type":"subscribe","id":"1"}`, true},
		{"subscribe without query", `{"type":"subscribe","id":"1","payload":{}}`, true},
		{"subscribe with variables array", `{"type":"subscribe","id":"1","payload":{"query":"{ hello }","variables":[]}}`, true},
		{"subscribe with numeric operationName", `{"type":"subscribe","id":"1","payload":{"query":"{ hello }","operationName":1}}`, true},
		{"complete without id", `{"type":"complete"}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, nil)
			if tc.afterInit {
				c.init(nil)
			}
			c.sendRaw(tc.raw)
			code, reason := c.closed(waitFor)
			if code != CloseBadRequest || reason == "" {
				t.Fatalf("closed with %d %q, want 4400 with a reason", code, reason)
			}
		})
	}

	// Nullish optional fields are fine.
	c := e.dial(t, nil)
	c.sendRaw(`{"type":"connection_init","payload":null}`)
	c.expect("connection_ack", "")
	c.sendRaw(`{"type":"subscribe","id":"1","payload":{"query":"{ hello }","variables":null,"operationName":null,"extensions":null}}`)
	c.expect("next", "1")
	c.expect("complete", "1")
}

func TestAuthenticate(t *testing.T) {
	tok := newTokens("good")
	e := newEnv(t, &Transport{Authenticate: tok.authenticate})

	bad := e.dial(t, nil)
	bad.send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": "bad"}})
	bad.expectClose(CloseForbidden, "Forbidden")

	none := e.dial(t, nil)
	none.send(map[string]any{"type": "connection_init"})
	none.expectClose(CloseForbidden, "Forbidden")

	good := e.dial(t, nil)
	good.init(map[string]any{"token": "good"})
	good.subscribe("v", "{ viewer }", nil)
	if got := data(t, good.expect("next", "v")); got != `{"viewer":"user:good"}` {
		t.Fatalf("viewer = %s", got)
	}
}

func TestAuthenticatePanic4500(t *testing.T) {
	e := newEnv(t, &Transport{Authenticate: func(context.Context, map[string]any) (context.Context, error) {
		panic("auth exploded")
	}})
	c := e.dial(t, nil)
	c.send(map[string]any{"type": "connection_init"})
	c.expectClose(CloseInternalServerError, "Internal server error")
}

func TestRevalidateFailureCloses4403(t *testing.T) {
	tok := newTokens("good")
	every := 200 * time.Millisecond
	e := newEnv(t, &Transport{
		Authenticate:    tok.authenticate,
		Revalidate:      tok.revalidate,
		RevalidateEvery: every,
	})
	c := e.dial(t, nil)
	c.init(map[string]any{"token": "good"})
	c.subscribe("s", "subscription { forever(everyMs: 20) }", nil)
	c.expect("next", "s")

	// Still valid: periodic checks pass and the connection stays up.
	time.Sleep(2 * every)
	c.sync()

	tok.set("good", false) // signed out
	revoked := time.Now()
	code, reason := c.closed(every + time.Second)
	if code != CloseForbidden || reason != "Forbidden" {
		t.Fatalf("closed with %d %q", code, reason)
	}
	if d := time.Since(revoked); d > every+time.Second {
		t.Fatalf("closed %v after revocation", d)
	}
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatal("operations were not cancelled")
	}
}

func TestPingWithBadAccessToken4403(t *testing.T) {
	tok := newTokens("good")
	e := newEnv(t, &Transport{
		Authenticate:    tok.authenticate,
		Revalidate:      tok.revalidate,
		RevalidateEvery: time.Hour,
	})
	c := e.dial(t, nil)
	c.init(map[string]any{"token": "good"})
	c.send(map[string]any{"type": "ping", "payload": map[string]any{"accessToken": "forged"}})
	c.expectClose(CloseForbidden, "Forbidden")
}

func TestTokenSwitchViaPing(t *testing.T) {
	tok := newTokens("old")
	every := 150 * time.Millisecond
	e := newEnv(t, &Transport{
		Authenticate:    tok.authenticate,
		Revalidate:      tok.revalidate,
		RevalidateEvery: every,
	})
	c := e.dial(t, nil)
	c.init(map[string]any{"token": "old"})

	// A running subscription reads the viewer from its context at every event.
	c.subscribe("watch", "subscription { viewer(n: 1000, everyMs: 20) }", nil)
	if got := data(t, c.expect("next", "watch")); got != `{"viewer":"user:old"}` {
		t.Fatalf("viewer = %s", got)
	}

	tok.set("new", true)
	c.send(map[string]any{"type": "ping", "payload": map[string]any{"accessToken": "new"}})
	// The pong comes once the switch is done.
	for _, m := range func() []msg {
		var before []msg
		for {
			m := c.next()
			if m.Type == "pong" {
				return before
			}
			before = append(before, m)
		}
	}() {
		if m.Type != "next" || m.ID != "watch" {
			t.Fatalf("unexpected %+v", m)
		}
	}
	// The old token expires: the connection now stands on the new one.
	tok.set("old", false)

	sawNew := false
	for i := 0; i < 100 && !sawNew; i++ {
		m := c.expect("next", "watch")
		sawNew = data(t, m) == `{"viewer":"user:new"}`
	}
	if !sawNew {
		t.Fatal("the running subscription never saw the new viewer")
	}
	c.subscribe("q", "{ viewer }", nil)
	for {
		m := c.next()
		if m.ID == "q" {
			if got := data(t, m); got != `{"viewer":"user:new"}` {
				t.Fatalf("new operation viewer = %s", got)
			}
			break
		}
	}
	// Several revalidation periods pass with "old" revoked.
	time.Sleep(3 * every)
	c.sync()

	// Revoking the new token closes the connection.
	tok.set("new", false)
	code, _ := c.closed(every + time.Second)
	if code != CloseForbidden {
		t.Fatalf("closed with %d", code)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	e := newEnv(t, &Transport{MaxSubscriptions: 2})
	c := e.dial(t, nil)
	c.init(nil)
	c.subscribe("a", "subscription { forever(everyMs: 30) }", nil)
	c.subscribe("b", "subscription { forever(everyMs: 30) }", nil)
	c.subscribe("c", "subscription { forever(everyMs: 30) }", nil)
	var tooMany msg
	for tooMany.Type == "" {
		m := c.next()
		switch {
		case m.Type == "next" && (m.ID == "a" || m.ID == "b"):
		case m.Type == "error" && m.ID == "c":
			tooMany = m
		default:
			t.Fatalf("unexpected %+v", m)
		}
	}
	var errs []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	if err := json.Unmarshal(tooMany.Payload, &errs); err != nil || len(errs) != 1 ||
		errs[0].Message == "" || errs[0].Extensions["code"] != ErrorCodeTooManySubscriptions {
		t.Fatalf("error payload %s (%v)", tooMany.Payload, err)
	}

	// Completing one makes room.
	c.send(map[string]any{"id": "a", "type": "complete"})
	c.subscribe("c", "subscription { ticks(n: 1) }", nil)
	for {
		m := c.next()
		if m.ID == "c" {
			if m.Type != "next" {
				t.Fatalf("got %+v", m)
			}
			break
		}
	}
}

func TestOriginCheck(t *testing.T) {
	e := newEnv(t, &Transport{})
	_, err := e.tryDial(http.Header{"Origin": {"http://evil.example"}})
	if err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Fatalf("cross-origin dial: %v, want HTTP 403", err)
	}
	same := e.dial(t, http.Header{"Origin": {e.srv.URL}})
	same.init(nil)
	none := e.dial(t, nil)
	none.init(nil)

	open := newEnv(t, &Transport{CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://app.example"
	}})
	ok := open.dial(t, http.Header{"Origin": {"https://app.example"}})
	ok.init(nil)
	if _, err := open.tryDial(http.Header{"Origin": {"https://other.example"}}); err == nil || !strings.Contains(err.Error(), "status 403") {
		t.Fatalf("dial: %v, want HTTP 403", err)
	}
}

func TestReadLimit(t *testing.T) {
	e := newEnv(t, &Transport{ReadLimit: 1024})
	c := e.dial(t, nil)
	c.init(nil)
	c.subscribe("big", "{ hello }"+strings.Repeat(" ", 2048), nil)
	c.expectClose(websocket.StatusMessageTooBig, "")
}

func TestCloseCancelsOperations(t *testing.T) {
	e := newEnv(t, &Transport{})
	c := e.dial(t, nil)
	c.init(nil)
	for i := range 3 {
		c.subscribe(strconv.Itoa(i), "subscription { forever(everyMs: 10) }", nil)
	}
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 3 }) {
		t.Fatalf("active = %d, want 3", e.schema.active.Load())
	}
	_ = c.ws.CloseNow()
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatalf("active = %d after close, want 0", e.schema.active.Load())
	}
}

func TestRequestContextEndCloses1001(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnvWithBase(t, &Transport{}, base)
	c := e.dial(t, nil)
	c.init(nil)
	c.subscribe("s", "subscription { forever(everyMs: 10) }", nil)
	c.expect("next", "s")
	cancel() // the server shuts down
	c.expectClose(websocket.StatusGoingAway, "Going away")
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatal("operations were not cancelled")
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	cycles := 1000
	if testing.Short() {
		cycles = 100
	}
	e := newEnv(t, &Transport{})
	cycle := func(i int) {
		c, err := e.tryDial(nil)
		if err != nil {
			t.Fatalf("cycle %d: dial: %v", i, err)
		}
		c.t = t
		c.init(nil)
		c.subscribe("s", "subscription { forever(everyMs: 1) }", nil)
		c.expect("next", "s")
		if i%2 == 0 {
			_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
		} else {
			_ = c.ws.CloseNow() // abrupt
		}
		<-c.done
	}
	cycle(-1) // warm up lazily started goroutines
	runtime.GC()
	base := runtime.NumGoroutine()

	start := time.Now()
	for i := range cycles {
		cycle(i)
	}
	t.Logf("%d cycles in %v", cycles, time.Since(start))

	const slack = 5
	var n int
	if !waitUntil(10*time.Second, func() bool {
		n = runtime.NumGoroutine()
		return n <= base+slack
	}) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines: %d at start, %d after %d cycles\n%s", base, n, cycles, buf)
	}
	// The schema counts down in context.AfterFunc goroutines.
	if !waitUntil(waitFor, func() bool { return e.schema.active.Load() == 0 }) {
		t.Fatalf("%d operations still active", e.schema.active.Load())
	}
}

func TestSessionContext(t *testing.T) {
	base, cancelBase := context.WithCancel(context.WithValue(context.Background(), viewerKey{}, "request"))
	defer cancelBase()
	s := newSession(base, nil)
	opCtx, cancelOp := context.WithCancel(s.BaseContext())
	live := context.Context(&liveContext{Context: opCtx, s: s})
	derived := context.WithValue(live, tokenKey{}, "x")

	if got, _ := FromContext(derived); got != s {
		t.Fatal("FromContext did not find the session")
	}
	if v := viewerFrom(derived); v != "request" {
		t.Fatalf("viewer = %v, want the request's", v)
	}
	s.setContext(context.WithValue(s.BaseContext(), viewerKey{}, "alice"))
	if v := viewerFrom(derived); v != "alice" {
		t.Fatalf("viewer = %v, want alice", v)
	}
	// An unrelated context returned by a hook still carries the session.
	s.setContext(context.WithValue(context.Background(), viewerKey{}, "bob"))
	if v := viewerFrom(derived); v != "bob" {
		t.Fatalf("viewer = %v, want bob", v)
	}
	if got, _ := FromContext(s.Context()); got != s {
		t.Fatal("session lost from a replaced context")
	}
	s.setContext(context.WithValue(s.BaseContext(), viewerKey{}, "carol"))

	// Cancellation is the operation's own, and context.Cause and child
	// contexts see it.
	child, cancelChild := context.WithCancel(derived)
	defer cancelChild()
	cancelOp()
	select {
	case <-child.Done():
	case <-time.After(time.Second):
		t.Fatal("child not cancelled with the operation")
	}
	if err := context.Cause(derived); !errors.Is(err, context.Canceled) {
		t.Fatalf("Cause = %v", err)
	}
	if s.Context().Err() != nil {
		t.Fatal("cancelling an operation cancelled the connection")
	}
	if v := viewerFrom(derived); v != "carol" {
		t.Fatalf("viewer = %v, want carol", v)
	}
}

// TestInteropReferenceClient runs the graphql-ws npm client against the
// transport. It needs node and npm (and the npm registry, the first time);
// without them it skips, unless KILN_REQUIRE_INTEROP=1.
func TestInteropReferenceClient(t *testing.T) {
	require := os.Getenv("KILN_REQUIRE_INTEROP") == "1"
	unavailable := func(format string, args ...any) {
		t.Helper()
		if require {
			t.Fatalf("interop unavailable (KILN_REQUIRE_INTEROP=1): "+format, args...)
		}
		t.Skipf("interop unavailable: "+format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node not found: %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-ws", "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			unavailable("npm not found: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error",
			"--prefer-offline", "--fetch-retries=1", "--fetch-retry-maxtimeout=10000")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			unavailable("npm ci: %v\n%s", err, out)
		}
	}

	tok := newTokens("good")
	e := newEnv(t, &Transport{
		Authenticate: tok.authenticate,
		Revalidate:   tok.revalidate,
		KeepAlive:    40 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", e.url+"/graphql")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client.mjs: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	t.Logf("interop output: %s", out)

	var got struct {
		Ticks      []json.RawMessage `json:"ticks"`
		SlowTicks  []json.RawMessage `json:"slowTicks"`
		Hello      []json.RawMessage `json:"hello"`
		Validation struct {
			Errors []string `json:"errors"`
		} `json:"validation"`
		Forbidden struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		} `json:"forbidden"`
		ServerPings int `json:"serverPings"`
		ClientPongs int `json:"clientPongs"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	compact := func(raws []json.RawMessage) []string {
		var s []string
		for _, r := range raws {
			var b bytes.Buffer
			_ = json.Compact(&b, r)
			s = append(s, b.String())
		}
		return s
	}
	wantTicks := []string{`{"data":{"ticks":1}}`, `{"data":{"ticks":2}}`, `{"data":{"ticks":3}}`}
	if g := compact(got.Ticks); !slices.Equal(g, wantTicks) {
		t.Errorf("ticks = %v, want %v", g, wantTicks)
	}
	if g := compact(got.SlowTicks); !slices.Equal(g, wantTicks) {
		t.Errorf("slow ticks = %v, want %v", g, wantTicks)
	}
	if g := compact(got.Hello); !slices.Equal(g, []string{`{"data":{"hello":"world","viewer":"user:good"}}`}) {
		t.Errorf("hello = %v", g)
	}
	if len(got.Validation.Errors) == 0 {
		t.Errorf("validation errors not reported: %s", out)
	}
	if got.Forbidden.Code != CloseForbidden || got.Forbidden.Reason != "Forbidden" {
		t.Errorf("refused token: %+v, want 4403 Forbidden", got.Forbidden)
	}
	if got.ServerPings == 0 || got.ClientPongs == 0 {
		t.Errorf("pings: server %d, pongs to client %d; want both > 0", got.ServerPings, got.ClientPongs)
	}
}

// TestWriteTimeoutClosesNonReader: a client that stops reading while the
// server has messages for it is disconnected once a write has waited for
// WriteTimeout/2 to WriteTimeout, and its operations end; a reading client
// on the same server is unaffected.
func TestWriteTimeoutClosesNonReader(t *testing.T) {
	timeout := 400 * time.Millisecond
	e := newEnv(t, &Transport{WriteTimeout: timeout})

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := ws.Read(ctx); err != nil || !strings.Contains(string(ack), "connection_ack") {
		t.Fatalf("ack: %s, %v", ack, err)
	}
	// 64 KiB messages, as fast as the server can write them; this client
	// reads nothing more, so the socket buffers fill up and writes block.
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { bulk(kb: 64) }"}}`)); err != nil {
		t.Fatal(err)
	}
	reader := e.dial(t, nil)
	reader.init(nil)
	reader.subscribe("t", "subscription { forever(everyMs: 20) }", nil)
	reader.expect("next", "t")

	if !waitUntil(timeout+10*time.Second, func() bool { return e.schema.active.Load() == 1 }) {
		t.Fatalf("%d operations active: the non-reading client's was not ended", e.schema.active.Load())
	}
	reader.sync() // still served
}

// TestKeepAliveOnlyWhenIdle: the server pings a connection that carried
// no message of an operation during a KeepAlive interval, and not one that
// carries them.
func TestKeepAliveOnlyWhenIdle(t *testing.T) {
	every := 100 * time.Millisecond
	e := newEnv(t, &Transport{KeepAlive: every})
	busy, idle := e.dial(t, nil), e.dial(t, nil)
	busy.init(nil)
	idle.init(nil)
	busy.subscribe("s", "subscription { forever(everyMs: 10) }", nil)
	busy.expect("next", "s")
	count := func(c *client, d time.Duration) (pings int) {
		deadline := time.After(d)
		for {
			select {
			case m := <-c.msgs:
				if m.Type == "ping" {
					pings++
					c.send(map[string]any{"type": "pong"})
				}
			case <-c.done:
				t.Fatalf("closed: %v", c.err)
			case <-deadline:
				return pings
			}
		}
	}
	done := make(chan int)
	go func() { done <- count(idle, 10*every) }()
	if n := count(busy, 10*every); n != 0 {
		t.Errorf("a connection with a message every 10 ms got %d pings in %s", n, 10*every)
	}
	if n := <-done; n < 5 {
		t.Errorf("an idle connection got %d pings in %s, want about 10", n, 10*every)
	}
}
