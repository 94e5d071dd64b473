package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Tunables of the Redis limiter (variables so tests can shorten them).
var (
	// redisTimeout bounds one Redis call, whatever the client's own
	// timeouts: past it the request is decided by the fallback.
	redisTimeout = 200 * time.Millisecond
	// redisRetry is how long Redis is skipped after a failure before one
	// request probes it again.
	redisRetry = time.Second
	// logEvery is the minimum interval between two logs about Redis.
	logEvery = 10 * time.Second
)

// redisKeyPrefix namespaces the keys (redis_rate adds "rate:" in front).
const redisKeyPrefix = "kiln:"

// Redis returns a Limiter whose buckets live in Redis, shared by every
// instance using the same Redis and Limits. When a Redis call fails or
// takes longer than 200ms, that request is checked against fallback (nil
// means Memory(l)): limits degrade to per instance, requests never fail.
// ctx bounds the initial PING (at most 1s); if Redis does not answer it the
// Limiter starts on the fallback and keeps probing. It logs to the
// fallback's logger (see WithLogger). The client stays the caller's: Close
// does not close it.
func Redis(ctx context.Context, client *redis.Client, l Limits, fallback *Limiter) *Limiter {
	var log *slog.Logger
	if fallback != nil {
		log = fallback.log
	}
	return newRedis(ctx, client, l, fallback, log)
}

// Open returns Redis limits on a new client for redisURL (redis://...), or
// Memory limits when redisURL is empty; both log to log. Close the Limiter
// to close the client.
func Open(ctx context.Context, redisURL string, l Limits, log *slog.Logger) (*Limiter, error) {
	if redisURL == "" {
		return Memory(l).WithLogger(log), nil
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 1 // a failed dial falls back at once; the next probe retries
	}
	lim := newRedis(ctx, redis.NewClient(opt), l, nil, log)
	lim.redis.owned = true
	return lim, nil
}

func newRedis(ctx context.Context, client *redis.Client, l Limits, fallback *Limiter, log *slog.Logger) *Limiter {
	l = l.WithDefaults()
	if fallback == nil {
		fallback = Memory(l).WithLogger(log)
	}
	lim := &Limiter{limits: l, now: time.Now, log: log}
	b := &redisBackend{lim: lim, rl: redis_rate.NewLimiter(client), client: client, fallback: fallback}
	lim.redis = b
	if err := bounded(ctx, time.Second, func(ctx context.Context) error { return client.Ping(ctx).Err() }); err != nil && ctx.Err() == nil {
		b.failed(err)
	}
	return lim
}

// Close closes the Redis client if Open made it; otherwise it does nothing.
func (l *Limiter) Close() error {
	if l.redis != nil && l.redis.owned {
		return l.redis.client.Close()
	}
	return nil
}

type redisBackend struct {
	lim      *Limiter
	rl       *redis_rate.Limiter
	client   *redis.Client
	owned    bool
	fallback *Limiter

	down      atomic.Bool
	nextProbe atomic.Int64 // unix nanoseconds
	probing   atomic.Bool

	logMu      sync.Mutex
	lastFail   time.Time // last failure logged
	loggedDown bool      // a failure was logged since Redis last answered
	suppressed int       // failures not logged since lastFail
}

func (b *redisBackend) allow(ctx context.Context, key string, limit rate.Limit, burst int) (bool, time.Duration) {
	if b.down.Load() {
		if b.lim.now().UnixNano() < b.nextProbe.Load() || !b.probing.CompareAndSwap(false, true) {
			return b.fallback.Allow(ctx, key)
		}
		defer b.probing.Store(false)
	}
	var res *redis_rate.Result
	err := bounded(ctx, redisTimeout, func(ctx context.Context) error {
		var err error
		res, err = b.rl.Allow(ctx, redisKeyPrefix+key, redisLimit(limit, burst))
		return err
	})
	if err != nil {
		if ctx.Err() == nil { // not the caller giving up
			b.failed(err)
		}
		return b.fallback.Allow(ctx, key)
	}
	if b.down.CompareAndSwap(true, false) {
		b.recovered()
	}
	if res.Allowed > 0 {
		return true, 0
	}
	return false, res.RetryAfter
}

// redisLimit is limit as redis_rate's GCRA parameters (only period/rate and
// burst matter).
func redisLimit(limit rate.Limit, burst int) redis_rate.Limit {
	if limit >= 1 && limit <= 1e9 && limit == rate.Limit(int(limit)) {
		return redis_rate.Limit{Rate: int(limit), Period: time.Second, Burst: burst}
	}
	return redis_rate.Limit{Rate: 1, Period: emissionInterval(limit), Burst: burst}
}

// failed marks Redis down until the next probe and logs, at most once
// per logEvery.
func (b *redisBackend) failed(err error) {
	now := b.lim.now()
	b.nextProbe.Store(now.Add(redisRetry).UnixNano())
	b.down.Store(true)
	b.logMu.Lock()
	if !b.lastFail.IsZero() && now.Sub(b.lastFail) < logEvery {
		b.suppressed++
		b.logMu.Unlock()
		return
	}
	b.lastFail, b.loggedDown = now, true
	n := b.suppressed
	b.suppressed = 0
	b.logMu.Unlock()
	attrs := []any{"err", err}
	if n > 0 {
		attrs = append(attrs, "failures_not_logged", n)
	}
	b.lim.logger().Warn("rate limiting: Redis unavailable; limiting per instance until it answers", attrs...)
}

// recovered logs that Redis answers again, once per logged failure.
func (b *redisBackend) recovered() {
	b.logMu.Lock()
	logged := b.loggedDown
	b.loggedDown = false
	b.logMu.Unlock()
	if logged {
		b.lim.logger().Info("rate limiting: Redis answers again; limits are shared across instances")
	}
}

// bounded runs fn with a context that times out after timeout, and
// returns by then even if fn does not (a client without
// ContextTimeoutEnabled ignores the deadline while reading a reply).
func bounded(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	done := make(chan error, 1)
	go func() {
		defer cancel()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // answered just in time
			return err
		default:
		}
		return fmt.Errorf("redis: no answer within %s: %w", timeout, ctx.Err())
	}
}
