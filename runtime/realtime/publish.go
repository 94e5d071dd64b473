package realtime

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Pending is an event to publish after the transaction of its write
// commits: a record, or a reload of the records of a bulk update.
type Pending struct {
	Type, Event string
	Record      any
	Reload      func(context.Context) ([]any, error)
}

// Publish sends pending events (after their write committed). Failures are
// logged: the write has happened, and subscribers that miss an event get
// RESYNC from the pub/sub when it notices.
func Publish(ctx context.Context, events Events, pending []Pending) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, p := range pending {
		records := []any{p.Record}
		if p.Reload != nil {
			var err error
			if records, err = p.Reload(pctx); err != nil {
				slog.ErrorContext(pctx, "realtime: reload for publish", "type", p.Type, "err", err)
				continue
			}
		}
		for _, r := range records {
			data, err := json.Marshal(r)
			if err == nil {
				err = events.Publish(pctx, Topic(p.Type, p.Event), data)
			}
			if err != nil {
				slog.ErrorContext(pctx, "realtime: publish", "type", p.Type, "event", p.Event, "err", err)
			}
		}
	}
}

// Anys converts records for Pending.Reload.
func Anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// Unseen returns the ids not in seen and adds them to it (cascades visit
// each record once).
func Unseen(ids []uuid.UUID, seen map[uuid.UUID]bool) []uuid.UUID {
	var out []uuid.UUID
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
