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
//     re-subscribes the active topics and, as soon as Redis has confirmed
//     them (a PING after the SUBSCRIBE is answered), sends
//     [pubsub.EventRestored] to every subscriber.
//   - Subscribe returns once Redis has confirmed the subscription, so a
//     message published after Subscribe returned is delivered. If Redis is
//     down, Subscribe still succeeds: the subscription starts with EventLost
//     and gets EventRestored once the Bus has reconnected.
//
// # Envelope
//
// A message is published on Redis as the line "kiln1 <unix-nanos>\n"
// followed by its data: the time is Message.Published on the receiving
// side. A payload without that line (published by another program) is
// delivered as it is, with a zero Published.
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
	DefaultBufferSize          = pubsub.DefaultBufferSize
	DefaultPublishTimeout      = 2 * time.Second
	DefaultHealthCheckInterval = 750 * time.Millisecond
)

const (
	minBackoff    = 50 * time.Millisecond
	maxBackoff    = 500 * time.Millisecond
	barrierPrefix = "kiln-pubsub-barrier-" // PING payload of a Subscribe
	recoverPrefix = "kiln-pubsub-recover-" // PING payload of a recovery
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

	stateMu sync.Mutex    // orders markDown/markUp
	down    atomic.Bool   // the Pub/Sub connection is (or may be) lost; mirrors hub.Down
	gen     atomic.Uint64 // bumped by every loss; a recovery's PONG counts only for the current one
	kick    chan struct{} // wakes the health loop to recover at once

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
		kick:     make(chan struct{}, 1),
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
	if b.closed.Load() {
		return pubsub.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.publishTimeout)
	defer cancel()
	if err := b.client.Publish(ctx, b.cfg.prefix+topic, seal(time.Now(), data)).Err(); err != nil {
		if b.closed.Load() {
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
	// in effect.
	token, done := b.newBarrier()
	wctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	ps := b.ps.Load()
	var werr error
	if len(added) > 0 {
		werr = ps.Subscribe(wctx, added...)
	}
	if werr == nil {
		werr = ps.Ping(wctx, token)
	}
	cancel()
	b.mu.Unlock()
	if werr != nil {
		// The recovery re-subscribes every active topic, these included.
		b.dropBarrier(token)
		b.markDown(fmt.Errorf("subscribe: %w", werr))
		return s, nil // starts with EventLost; EventRestored after recovery
	}
	if b.down.Load() {
		b.dropBarrier(token)
		return s, nil // it got EventLost already
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
	// On error the connection is broken: a stray subscription on it, if
	// any, only brings messages nobody listens to.
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

// receiveLoop reads the Pub/Sub connection and fans messages out. After a
// read error it reports the loss and backs off; go-redis reconnects on the
// next Receive, and the health loop's recovery marks the Bus up again.
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
		current := b.ps.Load() == ps // a late reply on a replaced connection proves nothing
		if current {
			b.lastSeen.Store(time.Now().UnixNano())
		}
		switch m := msg.(type) {
		case *goredis.Message:
			topic, ok := strings.CutPrefix(m.Channel, b.cfg.prefix)
			if ok {
				published, data := unseal(m.Payload)
				b.hub.Deliver(pubsub.Message{Topic: topic, Data: data, Published: published, Memo: new(pubsub.Memo)}, false)
			}
		case *goredis.Pong:
			if gen, ok := strings.CutPrefix(m.Payload, recoverPrefix); ok {
				if current {
					b.markUp(gen)
				}
			} else {
				b.resolveBarrier(m.Payload)
			}
		}
	}
}

// healthLoop watches the Pub/Sub connection:
//
//   - silent for an interval: PING it;
//   - silent for two: replace it (a connection that hangs without being
//     closed, by a network partition or a frozen server, is detected too);
//   - while the Bus is down: recover, i.e. SUBSCRIBE every active topic
//     again and PING; the PONG proves that they are all in effect, and the
//     receive loop then marks the Bus up (EventRestored).
func (b *Bus) healthLoop() {
	defer b.wg.Done()
	iv := b.cfg.healthInterval
	tick := time.NewTicker(max(iv/4, 10*time.Millisecond))
	defer tick.Stop()
	var lastPing, lastForce, nextRecover time.Time
	backoff := minBackoff
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
		case <-b.kick:
		}
		now := time.Now()
		idle := now.Sub(time.Unix(0, b.lastSeen.Load()))
		if idle >= 2*iv && now.Sub(lastForce) >= 2*iv {
			lastForce = now
			b.forceReconnect(fmt.Errorf("no reply from Redis for %v", idle.Round(time.Millisecond)))
			idle = 0
		}
		if b.down.Load() {
			if now.Before(nextRecover) {
				continue
			}
			if err := b.recover(); err != nil {
				nextRecover = now.Add(backoff)
				backoff = min(2*backoff, maxBackoff)
			} else { // sent; retried if no PONG comes
				nextRecover = now.Add(iv)
				backoff = minBackoff
			}
			continue
		}
		nextRecover, backoff = time.Time{}, minBackoff
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

// recover sends SUBSCRIBE for every active topic, then a PING whose PONG
// marks the Bus up (if no new loss happened meanwhile). Redundant
// SUBSCRIBEs are harmless; relying on go-redis's own re-subscription alone
// is not enough, as it can miss channels whose SUBSCRIBE failed.
func (b *Bus) recover() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil
	}
	token := recoverPrefix + strconv.FormatUint(b.gen.Load(), 10)
	ps := b.ps.Load()
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.publishTimeout)
	defer cancel()
	if len(b.refs) > 0 {
		chans := make([]string, 0, len(b.refs))
		for ch := range b.refs {
			chans = append(chans, ch)
		}
		if err := ps.Subscribe(ctx, chans...); err != nil {
			return err
		}
	}
	return ps.Ping(ctx, token)
}

// forceReconnect reports the loss and replaces the Pub/Sub connection by a
// new, empty one; the recovery subscribes it to the active topics.
func (b *Bus) forceReconnect(reason error) {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return
	}
	old := b.ps.Load()
	b.ps.Store(b.client.Subscribe(b.ctx)) // no I/O yet; late replies on old are now ignored
	b.lastSeen.Store(time.Now().UnixNano())
	b.mu.Unlock()
	b.markDown(reason)
	_ = old.Close() // unblocks the receive loop, which moves to the new one
}

// markDown reports EventLost to every subscription (once per outage) and
// starts a recovery. Every call invalidates the recoveries in flight.
func (b *Bus) markDown(_ error) {
	b.stateMu.Lock()
	b.gen.Add(1)
	if !b.down.Load() && b.ctx.Err() == nil {
		b.down.Store(true)
		b.hub.SetDown(true)
	}
	b.stateMu.Unlock()
	b.releaseBarriers()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// markUp reports EventRestored, if the recovery that sent the PING with
// payload gen is the latest one.
func (b *Bus) markUp(gen string) {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	if b.down.Load() && gen == strconv.FormatUint(b.gen.Load(), 10) {
		b.down.Store(false)
		b.hub.SetDown(false)
	}
}

func (b *Bus) newBarrier() (string, <-chan struct{}) {
	b.barrierMu.Lock()
	defer b.barrierMu.Unlock()
	b.barrierN++
	token := barrierPrefix + strconv.FormatUint(b.barrierN, 10)
	ch := make(chan struct{})
	b.barriers[token] = ch
	return token, ch
}

func (b *Bus) resolveBarrier(payload string) {
	if !strings.HasPrefix(payload, barrierPrefix) {
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

// envelopePrefix starts the envelope line of a published message.
const envelopePrefix = "kiln1 "

// seal wraps data in the envelope: "kiln1 <unix-nanos>\n" + data.
func seal(published time.Time, data []byte) []byte {
	out := make([]byte, 0, len(envelopePrefix)+20+len(data))
	out = append(out, envelopePrefix...)
	out = strconv.AppendInt(out, published.UnixNano(), 10)
	out = append(out, '\n')
	return append(out, data...)
}

// unseal returns the publish time and the data of a payload; a payload
// without the envelope is returned whole, with the zero time.
func unseal(payload string) (time.Time, []byte) {
	rest, ok := strings.CutPrefix(payload, envelopePrefix)
	if !ok {
		return time.Time{}, []byte(payload)
	}
	ts, data, ok := strings.Cut(rest, "\n")
	if !ok {
		return time.Time{}, []byte(payload)
	}
	ns, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, []byte(payload)
	}
	return time.Unix(0, ns), []byte(data)
}
