// Package realtime is the subscription runtime every Kiln app shares:
// events published after a write commits, one goroutine per subscription
// that decodes, authorizes and filters them for its viewer, subscriptions
// shared across viewers (authorized per member and event), and the RESYNC
// answer when events may have been lost. The generated code registers each
// @realtime model (Model) and calls Watch from its subscription resolvers;
// the server provides Events (in memory, or Redis across instances).
package realtime

import (
	"context"
	"errors"
)

// Event is one published message.
type Event struct {
	Topic string
	Data  []byte
	// Memo, when set, is shared by every subscription of this instance that
	// receives the same message: the record is decoded once through it, and
	// is then read-only.
	Memo Memo
}

// Memo computes a value once for all its callers.
type Memo interface {
	Do(f func() any) any
}

// Events is the pub/sub the resolvers publish to and subscribe through; the
// server provides it (in memory, or Redis across instances).
type Events interface {
	Publish(ctx context.Context, topic string, data []byte) error
	Subscribe(ctx context.Context, topics ...string) (Stream, error)
}

// Stream is one subscription to topics.
type Stream interface {
	// Next waits for the next event. It returns ErrEventsLost when events
	// may have been missed, ctx's error when ctx is done, and another error
	// when the stream ended.
	Next(ctx context.Context) (Event, error)
	Close() error
}

// ErrEventsLost is returned by Stream.Next when events may have been missed.
var ErrEventsLost = errors.New("realtime: events may have been missed")

// SQLFilterQuota may be implemented by Events to cap the subscriptions
// whose where needs SQL (relation predicates, or predicates that protect
// fields): each of them runs one statement per event of its topic, so a
// client with many of them multiplies the cost of every write. The server
// counts them per client address and per user.
type SQLFilterQuota interface {
	// AcquireSQLFilter is called with the subscriber's context before such
	// a subscription starts. It returns the function to call when the
	// subscription ends, or the error that refuses it (sent to the
	// client).
	AcquireSQLFilter(ctx context.Context) (release func(), err error)
}

// Topic is the pub/sub topic of a model's event: "kiln:<Type>:<event>",
// with the record as JSON (for deleted: as it was before the delete).
func Topic(typ, event string) string { return "kiln:" + typ + ":" + event }
