package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustAllow(t *testing.T, l *Limiter, key string, n int) {
	t.Helper()
	for i := range n {
		if ok, d := l.Allow(context.Background(), key); !ok {
			t.Fatalf("%s: request %d of %d refused (retry after %s)", key, i+1, n, d)
		}
	}
}

func mustRefuse(t *testing.T, l *Limiter, key string, wantWait time.Duration) {
	t.Helper()
	ok, d := l.Allow(context.Background(), key)
	if ok {
		t.Fatalf("%s: allowed, want refused", key)
	}
	if wantWait >= 0 && d != wantWait {
		t.Fatalf("%s: retry after %s, want %s", key, d, wantWait)
	}
}

func TestMemoryBurstThenRefill(t *testing.T) {
	clock := newClock()
	l := newMemory(Limits{PerIP: 2, IPBurst: 3, PerUser: 1, UserBurst: 1}, clock.Now)
	ip := IPKey("198.51.100.7")

	mustAllow(t, l, ip, 3)                     // the burst
	mustRefuse(t, l, ip, 500*time.Millisecond) // then one every 1/2 s
	clock.Advance(499 * time.Millisecond)
	mustRefuse(t, l, ip, time.Millisecond)
	clock.Advance(time.Millisecond)
	mustAllow(t, l, ip, 1)
	mustRefuse(t, l, ip, 500*time.Millisecond)
	// Refused requests do not count: waiting the announced time suffices.
	for range 10 {
		mustRefuse(t, l, ip, -1)
	}
	clock.Advance(500 * time.Millisecond)
	mustAllow(t, l, ip, 1)
	// After 1.5s idle the bucket is full again, not fuller.
	clock.Advance(time.Hour)
	mustAllow(t, l, ip, 3)
	mustRefuse(t, l, ip, 500*time.Millisecond)

	// Other keys have their own bucket; user keys get the user limit.
	mustAllow(t, l, IPKey("198.51.100.8"), 3)
	u := UserKey("u1")
	mustAllow(t, l, u, 1)
	mustRefuse(t, l, u, time.Second)
	mustAllow(t, l, UserKey("u2"), 1)
}

func TestMemoryDefaultsAndInf(t *testing.T) {
	if got, want := (Limits{}).WithDefaults(), (Limits{PerIP: 20, IPBurst: 60, PerUser: 10, UserBurst: 30}); got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	clock := newClock()
	l := newMemory(Limits{}, clock.Now)
	mustAllow(t, l, IPKey("192.0.2.1"), 60)
	mustRefuse(t, l, IPKey("192.0.2.1"), 50*time.Millisecond)
	mustAllow(t, l, UserKey("x"), 30)
	mustRefuse(t, l, UserKey("x"), 100*time.Millisecond)

	off := newMemory(Limits{PerIP: rate.Inf, IPBurst: 1, PerUser: rate.Inf}, clock.Now)
	mustAllow(t, off, IPKey("192.0.2.1"), 10_000)
	mustAllow(t, off, UserKey("x"), 10_000)
	if off.ip.Len() != 0 || off.user.Len() != 0 {
		t.Errorf("disabled limits track keys: %d, %d", off.ip.Len(), off.user.Len())
	}

	// Absurd rates neither overflow nor panic.
	slow := newMemory(Limits{PerIP: 1e-300, IPBurst: 1 << 40}, clock.Now)
	mustAllow(t, slow, "k", 5)
	fast := newMemory(Limits{PerIP: 1e300, IPBurst: 1}, clock.Now)
	mustAllow(t, fast, "k", 5)
}

func TestMemoryConcurrent(t *testing.T) {
	clock := newClock() // frozen: exactly the burst is allowed
	l := newMemory(Limits{PerIP: 1, IPBurst: 50}, clock.Now)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 20 {
				if ok, _ := l.Allow(context.Background(), "ip:shared"); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 50 {
		t.Fatalf("allowed %d of 400, want the burst of 50", allowed.Load())
	}
}

func TestMemoryBoundsKeys(t *testing.T) {
	clock := newClock()
	m := NewKeyed(1, 2, 100)
	for i := range 1000 {
		m.Allow(fmt.Sprint(i), clock.Now())
	}
	if n := m.Len(); n > 100 {
		t.Fatalf("%d keys tracked, want at most 100", n)
	}
	// Keys whose bucket is full again are forgotten first.
	clock.Advance(3 * time.Second)
	m.Allow("new", clock.Now())
	if n := m.Len(); n != 1 {
		t.Fatalf("%d keys tracked after the buckets refilled, want 1", n)
	}
}

func TestKeys(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.9":               "ip:203.0.113.9",
		"203.0.113.9:4242":          "ip:203.0.113.9",
		"::ffff:203.0.113.9":        "ip:203.0.113.9",
		"2001:db8:1:2:3:4:5:6":      "ip:2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:8080": "ip:2001:db8:1:2::/64",
		"fe80::1%eth0":              "ip:fe80::/64",
		"not-an-ip":                 "ip:not-an-ip",
		"not-an-ip:80":              "ip:not-an-ip:80",
	} {
		if got := IPKey(in); got != want {
			t.Errorf("IPKey(%q) = %q, want %q", in, got, want)
		}
	}
	if got := UserKey("42"); got != "user:42" {
		t.Errorf("UserKey = %q", got)
	}
}

func TestLimitsFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	l, err := LimitsFromEnv(env(nil))
	if err != nil || l != (Limits{}).WithDefaults() {
		t.Fatalf("empty env: %+v, %v", l, err)
	}
	l, err = LimitsFromEnv(env(map[string]string{
		"KILN_RATE_PER_IP": "2", "KILN_RATE_IP_BURST": "3", "KILN_RATE_PER_USER": "0.5", "KILN_RATE_USER_BURST": "4",
	}))
	if err != nil || l != (Limits{PerIP: 2, IPBurst: 3, PerUser: 0.5, UserBurst: 4}) {
		t.Fatalf("set env: %+v, %v", l, err)
	}
	l, err = LimitsFromEnv(env(map[string]string{"KILN_RATE_PER_USER": "inf"}))
	if err != nil || l.PerUser != rate.Inf {
		t.Fatalf("inf: %+v, %v", l, err)
	}
	_, err = LimitsFromEnv(env(map[string]string{
		"KILN_RATE_PER_IP": "0", "KILN_RATE_IP_BURST": "1.5", "KILN_RATE_PER_USER": "NaN", "KILN_RATE_USER_BURST": "-1",
	}))
	for _, name := range []string{"KILN_RATE_PER_IP", "KILN_RATE_IP_BURST", "KILN_RATE_PER_USER", "KILN_RATE_USER_BURST"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}
