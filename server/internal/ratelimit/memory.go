package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds the keys a Keyed tracks.
const DefaultMaxKeys = 100_000

// Keyed is a rate limit per key in memory (GCRA): per key, the theoretical
// arrival time (TAT) of the next request. A key whose TAT has passed has its
// whole burst (it is the same as an unknown key, so it can be forgotten).
// It tracks at most maxKeys keys. Safe for concurrent use; other packages
// (sign-in attempts in auth) use it for their own limits.
type Keyed struct {
	interval time.Duration // between two requests at the sustained rate
	window   time.Duration // interval * burst: how far ahead the TAT may run
	maxKeys  int

	mu        sync.Mutex
	tat       map[string]time.Time
	lastSweep time.Time
}

// NewKeyed returns a limit of limit events per second per key with the
// given burst, tracking at most maxKeys keys. A burst below 1 allows nothing.
func NewKeyed(limit rate.Limit, burst, maxKeys int) *Keyed {
	interval := emissionInterval(limit)
	window := min(float64(interval)*float64(burst), float64(maxWindow))
	return &Keyed{
		interval: interval, window: time.Duration(window),
		maxKeys: maxKeys, tat: map[string]time.Time{},
	}
}

// maxInterval and maxWindow keep absurdly small rates from overflowing.
const (
	maxInterval = 24 * time.Hour
	maxWindow   = 100 * 365 * 24 * time.Hour
)

// emissionInterval is the time between two requests at limit (0 for
// rate.Inf), at most maxInterval.
func emissionInterval(limit rate.Limit) time.Duration {
	if limit == rate.Inf || limit <= 0 {
		return 0
	}
	return time.Duration(min(float64(time.Second)/float64(limit), float64(maxInterval)))
}

// Allow counts one event for key at now and reports whether it is allowed;
// when not, it returns how long to wait.
func (m *Keyed) Allow(key string, now time.Time) (bool, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > m.window {
		m.sweep(now)
	}
	tat, known := m.tat[key]
	if !known || tat.Before(now) {
		tat = now
	}
	next := tat.Add(m.interval)
	if allowAt := next.Add(-m.window); now.Before(allowAt) {
		return false, allowAt.Sub(now)
	}
	if !known && len(m.tat) >= m.maxKeys {
		m.sweep(now)
		m.evict()
	}
	m.tat[key] = next
	return true, 0
}

// sweep forgets the keys whose bucket is full again.
func (m *Keyed) sweep(now time.Time) {
	m.lastSweep = now
	for k, tat := range m.tat {
		if !tat.After(now) {
			delete(m.tat, k)
		}
	}
}

// evict makes room when every tracked key is busy: it forgets an eighth of
// them (map order is random), which gives those keys a fresh burst.
func (m *Keyed) evict() {
	n := len(m.tat) - m.maxKeys + 1
	if n <= 0 {
		return
	}
	n = max(n, m.maxKeys/8)
	for k := range m.tat {
		if n == 0 {
			break
		}
		delete(m.tat, k)
		n--
	}
}

// Len returns the number of keys tracked.
func (m *Keyed) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tat)
}
