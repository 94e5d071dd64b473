package files

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ListLoader loads the files of one list field for many records with
// one query: the field's resolvers for the records of a response run
// concurrently, and each waits up to a millisecond (or until 100 records
// are waiting) for the others, so a list of records costs a fixed number
// of statements instead of one per record. Batches never mix clients (a
// mutation's transaction sees its own writes).
type ListLoader[C comparable, T any] struct {
	// Fetch loads the files of the records ids, in order, by record.
	Fetch   func(ctx context.Context, client C, ids []uuid.UUID) (map[uuid.UUID][]T, error)
	mu      sync.Mutex
	batches map[C]*batch[T]
}

type batch[T any] struct {
	once sync.Once
	ids  []uuid.UUID
	done chan struct{}
	res  map[uuid.UUID][]T
	err  error
}

// Load returns the files of record id, loaded with those of the other
// records asked for at about the same time through the same client.
func (l *ListLoader[C, T]) Load(ctx context.Context, client C, id uuid.UUID) ([]T, error) {
	l.mu.Lock()
	if l.batches == nil {
		l.batches = map[C]*batch[T]{}
	}
	b := l.batches[client]
	if b == nil {
		b = &batch[T]{done: make(chan struct{})}
		l.batches[client] = b
		time.AfterFunc(time.Millisecond, func() { l.run(ctx, client, b) })
	}
	b.ids = append(b.ids, id)
	full := len(b.ids) >= 100
	l.mu.Unlock()
	if full {
		l.run(ctx, client, b)
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	return b.res[id], nil
}

func (l *ListLoader[C, T]) run(ctx context.Context, client C, b *batch[T]) {
	b.once.Do(func() {
		l.mu.Lock()
		if l.batches[client] == b {
			delete(l.batches, client)
		}
		ids := b.ids
		l.mu.Unlock()
		b.res, b.err = l.Fetch(context.WithoutCancel(ctx), client, ids)
		close(b.done)
	})
}
