package redis_test

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"kiln/server/internal/pubsub"
	"kiln/server/internal/pubsub/pubsubtest"
	"kiln/server/internal/pubsub/redis"
	"kiln/server/kilntest"
)

// redisURL returns the test Redis, or skips (fails with KILN_REQUIRE_REDIS=1).
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("KILN_TEST_REDIS_URL")
	if url == "" {
		const how = "export KILN_TEST_REDIS_URL=$(.ci/redis.sh start)"
		if os.Getenv("KILN_REQUIRE_REDIS") == "1" {
			t.Fatal("KILN_REQUIRE_REDIS=1 but KILN_TEST_REDIS_URL is not set; " + how)
		}
		t.Skip("KILN_TEST_REDIS_URL is not set: Redis tests are skipped. To run them: " + how)
	}
	return url
}

func newBus(t *testing.T, url string, opts ...redis.Option) *redis.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := redis.New(ctx, url, opts...)
	if err != nil {
		t.Fatalf("redis.New(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	url := redisURL(t)
	pubsubtest.Run(t, func(t *testing.T) (pubsub.Bus, pubsub.Bus) {
		return newBus(t, url, redis.WithBufferSize(pubsubtest.BufferSize)), newBus(t, url, redis.WithBufferSize(pubsubtest.BufferSize))
	})
}

func TestChannelPrefix(t *testing.T) {
	url := redisURL(t)
	p := pubsubtest.Prefix(t)
	a := newBus(t, url, redis.WithChannelPrefix(p+"ns1:"))
	b := newBus(t, url, redis.WithChannelPrefix(p+"ns1:"))
	other := newBus(t, url, redis.WithChannelPrefix(p+"ns2:"))
	sa := pubsubtest.Subscribe(t, a, "topic")
	so := pubsubtest.Subscribe(t, other, "topic")
	pubsubtest.Publish(t, b, "topic", "hi")
	if m := pubsubtest.Recv(t, sa); m.Topic != "topic" || string(m.Data) != "hi" {
		t.Fatalf("got %q on %q", m.Data, m.Topic)
	}
	pubsubtest.ExpectNone(t, so, 100*time.Millisecond)
}

// TestEnvelope: a message travels on Redis as "kiln1 <unix-nanos>\n" + data;
// a payload that another program publishes without it arrives whole, with
// no publish time.
func TestEnvelope(t *testing.T) {
	url := redisURL(t)
	p := pubsubtest.Prefix(t)
	a := newBus(t, url, redis.WithChannelPrefix(p))
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := goredis.NewClient(opts)
	defer raw.Close()
	ctx := context.Background()
	watch := raw.Subscribe(ctx, p+"topic")
	defer watch.Close()
	if _, err := watch.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	s := pubsubtest.Subscribe(t, a, "topic")

	before := time.Now()
	pubsubtest.Publish(t, a, "topic", `{"id":1}`)
	m, err := watch.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(m.Payload, "\n")
	ns, _ := strconv.ParseInt(strings.TrimPrefix(head, "kiln1 "), 10, 64)
	if !strings.HasPrefix(head, "kiln1 ") || body != `{"id":1}` || ns < before.UnixNano() {
		t.Fatalf("payload on Redis %q", m.Payload)
	}
	if got := pubsubtest.Recv(t, s); string(got.Data) != `{"id":1}` || got.Published.UnixNano() != ns {
		t.Fatalf("got %q published %v, want the data and %d", got.Data, got.Published, ns)
	}

	if err := raw.Publish(ctx, p+"topic", `{"id":2}`).Err(); err != nil {
		t.Fatal(err)
	}
	if got := pubsubtest.Recv(t, s); string(got.Data) != `{"id":2}` || !got.Published.IsZero() {
		t.Fatalf("external payload: got %q published %v", got.Data, got.Published)
	}
}

// New fails, and fast, when nothing listens.
func TestNewUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	start := time.Now()
	b, err := redis.New(context.Background(), "redis://"+addr+"/0")
	if err == nil {
		_ = b.Close()
		t.Fatal("New succeeded without a server")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("New took %v to fail", d)
	}
	if _, err := redis.New(context.Background(), "http://nope"); err == nil {
		t.Fatal("New accepted a non-redis URL")
	}
}

// TestRedisRestart restarts a real server (its own, so the tests of other
// packages sharing KILN_TEST_REDIS_URL are not disturbed) under subscribers
// of two buses, and checks that nothing is silent.
func TestRedisRestart(t *testing.T) {
	redis := kilntest.PrivateRedis(t)
	url := redis.URL

	a, b := newBus(t, url), newBus(t, url)
	topic := pubsubtest.Prefix(t) + "restart"
	subs := []pubsub.Subscription{pubsubtest.Subscribe(t, a, topic), pubsubtest.Subscribe(t, b, topic)}
	pubsubtest.Publish(t, a, topic, "before")
	for _, s := range subs {
		expectData(t, s, "before")
	}

	const down = 2 * time.Second // Redis stays down that long
	cmd := redis.Command("restart", "2")
	cmd.Stderr = &lockedBuffer{}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis.sh restart: %v", err)
	}
	waitCmd := make(chan error, 1)
	cmdDone := make(chan struct{})
	go func() { waitCmd <- cmd.Wait(); close(cmdDone) }()
	t.Cleanup(func() {
		select { // never leave the server down for the next test
		case <-cmdDone:
		case <-time.After(30 * time.Second):
		}
	})

	for i, s := range subs {
		pubsubtest.ExpectEvent(t, s, pubsub.EventLost, 5*time.Second)
		t.Logf("subscriber %d: EventLost %v after the restart began", i, time.Since(start).Round(time.Millisecond))
	}
	lostAt := time.Since(start)

	// Publish while Redis is down fails, fast.
	pstart := time.Now()
	err := a.Publish(context.Background(), topic, []byte("while down"))
	pd := time.Since(pstart)
	if err == nil {
		t.Fatalf("Publish succeeded while Redis was down (%v after the restart began)", time.Since(start))
	}
	t.Logf("Publish while down: error after %v: %v", pd.Round(time.Millisecond), err)
	if pd >= 3*time.Second {
		t.Fatalf("Publish while down took %v, want < 3s", pd)
	}
	// Subscribing while down works and reports the loss at once.
	late, err := b.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe while down: %v", err)
	}
	defer late.Close()
	pubsubtest.ExpectEvent(t, late, pubsub.EventLost, time.Second)
	subs = append(subs, late)

	for i, s := range subs {
		pubsubtest.ExpectEvent(t, s, pubsub.EventRestored, down+10*time.Second)
		t.Logf("subscriber %d: EventRestored %v after the restart began (%v after EventLost)", i,
			time.Since(start).Round(time.Millisecond), (time.Since(start) - lostAt).Round(time.Millisecond))
	}
	select {
	case err := <-waitCmd:
		if err != nil {
			t.Fatalf("redis.sh restart: %v\n%s", err, cmd.Stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("redis.sh restart did not finish")
	}

	// Delivery resumed: every subscriber gets what is published now. (The
	// publishing pool may need a moment to dial again.)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := a.Publish(context.Background(), topic, []byte("after"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range subs {
		expectData(t, s, "after")
	}
	pubsubtest.Publish(t, b, topic, "after 2")
	for _, s := range subs {
		expectData(t, s, "after 2")
	}
	for _, s := range subs {
		select {
		case ev := <-s.Events():
			t.Fatalf("unexpected event %v after recovery", ev)
		default:
		}
	}
}

// TestConnectionFaults puts a TCP proxy between a bus and Redis to cut the
// connections (closed: seen at once) and to blackhole them (open but
// silent: only the health check can tell).
func TestConnectionFaults(t *testing.T) {
	url := redisURL(t)
	px := newProxy(t, strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0"))
	direct := newBus(t, url)
	viaProxy := newBus(t, "redis://"+px.addr()+"/0")
	topic := pubsubtest.Prefix(t) + "faults"
	s := pubsubtest.Subscribe(t, viaProxy, topic)
	pubsubtest.Publish(t, direct, topic, "0")
	expectData(t, s, "0")

	t.Run("Blackhole", func(t *testing.T) {
		px.setMode(modeBlackhole)
		start := time.Now()
		pubsubtest.ExpectEvent(t, s, pubsub.EventLost, 5*time.Second)
		lost := time.Since(start)
		t.Logf("blackholed connection: EventLost after %v", lost.Round(time.Millisecond))
		if lost > 2500*time.Millisecond {
			t.Errorf("EventLost took %v, want about 2s at most", lost)
		}
		pstart := time.Now()
		err := viaProxy.Publish(context.Background(), topic, []byte("lost"))
		pd := time.Since(pstart)
		t.Logf("Publish into a blackhole: %v after %v", err, pd.Round(time.Millisecond))
		if err == nil || pd >= 3*time.Second {
			t.Fatalf("Publish into a blackhole: err=%v after %v, want an error in < 3s", err, pd)
		}
		pubsubtest.Publish(t, direct, topic, "missed") // the subscriber cannot get it

		px.setMode(modePass)
		start = time.Now()
		pubsubtest.ExpectEvent(t, s, pubsub.EventRestored, 10*time.Second)
		t.Logf("healed: EventRestored after %v", time.Since(start).Round(time.Millisecond))
		pubsubtest.Publish(t, direct, topic, "1")
		expectData(t, s, "1")
	})

	t.Run("Cut", func(t *testing.T) {
		px.setMode(modeRefuse)
		start := time.Now()
		pubsubtest.ExpectEvent(t, s, pubsub.EventLost, 5*time.Second)
		t.Logf("closed connection: EventLost after %v", time.Since(start).Round(time.Millisecond))
		pstart := time.Now()
		err := viaProxy.Publish(context.Background(), topic, []byte("lost"))
		pd := time.Since(pstart)
		t.Logf("Publish while refused: %v after %v", err, pd.Round(time.Millisecond))
		if err == nil || pd >= 3*time.Second {
			t.Fatalf("Publish while refused: err=%v after %v, want an error in < 3s", err, pd)
		}
		// A subscription to a new topic made while down starts lost, and
		// its topic is subscribed by the recovery.
		topic2 := topic + "-new"
		s2, err := viaProxy.Subscribe(context.Background(), topic2)
		if err != nil {
			t.Fatalf("Subscribe while down: %v", err)
		}
		defer s2.Close()
		pubsubtest.ExpectEvent(t, s2, pubsub.EventLost, time.Second)
		time.Sleep(time.Second) // a few reconnect attempts fail

		px.setMode(modePass)
		start = time.Now()
		pubsubtest.ExpectEvent(t, s, pubsub.EventRestored, 10*time.Second)
		t.Logf("healed: EventRestored after %v", time.Since(start).Round(time.Millisecond))
		pubsubtest.ExpectEvent(t, s2, pubsub.EventRestored, time.Second)
		pubsubtest.Publish(t, direct, topic, "2")
		expectData(t, s, "2")
		pubsubtest.Publish(t, direct, topic2, "new")
		expectData(t, s2, "new")
	})
}

func expectData(t *testing.T, s pubsub.Subscription, want string) {
	t.Helper()
	if m := pubsubtest.Recv(t, s); string(m.Data) != want {
		t.Fatalf("got %q, want %q", m.Data, want)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ----------------------------------------------------------------- proxy ---

type proxyMode int

const (
	modePass      proxyMode = iota
	modeRefuse              // close every connection, accept none
	modeBlackhole           // keep connections open, drop all data
)

type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// setMode switches the mode; leaving refuse or blackhole closes the
// connections that lost data, like a healed partition whose TCP
// connections did not survive.
func (p *proxy) setMode(m proxyMode) {
	p.mu.Lock()
	old := p.mode
	p.mode = m
	p.mu.Unlock()
	if m == modeRefuse || (old == modeBlackhole && m != modeBlackhole) {
		p.closeAll()
	}
}

func (p *proxy) getMode() proxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == modeRefuse {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.getMode() == modePass {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
