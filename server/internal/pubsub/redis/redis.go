// Package redis is a [pubsub.Bus] on Redis Pub/Sub, for several server
// instances sharing one Redis.
//
// A Bus holds one client (connection pool) for PUBLISH and ONE Pub/Sub
// connection that multiplexes all the topics its subscribers want: the
// first local subscriber of a topic SUBSCRIBEs it, the last one to leave
// UNSUBSCRIBEs it. Incoming messages are fanned out locally like the memory
// bus does (bounded buffer per subscriber, never blocking, EventLost on
// overflow).
//
// Failures are never silent:
//
//   - Publish fails fast (bounded by WithPublishTimeout, default 2s) when
//     Redis is unreachable.
//   - When the Pub/Sub connection drops, every subscriber gets
//     [pubsub.EventLost] at once (read error) or, for a connection that hangs
//     without being closed, within two health-check intervals (PING when
//     idle, default every 750ms). The Bus then reconnects in the background,
//     re-subscribes the active topics and, as soon as Redis answers on the
//     new connection, sends [pubsub.EventRestored] to every subscriber.
//   - Subscribe returns once Redis has confirmed the subscription, so a
//     message published after Subscribe returned is delivered. If Redis is
//     down, Subscribe still succeeds: the subscription starts with EventLost
//     and gets EventRestored once the Bus has reconnected.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"kiln/server/internal/pubsub"
	"kiln/server/internal/pubsub/internal/fanout"
)

// Defaults of the options.
const (
	DefaultBufferSize          = 1024
	DefaultPublishTimeout      = 2 * time.Second
	DefaultHealthCheckInterval = 750 * time.Millisecond
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
	pongPrefix = "kiln-pubsub-barrier-"
)

// Option configures a Bus.
type Option func(*config)

type config struct {
	bufferSize     int
	publishTimeout time.Duration
	healthInterval time.Duration
	prefix         string
	redisOpts      []func(*goredis.Options)
}

// WithBufferSize sets the number of messages buffered per subscription
// (default DefaultBufferSize).
func WithBufferSize(n int) Option { return func(c *config) { c.bufferSize = n } }

// WithPublishTimeout bounds each PUBLISH, and each (UN)SUBSCRIBE and its
// confirmation (default DefaultPublishTimeout).
func WithPublishTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.publishTimeout = d
		}
	}
}

// WithHealthCheckInterval sets how long the Pub/Sub connection may stay
// silent before the Bus PINGs it; without a reply for twice that, the
// connection is considered dead (default DefaultHealthCheckInterval).
func WithHealthCheckInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.healthInterval = d
		}
	}
}

// WithChannelPrefix namespaces the Redis channels: topic T is published on
// channel prefix+T (default none). All the Buses that must see each other
// need the same prefix.
func WithChannelPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

// WithRedisOptions lets f adjust the go-redis client options parsed from
// the URL (TLS, pool size, ...), after the Bus's defaults were applied.
func WithRedisOptions(f func(*goredis.Options)) Option {
	return func(c *config) { c.redisOpts = append(c.redisOpts, f) }
}

// Bus is a pubsub.Bus on Redis. It is safe for concurrent use.
type Bus struct {
	cfg    config
	client *goredis.Client
	hub    *fanout.Hub

	ctx    context.Context // done when the Bus is closed
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu orders the refcount changes with the SUBSCRIBE/UNSUBSCRIBE
	// commands sent for them, and guards ps replacement and closed.
	mu     sync.Mutex
	refs   map[string]int                 // Redis channel -> local subscriptions
	closed atomic.Bool                    // set under mu; read without it by Publish
	ps     atomic.Pointer[goredis.PubSub] // the current Pub/Sub connection

	stateMu sync.Mutex  // orders markDown/markUp
	down    atomic.Bool // mirrors hub.Down, for the receive loop's fast path

	lastSeen atomic.Int64 // unix nanos of the last reply on the Pub/Sub connection

	barrierMu sync.Mutex
	barrierN  uint64
	barriers  map[string]chan struct{} // PING payload -> closed on PONG (or on loss)
}

var _ pubsub.Bus = (*Bus)(nil)

// New connects to the Redis at url (redis://[user:pass@]host:port/db, see
// go-redis's ParseURL) and returns a Bus. It fails if Redis does not answer
// a PING before ctx is done (or within 5s if ctx has no deadline).
func New(ctx context.Context, url string, opts ...Option) (*Bus, error) {
	cfg := config{
		bufferSize:     DefaultBufferSize,
		publishTimeout: DefaultPublishTimeout,
		healthInterval: DefaultHealthCheckInterval,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("pubsub/redis: %w", err)
	}
	// Fail fast rather than hang: callers bound every command with a
	// context, and a PUBLISH is not retried (it could be delivered twice).
	ro.ContextTimeoutEnabled = true
	if ro.DialTimeout == 0 {
		ro.DialTimeout = cfg.publishTimeout
	}
	if ro.DialerRetries == 0 {
		ro.DialerRetries = 1
	}
	if ro.MaxRetries == 0 {
		ro.MaxRetries = -1
	}
	for _, f := range cfg.redisOpts {
		f(ro)
	}
	client := goredis.NewClient(ro)

	pctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("pubsub/redis: ping %s: %w", ro.Addr, err)
	}

	b := &Bus{
		cfg:      cfg,
		client:   client,
		hub:      fanout.New(cfg.bufferSize),
		refs:     make(map[string]int),
		barriers: make(map[string]chan struct{}),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.ps.Store(client.Subscribe(b.ctx))
	b.lastSeen.Store(time.Now().UnixNano())
	b.wg.Add(2)
	go b.receiveLoop()
	go b.healthLoop()
	return b, nil
}

// Publish sends data to topic on every instance. It returns an error, within
// the publish timeout, if Redis does not acknowledge it.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	if b.isClosed() {
		return pubsub.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.publishTimeout)
	defer cancel()
	if err := b.client.Publish(ctx, b.cfg.prefix+topic, data).Err(); err != nil {
		if b.isClosed() {
			return pubsub.ErrClosed
		}
		return fmt.Errorf("pubsub/redis: publish to %q: %w", topic, err)
	}
	return nil
}

// Subscribe implements pubsub.Bus. It returns once Redis confirmed the
// subscription, or at once with a subscription that starts with
// pubsub.EventLost when Redis is unreachable.
func (b *Bus) Subscribe(ctx context.Context, topics ...string) (pubsub.Subscription, error) {
	if len(topics) == 0 {
		return nil, pubsub.ErrNoTopics
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, pubsub.ErrClosed
	}
	s, err := b.hub.Add(ctx, topics, b.release)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	var added []string
	for _, t := range s.Topics() {
		ch := b.cfg.prefix + t
		b.refs[ch]++
		if b.refs[ch] == 1 {
			added = append(added, ch)
		}
	}
	// Even when every topic is subscribed already, a SUBSCRIBE for one of
	// them may be in flight: the PING barrier covers both cases. Redis runs
	// a connection's commands in order, so its PONG means the SUBSCRIBE is
	// in effect (after a reconnect, go-redis re-subscribes before the PING).
	token, done := b.newBarrier()
	wctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	ps := b.ps.Load()
	var werr error
	if len(added) > 0 {
		werr = ps.Subscribe(wctx, added...) // remembered by go-redis even on error
	}
	if werr == nil {
		werr = ps.Ping(wctx, token)
	}
	cancel()
	b.mu.Unlock()
	if werr != nil {
		b.dropBarrier(token)
		b.markDown(fmt.Errorf("subscribe: %w", werr))
		return s, nil // starts with EventLost; EventRestored after reconnecting
	}

	t := time.NewTimer(b.cfg.publishTimeout)
	defer t.Stop()
	select {
	case <-done: // confirmed, or the connection was lost meanwhile (EventLost sent)
		return s, nil
	case <-ctx.Done():
		b.dropBarrier(token)
		_ = s.Close()
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, pubsub.ErrClosed
	case <-t.C:
		b.dropBarrier(token)
		b.forceReconnect(errors.New("no confirmation of SUBSCRIBE in time"))
		return s, nil
	}
}

// release is called when a subscription is closed by its owner.
func (b *Bus) release(s *fanout.Sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return
	}
	var gone []string
	for _, t := range s.Topics() {
		ch := b.cfg.prefix + t
		if b.refs[ch]--; b.refs[ch] <= 0 {
			delete(b.refs, ch)
			gone = append(gone, ch)
		}
	}
	if len(gone) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	defer cancel()
	// On error the connection is broken: go-redis forgot the channels
	// anyway, and the receive loop reports the loss.
	_ = b.ps.Load().Unsubscribe(ctx, gone...)
}

// Close ends every subscription, closes the Pub/Sub connection and the
// client. Later Publish and Subscribe calls fail with pubsub.ErrClosed.
// Idempotent.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	b.closed.Store(true)
	b.mu.Unlock()

	b.cancel()
	b.hub.Close()
	_ = b.ps.Load().Close() // unblocks the receive loop
	b.wg.Wait()
	b.releaseBarriers()
	return b.client.Close()
}

func (b *Bus) isClosed() bool { return b.closed.Load() }

// receiveLoop reads the Pub/Sub connection and fans messages out. go-redis
// reconnects (and re-subscribes) by itself on the next Receive after an
// error; we only report the loss and back off.
func (b *Bus) receiveLoop() {
	defer b.wg.Done()
	backoff := minBackoff
	for {
		ps := b.ps.Load()
		msg, err := ps.Receive(b.ctx)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			if b.ps.Load() != ps {
				continue // replaced by forceReconnect: read the new one
			}
			b.markDown(err)
			if !sleep(b.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if b.ps.Load() == ps {
			b.lastSeen.Store(time.Now().UnixNano())
			// Any reply on the current, (re)connected connection means that
			// the SUBSCRIBEs sent on it before are in effect. (A late reply
			// on a replaced connection proves nothing.)
			b.markUp()
		}
		switch m := msg.(type) {
		case *goredis.Message:
			topic, ok := strings.CutPrefix(m.Channel, b.cfg.prefix)
			if ok {
				b.hub.Deliver(pubsub.Message{Topic: topic, Data: []byte(m.Payload)}, false)
			}
		case *goredis.Pong:
			b.resolveBarrier(m.Payload)
		}
	}
}

// healthLoop PINGs the Pub/Sub connection when it has been silent for an
// interval, and replaces it when it stays silent for two: a connection
// that hangs without being closed (network partition, frozen server) is
// detected too, not only one that reports an error.
func (b *Bus) healthLoop() {
	defer b.wg.Done()
	iv := b.cfg.healthInterval
	tick := time.NewTicker(max(iv/4, 10*time.Millisecond))
	defer tick.Stop()
	var lastPing, lastForce time.Time
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		idle := now.Sub(time.Unix(0, b.lastSeen.Load()))
		if idle >= 2*iv && now.Sub(lastForce) >= 2*iv && now.Sub(lastPing) < 2*iv {
			// Pinged, no reply: the connection is dead even if not closed.
			lastForce = now
			b.forceReconnect(fmt.Errorf("no reply from Redis for %v", idle.Round(time.Millisecond)))
			lastPing = time.Time{}
			continue
		}
		if idle >= iv && now.Sub(lastPing) >= iv {
			lastPing = now
			ctx, cancel := context.WithTimeout(b.ctx, iv)
			err := b.ps.Load().Ping(ctx)
			cancel()
			if err != nil && b.ctx.Err() == nil {
				b.markDown(fmt.Errorf("health check: %w", err))
			}
		}
	}
}

// forceReconnect reports the loss and replaces the Pub/Sub connection by a
// new one subscribed to the active topics.
func (b *Bus) forceReconnect(reason error) {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return
	}
	old := b.ps.Load()
	ps := b.client.Subscribe(b.ctx) // no I/O yet
	b.ps.Store(ps)                  // from now on, a late reply on old cannot mark us up
	b.lastSeen.Store(time.Now().UnixNano())
	chans := make([]string, 0, len(b.refs))
	for ch := range b.refs {
		chans = append(chans, ch)
	}
	b.markDown(reason)
	b.mu.Unlock()
	_ = old.Close() // unblocks the receive loop, which moves to ps
	if len(chans) == 0 {
		return
	}

	// Outside b.mu: dialing may take up to the timeout, and Publish,
	// Subscribe and Close must not wait for it. go-redis remembers the
	// channels even if this fails, and subscribes them on (re)connect.
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	defer cancel()
	_ = ps.Subscribe(ctx, chans...)
	// A channel whose last subscriber left meanwhile may have been
	// unsubscribed before the SUBSCRIBE above went out: undo it.
	b.mu.Lock()
	defer b.mu.Unlock()
	var stale []string
	for _, ch := range chans {
		if b.refs[ch] == 0 {
			stale = append(stale, ch)
		}
	}
	if len(stale) > 0 && b.ps.Load() == ps && !b.closed.Load() {
		_ = ps.Unsubscribe(ctx, stale...)
	}
}

// markDown reports EventLost to every subscription (once per outage).
func (b *Bus) markDown(_ error) {
	b.stateMu.Lock()
	if !b.down.Load() && b.ctx.Err() == nil {
		b.down.Store(true)
		b.hub.SetDown(true)
	}
	b.stateMu.Unlock()
	b.releaseBarriers()
}

// markUp reports EventRestored after an outage.
func (b *Bus) markUp() {
	if !b.down.Load() {
		return
	}
	b.stateMu.Lock()
	if b.down.Load() {
		b.down.Store(false)
		b.hub.SetDown(false)
	}
	b.stateMu.Unlock()
}

func (b *Bus) newBarrier() (string, <-chan struct{}) {
	b.barrierMu.Lock()
	defer b.barrierMu.Unlock()
	b.barrierN++
	token := pongPrefix + strconv.FormatUint(b.barrierN, 10)
	ch := make(chan struct{})
	b.barriers[token] = ch
	return token, ch
}

func (b *Bus) resolveBarrier(payload string) {
	if !strings.HasPrefix(payload, pongPrefix) {
		return
	}
	b.barrierMu.Lock()
	defer b.barrierMu.Unlock()
	if ch, ok := b.barriers[payload]; ok {
		close(ch)
		delete(b.barriers, payload)
	}
}

func (b *Bus) dropBarrier(token string) {
	b.barrierMu.Lock()
	defer b.barrierMu.Unlock()
	delete(b.barriers, token)
}

// releaseBarriers wakes every pending Subscribe: the connection was lost,
// their subscriptions got EventLost and will get EventRestored.
func (b *Bus) releaseBarriers() {
	b.barrierMu.Lock()
	defer b.barrierMu.Unlock()
	for token, ch := range b.barriers {
		close(ch)
		delete(b.barriers, token)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
