package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter decides whether one more attempt for key is allowed now, and if
// not, how long to wait. Every call counts as an attempt. The in-memory
// MemoryLimiter is the default; a shared store (Redis) can implement it for
// limits across instances.
type Limiter interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Limits are the rate limits of sign-in, sign-up and password-reset
// attempts. Zero fields take the defaults: per IP 10/min with a burst of 20,
// per account (normalized email) 5/min with a burst of 10. rate.Inf
// disables a limit.
type Limits struct {
	PerIP        rate.Limit
	IPBurst      int
	PerAccount   rate.Limit
	AccountBurst int
}

func (l Limits) withDefaults() Limits {
	if l.PerIP == 0 {
		l.PerIP = rate.Every(time.Minute / 10)
	}
	if l.IPBurst <= 0 {
		l.IPBurst = 20
	}
	if l.PerAccount == 0 {
		l.PerAccount = rate.Every(time.Minute / 5)
	}
	if l.AccountBurst <= 0 {
		l.AccountBurst = 10
	}
	return l
}

// DefaultMaxKeys bounds the number of keys a MemoryLimiter tracks.
const DefaultMaxKeys = 100_000

// MemoryLimiter is a token-bucket Limiter per key, in memory. It tracks at
// most MaxKeys keys: entries whose bucket has refilled completely are
// dropped first (losing nothing); when every entry is busy, arbitrary ones
// are evicted.
type MemoryLimiter struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	entries   map[string]*limiterEntry
	lastSweep time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

// NewMemoryLimiter returns a limiter allowing limit events per second per
// key with the given burst. now may be nil (time.Now).
func NewMemoryLimiter(limit rate.Limit, burst int, now func() time.Time) *MemoryLimiter {
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{limit: limit, burst: burst, maxKeys: DefaultMaxKeys, now: now, entries: map[string]*limiterEntry{}}
}

// refill is how long an untouched bucket takes to become full again; an
// entry idle that long is equivalent to a new one.
func (m *MemoryLimiter) refill() time.Duration {
	if m.limit == rate.Inf || m.limit <= 0 {
		return time.Minute
	}
	return time.Duration(float64(m.burst)/float64(m.limit)*float64(time.Second)) + time.Second
}

// Allow implements Limiter.
func (m *MemoryLimiter) Allow(key string) (bool, time.Duration) {
	if m.limit == rate.Inf {
		return true, 0
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > m.refill() {
		m.sweep(now)
	}
	e, ok := m.entries[key]
	if !ok {
		if len(m.entries) >= m.maxKeys {
			m.sweep(now)
			m.evict()
		}
		e = &limiterEntry{lim: rate.NewLimiter(m.limit, m.burst)}
		m.entries[key] = e
	}
	e.last = now
	r := e.lim.ReserveN(now, 1)
	if !r.OK() { // burst < 1: never allowed
		return false, m.refill()
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops entries whose bucket has refilled.
func (m *MemoryLimiter) sweep(now time.Time) {
	m.lastSweep = now
	idle := m.refill()
	for k, e := range m.entries {
		if now.Sub(e.last) > idle {
			delete(m.entries, k)
		}
	}
}

// evict makes room when every tracked key is busy: it drops an eighth of the
// entries (map order is random).
func (m *MemoryLimiter) evict() {
	n := len(m.entries) - m.maxKeys + 1
	if n <= 0 {
		return
	}
	n = max(n, m.maxKeys/8)
	for k := range m.entries {
		if n == 0 {
			break
		}
		delete(m.entries, k)
		n--
	}
}

// Len returns the number of keys tracked.
func (m *MemoryLimiter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
