// Package ratelimit limits the rate of requests to the GraphQL endpoint, per
// client address and per signed-in user, before any GraphQL work is done.
//
// The algorithm is GCRA (a token bucket without a background refill): a key
// may make Burst requests at once, then one more every 1/rate seconds.
//
//   - [Memory] keeps the buckets in this process: each server instance has
//     its own budget.
//   - [Redis] keeps them in Redis (github.com/go-redis/redis_rate, which uses
//     the Redis server's clock), so every instance sharing that Redis shares
//     one budget per key. When Redis fails (down, unreachable, too slow), a
//     request is checked against an in-memory fallback instead: limits
//     degrade to per instance rather than every request failing. After a
//     failure Redis is skipped for a second, then one request at a time
//     probes it until it answers; failures are logged at most once per 10s.
//
// [Limiter.Middleware] answers an over-limit request with 429 Too Many
// Requests, a Retry-After header and a GraphQL-shaped error with
// extensions.code RATE_LIMITED. A WebSocket upgrade counts as one request,
// and so does every operation sent over the socket (see
// [Limiter.AllowRequest]).
//
// [Slots] is a different kind of limit: how many things (sockets,
// subscriptions) a key may hold at once.
package ratelimit

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Limits are the request rates. Zero fields take the defaults: per IP 20/s
// with a burst of 60, per user 10/s with a burst of 30. rate.Inf disables a
// limit.
type Limits struct {
	PerIP     rate.Limit // requests per second per client address
	PerUser   rate.Limit // requests per second per signed-in user
	IPBurst   int        // requests a client address may make at once
	UserBurst int        // requests a user may make at once
}

// Default limits.
const (
	DefaultPerIP     rate.Limit = 20
	DefaultIPBurst              = 60
	DefaultPerUser   rate.Limit = 10
	DefaultUserBurst            = 30
)

// WithDefaults returns l with its zero (or negative) fields set to the
// defaults.
func (l Limits) WithDefaults() Limits {
	if l.PerIP <= 0 {
		l.PerIP = DefaultPerIP
	}
	if l.IPBurst <= 0 {
		l.IPBurst = DefaultIPBurst
	}
	if l.PerUser <= 0 {
		l.PerUser = DefaultPerUser
	}
	if l.UserBurst <= 0 {
		l.UserBurst = DefaultUserBurst
	}
	return l
}

// Admin is the user key of admin requests: they are never limited.
const Admin = "admin"

// Key prefixes: Allow applies the per-user limit to keys made by UserKey and
// the per-IP limit to every other key.
const (
	ipPrefix   = "ip:"
	userPrefix = "user:"
)

// IPKey is the key of a client address: the address itself for IPv4, its
// /64 for IPv6 (one host usually holds a whole /64). A port is ignored.
func IPKey(ip string) string {
	ip = strings.TrimSpace(ip)
	a, err := netip.ParseAddr(ip)
	if err != nil {
		h, _, err2 := net.SplitHostPort(ip)
		if a, err = netip.ParseAddr(h); err2 != nil || err != nil {
			return ipPrefix + ip
		}
	}
	a = a.Unmap()
	if a.Is4() {
		return ipPrefix + a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return ipPrefix + p.String()
}

// UserKey is the key of a user id.
func UserKey(id string) string { return userPrefix + id }

// Limiter limits requests per key. It is safe for concurrent use.
type Limiter struct {
	limits Limits
	now    func() time.Time
	log    *slog.Logger

	ip, user *Keyed        // Memory
	redis    *redisBackend // Redis
}

// Memory returns a Limiter keeping its buckets in this process (per server
// instance). It tracks at most 100,000 keys per limit: keys whose bucket is
// full again are forgotten first, arbitrary ones when all are busy.
func Memory(l Limits) *Limiter { return newMemory(l, time.Now) }

func newMemory(l Limits, now func() time.Time) *Limiter {
	l = l.WithDefaults()
	return &Limiter{
		limits: l, now: now,
		ip:   NewKeyed(l.PerIP, l.IPBurst, DefaultMaxKeys),
		user: NewKeyed(l.PerUser, l.UserBurst, DefaultMaxKeys),
	}
}

// WithLogger sets the logger (default slog.Default()) and returns l. Call it
// before the Limiter is used.
func (l *Limiter) WithLogger(log *slog.Logger) *Limiter {
	l.log = log
	return l
}

func (l *Limiter) logger() *slog.Logger {
	if l.log != nil {
		return l.log
	}
	return slog.Default()
}

// limitFor returns the limit and burst that apply to key.
func (l *Limiter) limitFor(key string) (rate.Limit, int) {
	if strings.HasPrefix(key, userPrefix) {
		return l.limits.PerUser, l.limits.UserBurst
	}
	return l.limits.PerIP, l.limits.IPBurst
}

// Allow counts one request for key and reports whether it may proceed now
// and, if not, how long to wait. Keys made by UserKey get the per-user
// limit, all others (use IPKey for addresses) the per-IP limit. It never
// fails: with Redis down, the fallback decides.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration) {
	limit, burst := l.limitFor(key)
	if limit == rate.Inf {
		return true, 0
	}
	if l.redis != nil {
		return l.redis.allow(ctx, key, limit, burst)
	}
	store := l.ip
	if strings.HasPrefix(key, userPrefix) {
		store = l.user
	}
	return store.Allow(key, l.now())
}
