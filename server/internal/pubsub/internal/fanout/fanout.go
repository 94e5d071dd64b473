// Package fanout is the local, goroutine-free fan-out shared by the pubsub
// implementations: a Hub maps topics to subscribers and delivers a message
// to each subscriber's bounded buffer with a non-blocking send, in the
// publisher's goroutine.
//
// A subscriber whose buffer is full loses the message and is told so with
// pubsub.EventLost (once); when it has caught up (a message is delivered
// while its buffer is at most half full) it gets pubsub.EventRestored. The
// hub can also be marked down as a whole (a backend connection dropped),
// which reports EventLost to every subscriber until it is marked up again.
package fanout

import (
	"context"
	"sync"

	"kiln/server/internal/pubsub"
)

// EventBuffer is the capacity of each subscription's Events channel. Events
// are coalesced when it is full, so a small buffer is enough.
const EventBuffer = 8

// Hub is a set of subscriptions indexed by topic. The zero value is not
// usable; use New.
type Hub struct {
	bufSize int

	// mu guards topics, subs, closed and down. Deliveries hold it for
	// reading (so they run concurrently, serialized per topic by topic.mu);
	// membership changes and SetDown hold it for writing, so no delivery is
	// in flight while a subscription is removed and its channels closed.
	mu     sync.RWMutex
	topics map[string]*topic
	subs   map[*Sub]struct{}
	closed bool
	down   bool
}

type topic struct {
	mu   sync.Mutex // serializes deliveries of this topic: one order for all subscribers
	subs []*Sub
}

// New returns a hub whose subscriptions buffer bufSize messages (minimum 1).
func New(bufSize int) *Hub {
	if bufSize < 1 {
		bufSize = 1
	}
	return &Hub{
		bufSize: bufSize,
		topics:  make(map[string]*topic),
		subs:    make(map[*Sub]struct{}),
	}
}

// Sub is one subscription; it implements pubsub.Subscription.
type Sub struct {
	hub    *Hub
	topics []string
	c      chan pubsub.Message
	ev     chan pubsub.Event

	mu       sync.Mutex // guards the fields below and sends on c and ev
	overflow bool       // dropped a message and has not caught up yet
	down     bool       // the hub is down
	lost     bool       // EventLost is the last event emitted
	finished bool

	stopCtx  func() bool // stops the context.AfterFunc; guarded by mu
	release  func(*Sub)  // called once by Close after removal (not by Hub.Close)
	once     sync.Once
	finishMu sync.Once
}

// Add registers a subscription to topics (deduplicated, at least one) and
// returns it, or pubsub.ErrClosed. If ctx ends, the subscription is closed.
// release, if not nil, is called once when the subscription is closed by its
// owner (Close or ctx), after it stopped receiving; it is not called when
// the whole hub is closed.
func (h *Hub) Add(ctx context.Context, topics []string, release func(*Sub)) (*Sub, error) {
	if len(topics) == 0 {
		return nil, pubsub.ErrNoTopics
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Sub{
		hub:     h,
		topics:  dedup(topics),
		c:       make(chan pubsub.Message, h.bufSize),
		ev:      make(chan pubsub.Event, EventBuffer),
		release: release,
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, pubsub.ErrClosed
	}
	for _, name := range s.topics {
		t := h.topics[name]
		if t == nil {
			t = &topic{}
			h.topics[name] = t
		}
		t.subs = append(t.subs, s)
	}
	h.subs[s] = struct{}{}
	if h.down {
		s.mu.Lock()
		s.down = true
		s.update()
		s.mu.Unlock()
	}
	h.mu.Unlock()
	// No goroutine: the callback runs only if and when ctx is done.
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	s.mu.Lock()
	if s.finished { // the hub was closed meanwhile
		s.mu.Unlock()
		stop()
	} else {
		s.stopCtx = stop
		s.mu.Unlock()
	}
	return s, nil
}

func dedup(topics []string) []string {
	out := make([]string, 0, len(topics))
	seen := make(map[string]struct{}, len(topics))
	for _, t := range topics {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}

// Deliver sends msg to every subscriber of msg.Topic without blocking and
// reports whether the hub is still open. msg.Data is shared by all; with
// clone, it is copied first (only if there is a subscriber).
func (h *Hub) Deliver(msg pubsub.Message, clone bool) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return false
	}
	t := h.topics[msg.Topic]
	if t == nil {
		return true
	}
	if clone {
		msg.Data = append([]byte(nil), msg.Data...)
	}
	t.mu.Lock()
	for _, s := range t.subs {
		s.send(msg)
	}
	t.mu.Unlock()
	return true
}

// SetDown marks the hub down (every subscription, current and future, gets
// EventLost) or up again (EventRestored, for subscriptions that have not
// overflowed).
func (h *Hub) SetDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.down == down {
		return
	}
	h.down = down
	for s := range h.subs {
		s.mu.Lock()
		s.down = down
		s.update()
		s.mu.Unlock()
	}
}

// Down reports whether the hub is marked down.
func (h *Hub) Down() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.down
}

// Close ends every subscription (closing their channels) and makes Add fail
// with pubsub.ErrClosed. It reports whether this call closed the hub.
func (h *Hub) Close() bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	h.closed = true
	subs := h.subs
	h.subs = nil
	h.topics = nil
	h.mu.Unlock()
	for s := range subs {
		s.finish()
	}
	return true
}

// remove unregisters s; it reports whether s was registered.
func (h *Hub) remove(s *Sub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return false
	}
	delete(h.subs, s)
	for _, name := range s.topics {
		t := h.topics[name]
		if t == nil {
			continue
		}
		for i, x := range t.subs {
			if x == s {
				t.subs = append(t.subs[:i:i], t.subs[i+1:]...)
				break
			}
		}
		if len(t.subs) == 0 {
			delete(h.topics, name)
		}
	}
	return true
}

// send enqueues msg without blocking; on overflow it drops msg and reports
// EventLost once, until the subscriber catches up.
func (s *Sub) send(msg pubsub.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return
	}
	select {
	case s.c <- msg:
		if s.overflow && len(s.c) <= cap(s.c)/2 {
			s.overflow = false
			s.update()
		}
	default:
		if !s.overflow {
			s.overflow = true
			s.update()
		}
	}
}

// update emits EventLost or EventRestored when the delivery state changed.
// Called with s.mu held.
func (s *Sub) update() {
	lost := s.overflow || s.down
	if lost == s.lost || s.finished {
		return
	}
	s.lost = lost
	if lost {
		s.emit(pubsub.EventLost)
	} else {
		s.emit(pubsub.EventRestored)
	}
}

// emit queues ev without blocking. When the buffer is full (the subscriber
// is not reading its events), the queue is collapsed to EventLost, followed
// by EventRestored if that is the current state: the pending events held at
// least one EventLost, so the subscriber still learns that it lost messages,
// and its last event remains the current state. Called with s.mu held (the
// only sender).
func (s *Sub) emit(ev pubsub.Event) {
	select {
	case s.ev <- ev:
		return
	default:
	}
	for drained := false; !drained; {
		select {
		case <-s.ev:
		default:
			drained = true
		}
	}
	s.ev <- pubsub.EventLost
	if ev == pubsub.EventRestored {
		s.ev <- pubsub.EventRestored
	}
}

// C implements pubsub.Subscription.
func (s *Sub) C() <-chan pubsub.Message { return s.c }

// Events implements pubsub.Subscription.
func (s *Sub) Events() <-chan pubsub.Event { return s.ev }

// Topics returns the subscription's topics, deduplicated.
func (s *Sub) Topics() []string { return s.topics }

// Close implements pubsub.Subscription: it stops delivery and closes C and
// Events. Idempotent; always returns nil.
func (s *Sub) Close() error {
	s.once.Do(func() {
		removed := s.hub.remove(s)
		s.finish()
		if removed && s.release != nil {
			s.release(s)
		}
	})
	return nil
}

// finish closes the channels and unregisters the ctx callback; s must no
// longer be reachable from the hub.
func (s *Sub) finish() {
	s.finishMu.Do(func() {
		s.mu.Lock()
		s.finished = true
		close(s.c)
		close(s.ev)
		stop := s.stopCtx
		s.stopCtx = nil
		s.mu.Unlock()
		if stop != nil {
			stop()
		}
	})
}
