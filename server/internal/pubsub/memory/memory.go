// Package memory is an in-process [pubsub.Bus]: publishers and subscribers
// must live in the same process (one server instance, tests, development).
//
// Fan-out is goroutine-free: Publish copies the data once and hands the
// message to each subscriber's bounded buffer with a non-blocking send. A
// subscriber whose buffer is full loses the message and receives
// [pubsub.EventLost] (once, until it has caught up, then
// [pubsub.EventRestored]); publishers and other subscribers are never
// blocked by it.
package memory

import (
	"context"
	"time"

	"kiln/server/internal/pubsub"
	"kiln/server/internal/pubsub/internal/fanout"
)

// DefaultBufferSize is the default number of messages buffered per subscription.
const DefaultBufferSize = pubsub.DefaultBufferSize

// Option configures a Bus.
type Option func(*config)

type config struct {
	bufferSize int
}

// WithBufferSize sets the number of messages buffered per subscription
// (default DefaultBufferSize; minimum 1).
func WithBufferSize(n int) Option {
	return func(c *config) { c.bufferSize = n }
}

// Bus is an in-process pubsub.Bus. It is safe for concurrent use.
type Bus struct {
	hub *fanout.Hub
}

var _ pubsub.Bus = (*Bus)(nil)

// New returns an empty in-process bus.
func New(opts ...Option) *Bus {
	cfg := config{bufferSize: DefaultBufferSize}
	for _, o := range opts {
		o(&cfg)
	}
	return &Bus{hub: fanout.New(cfg.bufferSize)}
}

// Publish delivers data to the current subscribers of topic and returns
// without waiting for them. data is copied. It fails only if ctx is done or
// the bus is closed.
func (b *Bus) Publish(ctx context.Context, topic string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.hub.Deliver(pubsub.Message{Topic: topic, Data: data, Published: time.Now(), Memo: new(pubsub.Memo)}, true) {
		return pubsub.ErrClosed
	}
	return nil
}

// Subscribe implements pubsub.Bus.
func (b *Bus) Subscribe(ctx context.Context, topics ...string) (pubsub.Subscription, error) {
	s, err := b.hub.Add(ctx, topics, nil)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close ends every subscription; later Publish and Subscribe calls fail
// with pubsub.ErrClosed. Idempotent.
func (b *Bus) Close() error {
	b.hub.Close()
	return nil
}
