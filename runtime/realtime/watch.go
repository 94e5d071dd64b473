package realtime

import (
	"context"
	"errors"

	"kiln/runtime/access"
)

// Model is what subscriptions need of one @realtime model, registered by
// the generated code.
type Model[T any] struct {
	// Type is the GraphQL type name, e.g. "Post".
	Type string
	// Allows is the in-memory form of the model's rules.
	Allows func(v *access.Viewer, op string, n *T) bool
	// AllowsAnyone reports whether a rule that names no viewer allows op
	// on n (every viewer may then receive it); nil means never.
	AllowsAnyone func(op string, n *T) bool
	// Decode turns an event's data into a record (attached to the app's
	// client, so a subscription's selection can load its edges).
	Decode func(data []byte) (*T, error)
}

// Watch subscribes to a model's event and delivers the records the viewer
// may read and that match where, converted by conv (the record itself, or
// its id). Where is matched in memory; filters that need SQL (relations,
// protected fields) run sqlMatch. When events may have been lost, the
// subscription ends with a RESYNC error. One goroutine per subscription:
// it waits on the stream, decodes (once per event for all the
// subscriptions of the instance), authorizes and filters. A subscription
// whose where needs SQL first takes a slot of the Events' SQLFilterQuota,
// when it has one.
func Watch[T, R any](ctx context.Context, events Events, m Model[T], event string, where any, sqlMatch func(context.Context, *T) (bool, error), conv func(*T) R) (<-chan R, error) {
	if events == nil {
		return nil, errors.New("realtime is not configured on this server")
	}
	gate, _ := ctx.Value(gateKey{}).(*eventGate)
	allows, anyone := m.Allows, m.AllowsAnyone
	if gate != nil && !isNilWhere(where) {
		// ViewerIndependent never shares a subscription with arguments:
		// filters may need SQL run as a viewer.
		return nil, errors.New("realtime: a subscription shared by viewers cannot filter")
	}
	var release func()
	if q, ok := events.(SQLFilterQuota); ok && sqlMatch != nil && whereNeedsSQL[T](where) {
		var err error
		if release, err = q.AcquireSQLFilter(ctx); err != nil {
			return nil, err
		}
	}
	stream, err := events.Subscribe(ctx, Topic(m.Type, event))
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	out := make(chan R, 16)
	go func() {
		defer close(out)
		defer stream.Close()
		if release != nil {
			defer release()
		}
		for {
			ev, err := stream.Next(ctx)
			if err != nil {
				if ctx.Err() == nil { // events lost, or the stream ended under us
					if gate != nil && !gate.push(nil) { // the error goes to all
						return
					}
					resync(ctx, out)
				}
				return
			}
			n := decode(ev, m.Decode)
			if n == nil {
				continue
			}
			if gate != nil {
				// Shared by viewers: every event goes on, with the check
				// that each member's viewer may read it (none, nil, when a
				// rule that names no viewer allows it).
				var check func(any) bool
				if anyone == nil || !anyone(access.OpRead, n) {
					check = func(subject any) bool {
						r := readerOf(subject)
						return r.bypass || allows(r.viewer, access.OpRead, n)
					}
				}
				if !gate.push(check) {
					return
				}
				select {
				case out <- conv(n):
				case <-ctx.Done():
					return
				}
				continue
			}
			v, skip := access.Bypass(ctx)
			if !skip && !allows(v, access.OpRead, n) {
				continue
			}
			match, needSQL := matchWhere(where, n)
			if needSQL {
				if sqlMatch == nil {
					match = true // a deleted record is gone: relation filters cannot apply
				} else if match, err = sqlMatch(ctx, n); err != nil {
					continue
				}
			}
			if !match {
				continue
			}
			select {
			case out <- conv(n):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// decode returns the record of ev, decoded once per event when ev has a
// memo (then shared: read-only), or nil when it does not decode.
func decode[T any](ev Event, dec func([]byte) (*T, error)) *T {
	one := func() any {
		n, err := dec(ev.Data)
		if err != nil {
			return nil
		}
		return n
	}
	if ev.Memo == nil {
		n, _ := one().(*T)
		return n
	}
	if n, ok := ev.Memo.Do(one).(*T); ok {
		return n
	}
	n, _ := one().(*T) // a memo of another type: not shared
	return n
}

// Record is Watch's conv for subscriptions that deliver whole records.
func Record[T any](n *T) *T { return n }
