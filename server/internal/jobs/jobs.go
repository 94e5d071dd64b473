// Package jobs is Kiln's job engine, on River (github.com/riverqueue/river)
// in the app's own database (SQLite or PostgreSQL, through database/sql):
// the events of an app's triggers, enqueued in the write's transaction and
// delivered at least once to a Go handler or a signed webhook, with
// exponential backoff and a maximum number of attempts; periodic jobs, one
// run per tick across instances (River's leader enqueues them, unique per
// period); and what admins see and retry.
package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"kiln/runtime/job"
	"kiln/server/internal/config"
	"kiln/server/internal/database"
)

// Kinds of River jobs Kiln inserts.
const (
	EventKind    = "kiln_event"
	PeriodicKind = "kiln_periodic"
)

type eventArgs struct {
	Event job.Event `json:"event"`
}

func (eventArgs) Kind() string { return EventKind }

type periodicArgs struct {
	Name string `json:"name"`
}

func (periodicArgs) Kind() string { return PeriodicKind }

func driver(db *sql.DB, dialectName string) riverdriver.Driver[*sql.Tx] {
	if dialectName == dialect.Postgres {
		return pollDriver{riverdatabasesql.New(db)}
	}
	return riversqlite.New(db)
}

// pollDriver is River's database/sql driver of PostgreSQL, which has no
// LISTEN, without NOTIFY either: the engine polls (Config.PollOnly), so the
// NOTIFY River would otherwise send in each inserting transaction wakes no
// one, and it costs every write with a trigger a round trip and, at
// commit, PostgreSQL's notification queue lock, which serialises the
// commits of concurrent writes.
type pollDriver struct {
	riverdriver.Driver[*sql.Tx]
}

// SupportsListenNotify is false: River then sends no NOTIFY.
func (pollDriver) SupportsListenNotify() bool { return false }

// Migrate creates or updates River's tables (its own versioned
// migrations, applied after the app's).
func Migrate(ctx context.Context, db *sql.DB, dialectName string, log *slog.Logger) error {
	if dialectName == dialect.Postgres {
		// Instances starting at once would each insert the same version
		// (river_migration's primary key): one at a time, like the app's
		// migrations.
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("job engine migrations: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
			return fmt.Errorf("job engine migrations: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock)
	}
	m, err := rivermigrate.New(driver(db, dialectName), &rivermigrate.Config{Logger: quiet(log)})
	if err != nil {
		return fmt.Errorf("job engine migrations: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("job engine migrations: %w", err)
	}
	for _, v := range res.Versions {
		log.Info("migration applied", "version", v.Version, "file", fmt.Sprintf("river/%03d_%s", v.Version, strings.ReplaceAll(v.Name, " ", "_")), "took", v.Duration.Round(time.Millisecond))
	}
	return nil
}

// migrateLock is the PostgreSQL advisory lock key serialising River's
// migrations across instances ("kilnjobs" in ASCII).
const migrateLock int64 = 0x6b696c6e6a6f6273

// Migration is one of River's migrations and whether the database has it.
type Migration struct {
	Version int
	File    string // river/<version>_<name>
	Applied bool
}

// Migrations lists River's migrations, oldest first, each applied or
// pending in this database (River keeps no time of application).
func Migrations(ctx context.Context, db *sql.DB, dialectName string, log *slog.Logger) ([]Migration, error) {
	m, err := rivermigrate.New(driver(db, dialectName), &rivermigrate.Config{Logger: quiet(log)})
	if err != nil {
		return nil, fmt.Errorf("job engine migrations: %w", err)
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("job engine migration status: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range existing {
		applied[v.Version] = true
	}
	var out []Migration
	for _, v := range m.AllVersions() {
		out = append(out, Migration{Version: v.Version, File: fmt.Sprintf("river/%03d_%s", v.Version, strings.ReplaceAll(v.Name, " ", "_")), Applied: applied[v.Version]})
	}
	return out, nil
}

// MigrationCount is the number of River's migrations for a dialect.
func MigrationCount(dialectName string) (int, error) {
	m, err := rivermigrate.New(driver(nil, dialectName), nil)
	if err != nil {
		return 0, fmt.Errorf("job engine migrations: %w", err)
	}
	return len(m.AllVersions()), nil
}

// quiet is log for River's own messages: warnings and errors only.
func quiet(log *slog.Logger) *slog.Logger {
	return slog.New(levelAtLeast{log.Handler(), slog.LevelWarn})
}

type levelAtLeast struct {
	slog.Handler
	min slog.Level
}

func (l levelAtLeast) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= l.min && l.Handler.Enabled(ctx, lvl)
}

// Engine is the job engine of one server instance.
type Engine struct {
	client   *river.Client[*sql.Tx]
	postgres bool
	cfg      config.JobsConfig
	log      *slog.Logger
	http     *http.Client
	triggers map[string]job.Target
	periodic map[string]job.Periodic
	push     PushSender
}

// New makes the engine on db; Register adds the app's triggers and
// periodic jobs, Start runs it. Events can be inserted before Start.
func New(db *sql.DB, dialectName string, cfg config.JobsConfig, log *slog.Logger) (*Engine, error) {
	e := &Engine{postgres: dialectName == dialect.Postgres, cfg: cfg, log: log, http: webhookClient(cfg),
		triggers: map[string]job.Target{}, periodic: map[string]job.Periodic{}}
	workers := river.NewWorkers()
	river.AddWorker(workers, &eventWorker{e: e})
	river.AddWorker(workers, &periodicWorker{e: e})
	river.AddWorker(workers, &pushWorker{e: e})
	rc := &river.Config{
		Logger:            quiet(log),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:           workers,
		FetchPollInterval: cfg.PollInterval,
		// When busy, fetch again as soon as 10ms after the last fetch (River's
		// default, 100ms, caps an instance at its workers x 10 jobs/s).
		FetchCooldown: min(cfg.PollInterval, 10*time.Millisecond),
		MaxAttempts:   cfg.MaxAttempts,
		RetryPolicy:   backoff{base: cfg.RetryBase, max: cfg.RetryMax},
		JobTimeout:    cfg.Timeout,
		// A job left running by an instance that died runs again.
		RescueStuckJobsAfter: cfg.RescueAfter,
		// The database/sql driver of PostgreSQL has no LISTEN: poll.
		PollOnly: dialectName == dialect.Postgres,
	}
	c, err := river.NewClient(driver(db, dialectName), rc)
	if err != nil {
		return nil, fmt.Errorf("job engine: %w", err)
	}
	e.client = c
	return e, nil
}

// webhookClient is the HTTP client of webhook deliveries: it keeps an idle
// connection per worker to a receiver (Go's default keeps 2 per host, so
// concurrent deliveries to one receiver opened and closed a connection
// for most events).
func webhookClient(cfg config.JobsConfig) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(cfg.Workers, 2)
	return &http.Client{Timeout: cfg.WebhookTimeout, Transport: t}
}

// Register adds the app's triggers and periodic jobs (before Start).
func (e *Engine) Register(triggers []job.Trigger, periodic []job.Periodic) error {
	var errs []error
	for _, t := range triggers {
		switch {
		case t.Name == "":
			errs = append(errs, errors.New("a trigger has no name"))
		case e.hasTrigger(t.Name):
			errs = append(errs, fmt.Errorf("trigger %q is registered twice: names are unique", t.Name))
		case (t.Handler == nil) == (t.Webhook == nil):
			errs = append(errs, fmt.Errorf("trigger %q needs exactly one of Handler and Webhook", t.Name))
		case t.Webhook != nil && t.Webhook.URL == "":
			errs = append(errs, fmt.Errorf("trigger %q: the webhook has no URL", t.Name))
		default:
			e.triggers[t.Name] = t.Target
		}
	}
	for _, p := range periodic {
		if p.Name == "" || p.Interval < time.Second || p.Run == nil {
			errs = append(errs, fmt.Errorf("periodic job %q needs a name, an interval of at least 1s and Run", p.Name))
			continue
		}
		if _, dup := e.periodic[p.Name]; dup {
			errs = append(errs, fmt.Errorf("periodic job %q is registered twice: names are unique", p.Name))
			continue
		}
		e.periodic[p.Name] = p
		interval := p.Interval
		name := p.Name
		e.client.PeriodicJobs().Add(river.NewPeriodicJob(river.PeriodicInterval(interval),
			func() (river.JobArgs, *river.InsertOpts) {
				// Unique per period: a tick enqueued twice (a leader change)
				// runs once.
				return periodicArgs{Name: name}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: interval}}
			}, &river.PeriodicJobOpts{ID: name, RunOnStart: p.RunOnStart}))
	}
	return errors.Join(errs...)
}

func (e *Engine) hasTrigger(name string) bool { _, ok := e.triggers[name]; return ok }

// Start runs the engine until Stop.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.client.Start(ctx); err != nil {
		return fmt.Errorf("job engine: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for the running ones (bounded by
// ctx; then they are cancelled and retried later).
func (e *Engine) Stop(ctx context.Context) error {
	err := e.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return e.client.StopAndCancel(context.Background())
	}
	return err
}

// maxAttempts is the deliveries of an event: its trigger's, else the
// server's default; at most 32767, River's column (a smallint), as River
// itself bounds it.
func (e *Engine) maxAttempts(ev job.Event) int {
	n := cmp.Or(e.cfg.MaxAttempts, river.MaxAttemptsDefault)
	if t, ok := e.triggers[ev.Trigger]; ok && t.MaxAttempts > 0 {
		n = t.MaxAttempts
	}
	return min(n, math.MaxInt16)
}

func (e *Engine) params(evs []job.Event) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(evs))
	for i, ev := range evs {
		out[i] = river.InsertManyParams{Args: eventArgs{Event: ev}, InsertOpts: &river.InsertOpts{MaxAttempts: e.maxAttempts(ev)}}
	}
	return out
}

// InsertTx enqueues the events of a write in the write's transaction.
//
// On PostgreSQL it is one plain multi-row INSERT into River's job table
// (per 1,000 events) of the rows River itself would insert for jobs
// without unique options (River's insert-only clients in other languages
// do the same): River's own insert through its database/sql driver encodes every column as a
// text array for an unnest, returns the whole row and costs the write
// about three times the CPU of the record's own insert. Columns left out
// take the table's defaults (created_at and scheduled_at now(), no tags,
// empty metadata). The engine finds the jobs at its next poll.
func (e *Engine) InsertTx(ctx context.Context, tx *sql.Tx, evs []job.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if !e.postgres {
		_, err := e.client.InsertManyTx(ctx, tx, e.params(evs))
		return err
	}
	// At most 1,000 rows a statement (PostgreSQL takes 65,535 parameters).
	for chunk := range slices.Chunk(evs, 1000) {
		if err := e.insertRows(ctx, tx, chunk); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) insertRows(ctx context.Context, tx *sql.Tx, evs []job.Event) error {
	var q strings.Builder
	q.WriteString("INSERT INTO river_job (args, kind, max_attempts, priority, queue, state) VALUES ")
	args := make([]any, 0, 2*len(evs))
	for i, ev := range evs {
		a, err := json.Marshal(eventArgs{Event: ev})
		if err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "($%d, '%s', $%d, %d, '%s', 'available')", 2*i+1, EventKind, 2*i+2, river.PriorityDefault, river.QueueDefault)
		args = append(args, string(a), e.maxAttempts(ev))
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("enqueue %d events: %w", len(evs), err)
	}
	return nil
}

// Insert enqueues the events of a write now.
func (e *Engine) Insert(ctx context.Context, evs []job.Event) error {
	if len(evs) == 0 {
		return nil
	}
	_, err := e.client.InsertMany(ctx, e.params(evs))
	return err
}

// backoff is exponential: base*2^(attempt-1), at most max, 10% jitter.
type backoff struct{ base, max time.Duration }

func (b backoff) NextRetry(j *rivertype.JobRow) time.Time {
	return time.Now().Add(b.wait(j.Attempt))
}

// wait is the wait after attempt (1 for the first).
func (b backoff) wait(attempt int) time.Duration {
	d := b.max
	if n := attempt - 1; n < 40 {
		if x := b.base << max(n, 0); x > 0 && x < b.max {
			d = x
		}
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

type eventWorker struct {
	river.WorkerDefaults[eventArgs]
	e *Engine
}

func (w *eventWorker) Work(ctx context.Context, j *river.Job[eventArgs]) error {
	ctx = database.Background(ctx)
	ev := j.Args.Event
	t, ok := w.e.triggers[ev.Trigger]
	if !ok {
		return river.JobCancel(fmt.Errorf("this app has no trigger named %q", ev.Trigger))
	}
	var err error
	if t.Handler != nil {
		err = t.Handler(ctx, ev)
	} else {
		err = w.e.deliver(ctx, t.Webhook, ev, j.Attempt)
	}
	if err != nil {
		w.e.log.Warn("event delivery failed", "trigger", ev.Trigger, "event", ev.ID, "attempt", j.Attempt, "max_attempts", j.MaxAttempts, "err", err)
		return err
	}
	return nil
}

type periodicWorker struct {
	river.WorkerDefaults[periodicArgs]
	e *Engine
}

func (w *periodicWorker) Work(ctx context.Context, j *river.Job[periodicArgs]) error {
	ctx = database.Background(ctx)
	p, ok := w.e.periodic[j.Args.Name]
	if !ok {
		return river.JobCancel(fmt.Errorf("this app has no periodic job named %q", j.Args.Name))
	}
	if err := p.Run(ctx); err != nil {
		w.e.log.Warn("periodic job failed", "job", p.Name, "attempt", j.Attempt, "err", err)
		return err
	}
	return nil
}
