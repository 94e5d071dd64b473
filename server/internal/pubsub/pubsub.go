// Package pubsub is Kiln's realtime fan-out layer: a Bus publishes messages
// to named topics and delivers them to every subscriber of those topics, on
// every instance of the server that shares the Bus's backend.
//
// Two implementations exist:
//
//   - [kiln/server/internal/pubsub/memory]: in-process, for a single
//     instance, tests and development;
//   - [kiln/server/internal/pubsub/redis]: Redis Pub/Sub, for several
//     instances.
//
// [kiln/server/internal/pubsub/pubsubtest] is the conformance suite both pass.
//
// # Delivery guarantees
//
// Delivery is at most once and best effort: a Bus never blocks a publisher
// on a slow subscriber, and never retries. What it does guarantee is that a
// loss is never silent. Whenever messages of a subscription may have been
// missed, the subscription's Events channel reports [EventLost]; when
// delivery is complete again it reports [EventRestored]. Reasons are a
// subscriber that let its buffer overflow, or a backend connection that
// dropped (Redis).
//
// A subscriber that keeps derived state (a GraphQL subscription, a cache)
// should therefore:
//
//  1. on EventLost, consider its state stale;
//  2. on EventRestored, resync from the source of truth (the database), then
//     keep applying the messages it receives on C.
//
// Messages received after EventRestored, together with a resync started
// after it, are complete until the next EventLost. Events are coalesced: a
// subscriber may see EventLost twice in a row, but never two EventRestored
// without an EventLost in between, and the last event it reads always
// reflects the current state.
//
// Per topic, messages arrive in publish order (for publishes that are
// ordered, i.e. made one after the other). Message.Data is shared by all
// the subscribers of an instance: treat it as read-only.
//
// # Buffers
//
// Each subscription buffers a bounded number of messages (DefaultBufferSize
// unless configured). The buffer is a channel, allocated in full when the
// subscription starts, so its size is a memory cost per subscription; a
// consumer that falls further behind gets EventLost.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Message is one published event.
type Message struct {
	Topic string
	Data  []byte
	// Published is when the message was published, carried in the event's
	// envelope; the zero time when unknown (a message that another program
	// published on Redis without Kiln's envelope). Across instances it is
	// another machine's clock.
	Published time.Time
	// Memo is shared, like Data, by all the subscribers of an instance that
	// receive this message (nil when the Bus does not provide one): they
	// can compute a value derived from Data once for all (a decoded
	// record), which they must then treat as read-only.
	Memo *Memo
}

// Memo holds a value computed once from a message for all its subscribers.
type Memo struct {
	once sync.Once
	v    any
}

// Do returns the value, calling f to compute it if no call has done so
// yet; concurrent callers wait for the first one.
func (m *Memo) Do(f func() any) any {
	m.once.Do(func() { m.v = f() })
	return m.v
}

// Bus publishes messages to topics and delivers them to subscribers on every instance.
type Bus interface {
	Publish(ctx context.Context, topic string, data []byte) error
	// Subscribe delivers messages of the topics until ctx is done or Close is called on the subscription.
	Subscribe(ctx context.Context, topics ...string) (Subscription, error)
	Close() error
}

// Subscription is the receiving end of [Bus.Subscribe].
type Subscription interface {
	// C delivers messages in publish order per topic; it is closed when the subscription ends.
	C() <-chan Message
	// Events reports delivery interruptions: EventLost when messages may have been missed (e.g. Redis connection dropped; the subscriber must resync), EventRestored when delivery resumed. Buffered; never blocks the bus.
	//
	// It is closed together with C.
	Events() <-chan Event
	Close() error
}

// Event is a change in the delivery state of a [Subscription].
type Event int

const (
	// EventLost: messages may have been missed (the subscriber's buffer
	// overflowed, or the backend connection dropped). Resync after the next
	// EventRestored.
	EventLost Event = iota + 1
	// EventRestored: delivery is complete again from now on.
	EventRestored
)

// String returns "lost", "restored" or "Event(N)".
func (e Event) String() string {
	switch e {
	case EventLost:
		return "lost"
	case EventRestored:
		return "restored"
	default:
		return fmt.Sprintf("Event(%d)", int(e))
	}
}

// DefaultBufferSize is the number of messages buffered per subscription by
// default: 1024 × 48 bytes, 48 KiB, allocated when the subscription starts.
// Bursts need it: 10,000 events committed back to back, with the
// subscriber's goroutine short of CPU, overflowed a 256-message buffer.
// Servers that share one subscription among many clients (graphqlws
// shared subscriptions) pay it once per shared subscription.
const DefaultBufferSize = 1024

var (
	// ErrClosed is returned by Publish and Subscribe after the Bus was closed.
	ErrClosed = errors.New("pubsub: bus is closed")
	// ErrNoTopics is returned by Subscribe when called without topics.
	ErrNoTopics = errors.New("pubsub: subscribe needs at least one topic")
)
