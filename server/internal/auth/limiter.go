package auth

import (
	"sync"
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

// Limits are the rate limits of sign-in, sign-up, link and password-reset
// attempts. Every attempt counts, whatever its outcome, once per GraphQL
// field resolved (aliases and batches do not multiply attempts). Zero
// fields take the defaults; rate.Inf disables a limit.
//
// An attempt on an email address counts against three limits: its client
// address (PerIP: 10/min, burst 20), the pair of email and client address
// (PerAccount: 5/min, burst 10), and the email from anywhere (PerEmail:
// 20/min, burst 50). The last one stops guessing spread over many client
// addresses, but skips client addresses that signed in to the email's
// account before, so that nobody can lock its owner out: an attacker
// hammering an email exhausts only its own limits, and the owner signing in
// from a known address still gets in. Attempts of a signed-in user
// (ChangePassword, DeleteAccount) count against PerAccount for that user.
type Limits struct {
	PerIP        rate.Limit
	IPBurst      int
	PerAccount   rate.Limit
	AccountBurst int
	PerEmail     rate.Limit
	EmailBurst   int
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
	if l.PerEmail == 0 {
		l.PerEmail = rate.Every(time.Minute / 20)
	}
	if l.EmailBurst <= 0 {
		l.EmailBurst = 50
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

// knownClients remembers, per instance and for knownTTL, the pairs of email
// and client address that signed in to the email's account (not to a
// pending account), so that the per-email limit can spare them. It holds
// at most maxKnownClients pairs, dropping expired ones first.
type knownClients struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const (
	knownTTL        = 30 * 24 * time.Hour
	maxKnownClients = 100_000
)

func (k *knownClients) add(key string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]time.Time{}
	}
	if _, ok := k.m[key]; !ok && len(k.m) >= maxKnownClients {
		for k2, at := range k.m {
			if now.Sub(at) >= knownTTL {
				delete(k.m, k2)
			}
		}
		for k2 := range k.m { // still full: forget arbitrary pairs
			if len(k.m) < maxKnownClients {
				break
			}
			delete(k.m, k2)
		}
	}
	k.m[key] = now
}

func (k *knownClients) has(key string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.m[key]
	return ok && now.Sub(at) < knownTTL
}
