package auth

import (
	"time"

	"golang.org/x/time/rate"

	"kiln/server/internal/ratelimit"
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

// MemoryLimiter is the in-memory Limiter: a rate limit per key from
// [ratelimit.Keyed] (the same store as the request limits), tracking at
// most ratelimit.DefaultMaxKeys keys.
type MemoryLimiter struct {
	limit rate.Limit
	keys  *ratelimit.Keyed
	now   func() time.Time
}

// NewMemoryLimiter returns a limiter allowing limit events per second per
// key with the given burst. now may be nil (time.Now).
func NewMemoryLimiter(limit rate.Limit, burst int, now func() time.Time) *MemoryLimiter {
	return newMemoryLimiter(limit, burst, ratelimit.DefaultMaxKeys, now)
}

func newMemoryLimiter(limit rate.Limit, burst, maxKeys int, now func() time.Time) *MemoryLimiter {
	if now == nil {
		now = time.Now
	}
	return &MemoryLimiter{limit: limit, keys: ratelimit.NewKeyed(limit, burst, maxKeys), now: now}
}

// Allow implements Limiter.
func (m *MemoryLimiter) Allow(key string) (bool, time.Duration) {
	if m.limit == rate.Inf {
		return true, 0
	}
	return m.keys.Allow(key, m.now())
}

// Len returns the number of keys tracked.
func (m *MemoryLimiter) Len() int { return m.keys.Len() }
