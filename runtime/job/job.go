// Package job is the contract between an app's own asynchronous code and
// Kiln's job engine (River, run by the server): the events that triggers
// enqueue in a write's transaction (Event), where they are delivered (a Go
// Handler or a Webhook), periodic jobs (Periodic), and the Queue the
// server provides. The webhook signature (Sign, Verify) is here too, so a
// Go receiver checks it with the same code that makes it.
package job

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

// Op is the operation of a write.
type Op string

// The operations events are made for.
const (
	Create Op = "create"
	Update Op = "update"
	Delete Op = "delete"
)

// Event is one committed write a trigger fires on, delivered at least once.
type Event struct {
	// ID is unique per event and stays the same across delivery attempts:
	// a receiver deduplicates with it.
	ID string `json:"id"`
	// Trigger is the name of the trigger that made the event.
	Trigger string `json:"trigger"`
	// Model is the GraphQL type of the record, Op the operation.
	Model string `json:"model"`
	Op    Op     `json:"op"`
	// RecordID is the record's id.
	RecordID string `json:"recordId"`
	// Old is the record before the write (update, delete), New after it
	// (create, update); null otherwise. Fields readable only by their owner
	// or by some roles are left out.
	Old json.RawMessage `json:"old"`
	New json.RawMessage `json:"new"`
	// At is when the write happened.
	At time.Time `json:"at"`
}

// Handler handles an event; an error makes the engine retry it later
// (with exponential backoff, up to the trigger's attempts).
type Handler func(ctx context.Context, e Event) error

// Webhook delivers events by HTTP POST of the Event as JSON, signed with
// Secret (see Sign); any 2xx answer is success.
type Webhook struct {
	URL    string
	Secret string
}

// Target is where a trigger's events go: exactly one of Handler and
// Webhook.
type Target struct {
	Handler Handler
	Webhook *Webhook
	// MaxAttempts bounds the deliveries of an event (default 25); after the
	// last failed one it is discarded, visible to admins, who can retry it.
	MaxAttempts int
}

// Trigger is a named event target, registered with the server: the
// generated per-model hooks enqueue events under its name.
type Trigger struct {
	Name string
	Target
}

// Periodic is a job run every Interval (at least 1s), once per tick across all the
// instances sharing the database (the elected leader enqueues it).
type Periodic struct {
	Name     string
	Interval time.Duration
	// Run does the work; an error retries it like an event.
	Run func(ctx context.Context) error
	// RunOnStart runs it at start as well as after each interval.
	RunOnStart bool
}

// Queue is the job engine as the generated code sees it.
type Queue interface {
	// InsertTx enqueues the events of one write in tx, the write's
	// transaction: they are delivered if and only if tx commits.
	InsertTx(ctx context.Context, tx *sql.Tx, events []Event) error
	// Insert enqueues the events of one write now (a write made outside a
	// transaction).
	Insert(ctx context.Context, events []Event) error
}

// ErrNoTx is returned by SQLTx for a client outside a transaction of
// Kiln's server.
var ErrNoTx = errors.New("not in a transaction")

// TxProbe is the argument the server's database driver recognises in a raw
// statement (ExecContext): instead of running it, a transaction fills Tx
// with itself, and a connection outside a transaction answers ErrNoTx.
type TxProbe struct{ Tx *sql.Tx }

// TxProbeQuery is the statement text sent with a *TxProbe.
const TxProbeQuery = "-- kiln: which transaction"

// Execer is an ent client (with the sql/execquery feature) or any
// database/sql-like handle.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// SQLTx returns the database/sql transaction under exec (an ent client of
// a transaction begun through the server's driver), or ErrNoTx.
func SQLTx(ctx context.Context, exec Execer) (*sql.Tx, error) {
	p := &TxProbe{}
	if _, err := exec.ExecContext(ctx, TxProbeQuery, p); err != nil {
		return nil, err
	}
	if p.Tx == nil {
		return nil, ErrNoTx
	}
	return p.Tx, nil
}

// Info is a job as admins see it: an event delivery or a periodic job's
// tick.
type Info struct {
	ID string
	// Kind is kiln_event or kiln_periodic.
	Kind string
	// Name is the trigger of an event, the name of a periodic job.
	Name string
	// EventID is the event's id (events only).
	EventID string
	// State is available, scheduled, running, retryable, completed,
	// cancelled or discarded.
	State                string
	Attempt, MaxAttempts int
	// Errors are the failed attempts' errors, oldest first.
	Errors      []string
	CreatedAt   time.Time
	ScheduledAt time.Time
	FinalizedAt *time.Time
}

// ErrNoJob is returned for a job id that does not exist.
var ErrNoJob = errors.New("no such job")

// Admin is what the admin API asks of the job engine.
type Admin interface {
	// List returns the newest jobs in state ("" for all), at most first.
	List(ctx context.Context, state string, first int) ([]Info, error)
	// Retry runs a job again now (a discarded event, say).
	Retry(ctx context.Context, id string) (Info, error)
}
