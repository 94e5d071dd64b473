package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisURL returns KILN_TEST_REDIS_URL; without it the test is skipped, or
// fails when KILN_REQUIRE_REDIS=1.
func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("KILN_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("KILN_REQUIRE_REDIS") == "1" {
			t.Fatal("KILN_REQUIRE_REDIS=1 but KILN_TEST_REDIS_URL is not set")
		}
		t.Skip("Redis test skipped: set KILN_TEST_REDIS_URL (start one with: export KILN_TEST_REDIS_URL=$(.ci/redis.sh start))")
	}
	return u
}

// newClient returns a client for url, closed when the test ends: one per
// simulated server instance.
func newClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// uniqueIP returns a fresh key so runs never see each other's buckets.
func uniqueIP(t *testing.T) string {
	var b [6]byte
	rand.Read(b[:])
	return "test-" + t.Name() + "-" + hex.EncodeToString(b[:])
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// TestRedisShared: two Limiters (two server instances, each with its own
// client) on one Redis share one budget per key.
func TestRedisShared(t *testing.T) {
	url := redisURL(t)
	ctx := context.Background()
	lim := Limits{PerIP: 1, IPBurst: 4, PerUser: 1, UserBurst: 2}
	var logs logBuffer
	a := Redis(ctx, newClient(t, url), lim, Memory(lim).WithLogger(logs.logger()))
	b := Redis(ctx, newClient(t, url), lim, Memory(lim).WithLogger(logs.logger()))

	ip := IPKey(uniqueIP(t))
	allowed := 0
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		ok, wait := l.Allow(ctx, ip)
		if ok {
			allowed++
		} else if wait <= 0 || wait > time.Second {
			t.Errorf("request %d: retry after %s, want (0, 1s]", i, wait)
		}
	}
	if allowed != 4 {
		t.Fatalf("%d of 10 requests allowed across two instances, want the shared burst of 4", allowed)
	}
	// The user limit is shared too, and separate from the IP one.
	user := UserKey(uniqueIP(t))
	mustAllow(t, a, user, 1)
	mustAllow(t, b, user, 1)
	mustRefuse(t, a, user, -1)
	mustRefuse(t, b, user, -1)

	// Through the middleware: instance b refuses what instance a used up.
	mwIP := uniqueIP(t)
	keys := func(*http.Request) (string, string) { return mwIP, "" }
	ha, hb := a.Middleware(&okHandler{}, keys), b.Middleware(&okHandler{}, keys)
	for i := range 4 {
		if rec := do(ha, "", ""); rec.Code != 200 {
			t.Fatalf("instance a, request %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	checkLimited(t, do(hb, "", ""), 1)
	if s := logs.String(); s != "" {
		t.Errorf("unexpected logs with Redis up:\n%s", s)
	}
}

// TestRedisRefill: the Redis buckets refill at the rate.
func TestRedisRefill(t *testing.T) {
	url := redisURL(t)
	ctx := context.Background()
	l := Redis(ctx, newClient(t, url), Limits{PerIP: 20, IPBurst: 2}, nil)
	ip := IPKey(uniqueIP(t))
	mustAllow(t, l, ip, 2)
	ok, wait := l.Allow(ctx, ip)
	if ok || wait <= 0 || wait > 50*time.Millisecond {
		t.Fatalf("3rd request: %v, retry after %s; want refused, retry within 50ms", ok, wait)
	}
	time.Sleep(wait + 5*time.Millisecond)
	mustAllow(t, l, ip, 1)
	time.Sleep(150 * time.Millisecond) // a full bucket, not more
	mustAllow(t, l, ip, 2)
	mustRefuse(t, l, ip, -1)
}

// TestRedisDown: with Redis unreachable every instance limits on its own
// fallback; requests get 200 or 429, never an error, and quickly; the
// failure is logged once.
func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	lim := Limits{PerIP: 1, IPBurst: 3, PerUser: 1, UserBurst: 100}
	var logs logBuffer
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer dead.Close()
	a := Redis(ctx, dead, lim, Memory(lim).WithLogger(logs.logger()))
	b := Redis(ctx, dead, lim, Memory(lim).WithLogger(logs.logger()))

	keys := func(*http.Request) (string, string) { return "192.0.2.50", "" }
	for name, l := range map[string]*Limiter{"a": a, "b": b} {
		h := l.Middleware(&okHandler{}, keys)
		start := time.Now()
		codes := map[int]int{}
		for range 10 {
			codes[do(h, "", "").Code]++
		}
		if codes[200] != 3 || codes[429] != 7 || len(codes) != 2 {
			t.Errorf("instance %s: status counts %v, want 3×200 (its own burst) and 7×429", name, codes)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("instance %s: 10 requests took %s", name, d)
		}
	}
	// Each instance logs its first failure (at start), then nothing for 10s.
	for range 100 {
		a.Allow(ctx, IPKey("192.0.2.51"))
	}
	if n := strings.Count(logs.String(), "Redis unavailable"); n != 2 {
		t.Errorf("%d failure logs, want 2 (one per instance):\n%s", n, logs.String())
	}
}

// TestRedisHung: a Redis that accepts connections and never answers costs
// each request at most the Redis timeout, once per retry interval.
func TestRedisHung(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	defer func(d time.Duration) { redisRetry = d }(redisRetry)
	redisRetry = 100 * time.Millisecond
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	defer client.Close()
	start := time.Now()
	l := Redis(ctx, client, Limits{PerIP: 1, IPBurst: 2}, Memory(Limits{PerIP: 1, IPBurst: 2}).WithLogger(slog.New(slog.DiscardHandler)))
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Redis() took %s with a hung server", d)
	}
	start = time.Now()
	results := []bool{}
	for range 4 {
		ok, _ := l.Allow(ctx, IPKey("192.0.2.60"))
		results = append(results, ok)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("4 requests took %s with a hung Redis", d)
	}
	if want := []bool{true, true, false, false}; !equal(results, want) {
		t.Errorf("allowed %v, want %v (the fallback's burst of 2)", results, want)
	}
	// After the retry interval one request probes Redis, waits for the
	// Redis timeout and is decided by the fallback; meanwhile the others
	// do not wait.
	time.Sleep(2 * redisRetry)
	var wg sync.WaitGroup
	var probe time.Duration
	wg.Go(func() {
		start := time.Now()
		if ok, _ := l.Allow(ctx, IPKey("192.0.2.60")); ok {
			t.Error("probe allowed over the fallback's limit")
		}
		probe = time.Since(start)
	})
	time.Sleep(20 * time.Millisecond)
	start = time.Now()
	for range 10 {
		if ok, _ := l.Allow(ctx, IPKey("192.0.2.61")); !ok {
			break
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("requests during the probe took %s", d)
	}
	wg.Wait()
	if probe < redisTimeout || probe > redisTimeout+500*time.Millisecond {
		t.Errorf("probe took %s, want about %s", probe, redisTimeout)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRedisRecovers: Redis going away mid-way degrades to the fallback,
// and coming back restores the shared limits (after the retry interval).
func TestRedisRecovers(t *testing.T) {
	url := redisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, opt.Addr)
	defer func(d time.Duration) { redisRetry = d }(redisRetry)
	redisRetry = 50 * time.Millisecond

	ctx := context.Background()
	lim := Limits{PerIP: 0.01, IPBurst: 3}
	var logs logBuffer
	mk := func() *Limiter {
		o := *opt
		o.Addr, o.MaxRetries = p.addr(), -1
		c := redis.NewClient(&o)
		t.Cleanup(func() { c.Close() })
		return Redis(ctx, c, lim, Memory(lim).WithLogger(logs.logger()))
	}
	a, b := mk(), mk()
	ip := IPKey(uniqueIP(t))
	mustAllow(t, a, ip, 2) // shared: 2 of 3 used
	mustAllow(t, b, ip, 1)
	mustRefuse(t, b, ip, -1)

	p.setDown(true)
	// Down: each instance has its fallback's burst, fresh.
	mustAllow(t, a, ip, 3)
	mustRefuse(t, a, ip, -1)
	mustAllow(t, b, ip, 3)
	mustRefuse(t, b, ip, -1)

	p.setDown(false)
	time.Sleep(2 * redisRetry)
	// Back on Redis: the shared bucket (still exhausted) decides again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, _ := a.Allow(ctx, ip); !ok {
			if ok2, _ := b.Allow(ctx, ip); !ok2 && !a.redis.down.Load() && !b.redis.down.Load() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiters did not go back to Redis: a down=%v, b down=%v", a.redis.down.Load(), b.redis.down.Load())
		}
		time.Sleep(redisRetry)
	}
	fresh := IPKey(uniqueIP(t))
	mustAllow(t, a, fresh, 3)
	mustRefuse(t, b, fresh, -1)
	if s := logs.String(); !strings.Contains(s, "Redis unavailable") || !strings.Contains(s, "Redis answers again") {
		t.Errorf("logs:\n%s", s)
	}
}

// proxy forwards TCP to Redis; setDown(true) drops every connection and
// refuses new ones (they are closed at once) until setDown(false).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	m, err := Open(ctx, "", Limits{}, nil)
	if err != nil || m.redis != nil || m.Close() != nil {
		t.Fatalf("Open without URL: %+v, %v", m, err)
	}
	if _, err := Open(ctx, "http://nope", Limits{}, nil); err == nil {
		t.Error("Open accepted a non-Redis URL")
	}
	url := redisURL(t)
	r, err := Open(ctx, url, Limits{PerIP: 1, IPBurst: 1}, slog.New(slog.DiscardHandler))
	if err != nil || r.redis == nil || r.redis.down.Load() {
		t.Fatalf("Open(%s): %v", url, err)
	}
	ip := IPKey(uniqueIP(t))
	mustAllow(t, r, ip, 1)
	mustRefuse(t, r, ip, -1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.redis.client.Ping(ctx).Err(); err == nil {
		t.Error("Close left the client open")
	}
}
