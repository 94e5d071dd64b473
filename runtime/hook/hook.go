// Package hook runs an app's own Go code when its data changes: hooks, in
// the write's transaction, and event triggers, enqueued in that same
// transaction (a transactional outbox: a committed write always gets its
// events, a rolled-back one never does).
//
// The generated graph.Code holds one Model per model of the schema, typed
// with the model's ent record (T), ent mutation (M) and ent client (C);
// the app registers its functions on them in its own Go files, and the
// generated code binds them to ent's mutation hooks, so they run on every
// write path: the generated mutations, hand-written resolvers using the
// ent client, cascaded deletes and admin requests.
package hook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/job"
)

// Model holds the hooks and triggers of one model. The zero value has
// none. Register before the server starts (from main); a Model is not
// safe for registration while writes run.
type Model[T comparable, M any, C any] struct {
	beforeCreate []func(context.Context, M) error
	afterCreate  []func(context.Context, C, T) error
	beforeUpdate []func(context.Context, M, T) error
	afterUpdate  []func(context.Context, C, T, T) error
	beforeDelete []func(context.Context, C, T) error
	afterDelete  []func(context.Context, C, T) error
	triggers     []Trigger[T, C]
}

// BeforeCreate runs f before a record is created, with the mutation: f may
// change the values to be stored (m.SetTitle(...)) or reject the write by
// returning an error (an apierror.Error such as apierror.Input(field, msg)
// reaches the client as it is; nothing is stored).
func (h *Model[T, M, C]) BeforeCreate(f func(ctx context.Context, m M) error) {
	h.beforeCreate = append(h.beforeCreate, f)
}

// AfterCreate runs f after a record is created, in the same transaction:
// tx is the transaction's client, so what f writes commits or rolls back
// with the write; an error rolls everything back.
func (h *Model[T, M, C]) AfterCreate(f func(ctx context.Context, tx C, created T) error) {
	h.afterCreate = append(h.afterCreate, f)
}

// BeforeUpdate runs f before each record of an update is changed, with the
// mutation (shared by the records of a bulk update) and the record as it
// is; f may change the mutation or reject the write.
func (h *Model[T, M, C]) BeforeUpdate(f func(ctx context.Context, m M, old T) error) {
	h.beforeUpdate = append(h.beforeUpdate, f)
}

// AfterUpdate runs f after each record of an update is changed, in the
// same transaction, with the record before and after.
func (h *Model[T, M, C]) AfterUpdate(f func(ctx context.Context, tx C, old, updated T) error) {
	h.afterUpdate = append(h.afterUpdate, f)
}

// BeforeDelete runs f before each record of a delete goes; an error
// rejects the delete.
func (h *Model[T, M, C]) BeforeDelete(f func(ctx context.Context, tx C, old T) error) {
	h.beforeDelete = append(h.beforeDelete, f)
}

// AfterDelete runs f after each record of a delete is gone, in the same
// transaction.
func (h *Model[T, M, C]) AfterDelete(f func(ctx context.Context, tx C, old T) error) {
	h.afterDelete = append(h.afterDelete, f)
}

// Trigger is an event trigger on a model: every committed write of one of
// its operations (that When accepts) enqueues one event, delivered at
// least once to its Handler or its Webhook (exactly one of them).
type Trigger[T any, C any] struct {
	// Name names the trigger in events, logs and the admin API; unique in
	// the app.
	Name string
	// On lists the operations (job.Create, job.Update, job.Delete).
	On []job.Op
	// When, if set, decides per write: old is the zero T on create, updated
	// the zero T on delete.
	When func(old, updated T) bool
	// Handler handles an event in Go, with the app's client (read rules
	// lifted: ctx is a system context); an error retries it later.
	Handler func(ctx context.Context, client C, e job.Event) error
	// Webhook posts the event to a URL, signed.
	Webhook *job.Webhook
	// MaxAttempts bounds the deliveries of an event (0: the server's
	// default); after the last failure the event is discarded, visible to
	// admins, who can retry it.
	MaxAttempts int
}

// Trigger registers an event trigger.
func (h *Model[T, M, C]) Trigger(t Trigger[T, C]) { h.triggers = append(h.triggers, t) }

// Triggers returns the model's triggers for the server: their targets,
// Go handlers called with client.
func (h *Model[T, M, C]) Triggers(client C) []job.Trigger {
	out := make([]job.Trigger, 0, len(h.triggers))
	for _, t := range h.triggers {
		jt := job.Trigger{Name: t.Name, Target: job.Target{Webhook: t.Webhook, MaxAttempts: t.MaxAttempts}}
		if f := t.Handler; f != nil {
			jt.Handler = func(ctx context.Context, e job.Event) error { return f(access.System(ctx), client, e) }
		}
		out = append(out, jt)
	}
	return out
}

// Handles reports whether any hook or trigger runs on op.
func (h *Model[T, M, C]) Handles(op job.Op) bool {
	switch op {
	case job.Create:
		if len(h.beforeCreate)+len(h.afterCreate) > 0 {
			return true
		}
	case job.Update:
		if len(h.beforeUpdate)+len(h.afterUpdate) > 0 {
			return true
		}
	case job.Delete:
		if len(h.beforeDelete)+len(h.afterDelete) > 0 {
			return true
		}
	}
	for _, t := range h.triggers {
		if slices.Contains(t.On, op) {
			return true
		}
	}
	return false
}

// Binding is what the generated code tells the runtime about a model.
type Binding[T comparable, M any, C any] struct {
	// Model is the GraphQL type name.
	Model string
	// Client is the mutation's client (its transaction's, if any).
	Client func(M) C
	// Exec is the client as a raw-statement runner (to find its
	// transaction for the event outbox).
	Exec func(C) job.Execer
	// IDs are the ids of the records an update or delete changes.
	IDs func(context.Context, M) ([]uuid.UUID, error)
	// Load loads records by id, in any order, read rules lifted.
	Load func(context.Context, C, []uuid.UUID) ([]T, error)
	// ID is a record's id.
	ID func(T) uuid.UUID
	// Public is a record as the JSON of an event: the fields every reader
	// may see (fields with their own read rules are left out).
	Public func(T) ([]byte, error)
	// Cascade deletes, through the client (so their hooks run), the
	// records a delete of ids would remove by a database cascade, where
	// their model has delete hooks or triggers.
	Cascade func(context.Context, C, []uuid.UUID) error
	// Queue enqueues events; nil when the app has no triggers.
	Queue job.Queue
}

// Mutate runs a write of op through the hooks: next performs the write
// (ent's next mutator) and returns ent's value (the record for a create
// or an update of one record).
func (h *Model[T, M, C]) Mutate(ctx context.Context, b *Binding[T, M, C], op job.Op, m M, next func(context.Context) (any, error)) (any, error) {
	if !h.Handles(op) && (op != job.Delete || b.Cascade == nil) {
		return next(ctx)
	}
	c := b.Client(m)
	sys := access.System(ctx)
	switch op {
	case job.Create:
		for _, f := range h.beforeCreate {
			if err := f(ctx, m); err != nil {
				return nil, err
			}
		}
		v, err := next(ctx)
		if err != nil {
			return nil, err
		}
		rec, ok := v.(T)
		if !ok {
			return nil, fmt.Errorf("%s hooks: a create returned %T", b.Model, v)
		}
		for _, f := range h.afterCreate {
			if err := f(ctx, c, rec); err != nil {
				return nil, err
			}
		}
		var zero T
		return v, h.enqueue(ctx, b, c, op, []change[T]{{zero, rec}})
	case job.Update:
		ids, err := b.IDs(sys, m)
		if err != nil {
			return nil, fmt.Errorf("%s hooks: %w", b.Model, err)
		}
		olds, err := loadByID(sys, b, c, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if old, ok := olds[id]; ok {
				for _, f := range h.beforeUpdate {
					if err := f(ctx, m, old); err != nil {
						return nil, err
					}
				}
			}
		}
		v, err := next(ctx)
		if err != nil {
			return nil, err
		}
		news, err := loadByID(sys, b, c, ids)
		if err != nil {
			return nil, err
		}
		var changes []change[T]
		for _, id := range ids {
			old, ok1 := olds[id]
			updated, ok2 := news[id]
			if !ok1 || !ok2 {
				continue
			}
			for _, f := range h.afterUpdate {
				if err := f(ctx, c, old, updated); err != nil {
					return nil, err
				}
			}
			changes = append(changes, change[T]{old, updated})
		}
		return v, h.enqueue(ctx, b, c, op, changes)
	default: // job.Delete
		ids, err := b.IDs(sys, m)
		if err != nil {
			return nil, fmt.Errorf("%s hooks: %w", b.Model, err)
		}
		if len(ids) == 0 {
			return next(ctx)
		}
		olds, err := loadByID(sys, b, c, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if old, ok := olds[id]; ok {
				for _, f := range h.beforeDelete {
					if err := f(ctx, c, old); err != nil {
						return nil, err
					}
				}
			}
		}
		if b.Cascade != nil {
			if err := b.Cascade(ctx, c, ids); err != nil {
				return nil, err
			}
		}
		v, err := next(ctx)
		if err != nil {
			return nil, err
		}
		var changes []change[T]
		var zero T
		for _, id := range ids {
			old, ok := olds[id]
			if !ok {
				continue
			}
			for _, f := range h.afterDelete {
				if err := f(ctx, c, old); err != nil {
					return nil, err
				}
			}
			changes = append(changes, change[T]{old, zero})
		}
		return v, h.enqueue(ctx, b, c, op, changes)
	}
}

type change[T any] struct{ old, updated T }

func loadByID[T comparable, M any, C any](ctx context.Context, b *Binding[T, M, C], c C, ids []uuid.UUID) (map[uuid.UUID]T, error) {
	recs, err := b.Load(ctx, c, ids)
	if err != nil {
		return nil, fmt.Errorf("%s hooks: load the records: %w", b.Model, err)
	}
	out := make(map[uuid.UUID]T, len(recs))
	for _, r := range recs {
		out[b.ID(r)] = r
	}
	return out, nil
}

// enqueue enqueues the events of the triggers on op for changes: in the
// write's transaction when there is one, else at once.
func (h *Model[T, M, C]) enqueue(ctx context.Context, b *Binding[T, M, C], c C, op job.Op, changes []change[T]) error {
	var events []job.Event
	var zero T
	now := time.Now().UTC()
	for _, t := range h.triggers {
		if !slices.Contains(t.On, op) {
			continue
		}
		for _, ch := range changes {
			if t.When != nil && !t.When(ch.old, ch.updated) {
				continue
			}
			e := job.Event{ID: uuid.NewString(), Trigger: t.Name, Model: b.Model, Op: op, At: now}
			var err error
			if ch.old != zero {
				e.RecordID = b.ID(ch.old).String()
				if e.Old, err = b.Public(ch.old); err != nil {
					return fmt.Errorf("trigger %s: %w", t.Name, err)
				}
			}
			if ch.updated != zero {
				e.RecordID = b.ID(ch.updated).String()
				if e.New, err = b.Public(ch.updated); err != nil {
					return fmt.Errorf("trigger %s: %w", t.Name, err)
				}
			}
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		return nil
	}
	if b.Queue == nil {
		return fmt.Errorf("trigger %s: the server runs no job engine", events[0].Trigger)
	}
	tx, err := job.SQLTx(ctx, b.Exec(c))
	if errors.Is(err, job.ErrNoTx) {
		// A write outside a transaction has committed already.
		if err := b.Queue.Insert(ctx, events); err != nil {
			return fmt.Errorf("trigger %s: %w", events[0].Trigger, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("trigger: find the write's transaction: %w", err)
	}
	// One insert for all the events of the write.
	if err := b.Queue.InsertTx(ctx, tx, events); err != nil {
		return fmt.Errorf("trigger %s: %w", events[0].Trigger, err)
	}
	return nil
}

// Merge adds the hooks and triggers of o to h.
func (h *Model[T, M, C]) Merge(o *Model[T, M, C]) {
	h.beforeCreate = append(h.beforeCreate, o.beforeCreate...)
	h.afterCreate = append(h.afterCreate, o.afterCreate...)
	h.beforeUpdate = append(h.beforeUpdate, o.beforeUpdate...)
	h.afterUpdate = append(h.afterUpdate, o.afterUpdate...)
	h.beforeDelete = append(h.beforeDelete, o.beforeDelete...)
	h.afterDelete = append(h.afterDelete, o.afterDelete...)
	h.triggers = append(h.triggers, o.triggers...)
}

// Reach returns, per model, whether its deletes must go through ent's
// hooks: it has delete hooks or triggers itself (deletes), or a database
// cascade from it reaches a model that has (cascades: model -> the models
// its deletes cascade to).
func Reach(cascades map[string][]string, deletes map[string]bool) map[string]bool {
	out := make(map[string]bool, len(deletes))
	var visit func(m string, seen map[string]bool) bool
	visit = func(m string, seen map[string]bool) bool {
		if deletes[m] {
			return true
		}
		if seen[m] {
			return false
		}
		seen[m] = true
		for _, c := range cascades[m] {
			if visit(c, seen) {
				return true
			}
		}
		return false
	}
	for m := range deletes {
		out[m] = visit(m, map[string]bool{})
	}
	return out
}

// Cascades reports whether a delete of model must first delete, through
// ent, some of the records a database cascade would remove.
func Cascades(model string, cascades map[string][]string, reach map[string]bool) bool {
	for _, c := range cascades[model] {
		if reach[c] {
			return true
		}
	}
	return false
}
