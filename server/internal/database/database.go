// Package database opens the configured database (an embedded SQLite file
// through modernc.org/sqlite, or PostgreSQL through a pgx pool), applies the
// embedded versioned migrations under a lock, and counts SQL statements.
//
// In SQLite mode the process holds an exclusive OS lock on kiln.lock in the
// data directory until Close (or exit): a second server on the same
// directory refuses to start instead of running beside the first with its
// own realtime events and rate limits. The data directory is created 0700
// and the database file 0600 (SQLite gives its -wal and -shm files the
// database file's mode).
package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/gofrs/flock"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"kiln/runtime/job"
)

// Options configure Open.
type Options struct {
	// URL is postgres://... or sqlite:///path; empty means SQLite in DataDir.
	URL      string
	DataDir  string
	MaxConns int
	// AcquireTimeout bounds the wait for a pooled PostgreSQL connection
	// (0: only the request's context bounds it). Past it, queries fail with
	// an error wrapping ErrPoolExhausted.
	AcquireTimeout time.Duration
	// ConnectTimeout is how long Open retries, with backoff, a PostgreSQL
	// that refuses connections or is still starting (0: one attempt).
	// Errors that waiting cannot fix (a wrong password, an unknown
	// database) fail at once.
	ConnectTimeout time.Duration
	// Logger receives a warning for each failed connection attempt
	// (nil: none).
	Logger *slog.Logger
}

// ErrPoolExhausted is returned (wrapped) when no pooled connection became
// free within Options.AcquireTimeout.
var ErrPoolExhausted = errors.New("database: no connection available within the acquire timeout")

// DB is an open database.
type DB struct {
	SQL     *sql.DB
	Dialect string // dialect.SQLite or dialect.Postgres
	// Where says which database this is, without credentials: the SQLite
	// file, or PostgreSQL's host:port/database.
	Where string
	// Driver is the ent driver; it counts statements.
	Driver *CountingDriver
	pool   *pgxpool.Pool
	locks  []*flock.Flock // SQLite: the data directory's lock, held until Close
	// SQLite: the database file, and the last check that it is writable.
	path     string
	writable writableCache
}

// LockFile is the name of the lock file in the data directory.
const LockFile = "kiln.lock"

// ErrLocked is returned (wrapped) by Open when another process holds the
// data directory's lock.
var ErrLocked = errors.New("in use by another Kiln server")

// lockDir takes the exclusive lock on dir/kiln.lock and writes this
// process's id into it. When another process holds it, the error names the
// directory and that process's id (as it wrote it).
func lockDir(dir string) (*flock.Flock, error) {
	path := filepath.Join(dir, LockFile)
	l := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		who := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				who = fmt.Sprintf("process %d", pid)
			}
		}
		return nil, fmt.Errorf("%w: %s holds %s; stop it, or give this server another KILN_DATA_DIR (or use PostgreSQL to run several instances)", ErrLocked, who, path)
	}
	// The pid is informative only: the OS lock is what excludes.
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return l, nil
}

// Open connects to the database.
func Open(ctx context.Context, o Options) (*DB, error) {
	if strings.HasPrefix(o.URL, "postgres://") || strings.HasPrefix(o.URL, "postgresql://") {
		return openPostgres(ctx, o)
	}
	return openSQLite(ctx, o)
}

func openSQLite(ctx context.Context, o Options) (*DB, error) {
	path := filepath.Join(o.DataDir, "kiln.db")
	if strings.HasPrefix(o.URL, "sqlite://") {
		u, err := url.Parse(o.URL)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		path = u.Host + u.Path
	}
	d := &DB{Dialect: dialect.SQLite}
	dirs := []string{filepath.Dir(path)}
	if o.DataDir != "" && filepath.Clean(o.DataDir) != filepath.Clean(dirs[0]) {
		dirs = append([]string{o.DataDir}, dirs...)
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			d.unlock()
			return nil, fmt.Errorf("create data directory %s (set KILN_DATA_DIR): %w", dir, err)
		}
		what := "database directory"
		if filepath.Clean(dir) == filepath.Clean(o.DataDir) {
			what = "data directory"
		}
		if err := CheckWritableDir(what, dir); err != nil {
			d.unlock()
			return nil, err
		}
		l, err := lockDir(dir)
		if err != nil {
			d.unlock()
			return nil, fmt.Errorf("data directory %s: %w", dir, err)
		}
		d.locks = append(d.locks, l)
	}
	// Create the file 0600 before SQLite does (it would use 0644).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		d.unlock()
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, fmt.Errorf("database file %s is not writable: %w", path, cause(err))
		}
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	f.Close()
	d.path, d.Where = path, path
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		d.unlock()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		d.unlock()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Keep the connections: database/sql's default of 2 idle ones closed
	// and reopened thousands per second under load (each open re-reads
	// the schema). The number open stays unbounded: writers wait for
	// SQLite's one write lock holding their connection (BEGIN IMMEDIATE,
	// busy_timeout), and a bound would make readers, which never wait for
	// writers in WAL mode, queue behind them.
	db.SetMaxIdleConns(sqliteIdleConns)
	d.SQL, d.Driver = db, newCounting(entsql.OpenDB(dialect.SQLite, db))
	return d, nil
}

// sqliteIdleConns is how many SQLite connections stay open between
// requests: enough for a busy server on a few cores.
const sqliteIdleConns = 16

// analysisLimit bounds the rows ANALYZE reads per index when Optimize
// refreshes SQLite's statistics, so that it costs milliseconds on tables
// of any size (SQLite's recommendation for PRAGMA optimize).
const analysisLimit = 1000

// Optimize keeps SQLite's query-planner statistics current: PRAGMA
// optimize analyzes the tables whose statistics are missing or stale
// (0x10002: every table, not only those this connection used), reading at
// most analysisLimit rows per index. Without statistics SQLite may answer
// a rule's (owner = ? OR visibility = 'PUBLIC') ORDER BY created_at by
// sorting the whole table. A no-op on PostgreSQL, whose autovacuum keeps
// its statistics.
func (d *DB) Optimize(ctx context.Context) error {
	if d.Dialect != dialect.SQLite {
		return nil
	}
	conn, err := d.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA analysis_limit = %d", analysisLimit)); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA optimize = 0x10002"); err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	return nil
}

// KeepOptimized runs Optimize every interval until ctx ends (SQLite only),
// logging failures: an app's tables grow without anyone running ANALYZE.
func (d *DB) KeepOptimized(ctx context.Context, every time.Duration, log *slog.Logger) {
	if d.Dialect != dialect.SQLite || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Optimize(ctx); err != nil && ctx.Err() == nil {
				log.Warn("sqlite statistics", "err", err)
			}
		}
	}
}

// unlock releases the data directory locks.
func (d *DB) unlock() {
	for _, l := range d.locks {
		_ = l.Close()
	}
	d.locks = nil
}

func openPostgres(ctx context.Context, o Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = int32(o.MaxConns)
	}
	// Fail fast while the database is down; the pool reconnects by itself.
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := connect(ctx, pool, cfg, o); err != nil {
		pool.Close()
		return nil, err
	}
	var db *sql.DB
	if o.AcquireTimeout > 0 {
		db = sql.OpenDB(acquireLimited{stdlib.GetPoolConnector(pool), o.AcquireTimeout})
		db.SetMaxIdleConns(0) // as stdlib.OpenDBFromPool: pgxpool keeps the idle connections
	} else {
		db = stdlib.OpenDBFromPool(pool)
	}
	where := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + cfg.ConnConfig.Database
	return &DB{SQL: db, Dialect: dialect.Postgres, Where: where, Driver: newCounting(entsql.OpenDB(dialect.Postgres, db)), pool: pool}, nil
}

// acquireLimited bounds each pool acquisition: database/sql asks the
// connector for a connection whenever it has no idle one (idle connections
// stay in pgxpool), so this is where a saturated pool makes requests wait.
type acquireLimited struct {
	driver.Connector
	timeout time.Duration
}

func (c acquireLimited) Connect(ctx context.Context) (driver.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.Connector.Connect(actx)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w (%s): %w", ErrPoolExhausted, c.timeout, err)
	}
	return conn, err
}

// Ping checks the database, bounded by ctx.
func (d *DB) Ping(ctx context.Context) error { return d.SQL.PingContext(ctx) }

// Close closes the database.
func (d *DB) Close() error {
	err := d.SQL.Close()
	if d.pool != nil {
		d.pool.Close()
	}
	d.unlock()
	return err
}

// Migrate applies the migrations in fsys/<dialect> that are not applied
// yet. On PostgreSQL a session advisory lock serialises instances starting
// at once.
func (d *DB) Migrate(ctx context.Context, fsys fs.FS, log *slog.Logger) error {
	p, err := d.migrations(fsys)
	if err != nil || p == nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", filepath.Base(r.Source.Path), "took", r.Duration.Round(time.Millisecond))
	}
	return nil
}

// Migration is one migration of an app and whether the database has it.
type Migration struct {
	Version   int64
	File      string // its file name
	Applied   bool
	AppliedAt time.Time // when Applied
}

// Migrations lists the migrations in fsys/<dialect>, oldest first, each
// applied or pending in this database. It changes nothing but creating
// the migrations' bookkeeping table when it is missing.
func (d *DB) Migrations(ctx context.Context, fsys fs.FS) ([]Migration, error) {
	p, err := d.migrations(fsys)
	if err != nil || p == nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, 0, len(st))
	for _, m := range st {
		out = append(out, Migration{Version: m.Source.Version, File: filepath.Base(m.Source.Path),
			Applied: m.State == goose.StateApplied, AppliedAt: m.AppliedAt})
	}
	return out, nil
}

// migrations returns the goose provider of the app's migrations for this
// database's dialect, or nil when there are none.
func (d *DB) migrations(fsys fs.FS) (*goose.Provider, error) {
	sub := "sqlite"
	gd := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if d.Dialect == dialect.Postgres {
		sub, gd = "postgres", goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	dir, err := fs.Sub(fsys, sub)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(gd, d.SQL, dir, opts...)
	if err != nil {
		if errors.Is(err, goose.ErrNoMigrations) {
			return nil, nil
		}
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// CountingDriver is an ent driver that counts the statements it runs.
type CountingDriver struct {
	dialect.Driver
	n atomic.Int64
}

func newCounting(d dialect.Driver) *CountingDriver { return &CountingDriver{Driver: d} }

type backgroundKey struct{}

// Background marks ctx as background work (jobs, the file janitor): its
// statements are not counted as the API's, so that the count of a request
// is not inflated by a job running at the same time.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// countIn counts a statement run with ctx, unless ctx is Background.
func countIn(ctx context.Context, n *atomic.Int64) {
	if ctx.Value(backgroundKey{}) == nil {
		n.Add(1)
	}
}

// Statements returns the number of statements the API has run so far
// (background work excluded).
func (c *CountingDriver) Statements() int64 { return c.n.Load() }

// Exec counts, traces and runs a statement.
func (c *CountingDriver) Exec(ctx context.Context, query string, args, v any) error {
	countIn(ctx, &c.n)
	ctx, end := traceSQL(ctx, query)
	err := c.Driver.Exec(ctx, query, args, v)
	end(err)
	return err
}

// Query counts, traces and runs a query.
func (c *CountingDriver) Query(ctx context.Context, query string, args, v any) error {
	countIn(ctx, &c.n)
	ctx, end := traceSQL(ctx, query)
	err := c.Driver.Query(ctx, query, args, v)
	end(err)
	return err
}

var sqlTracer = otel.Tracer("kiln/sql")

// traceSQL starts a span for a statement when tracing is on (the global
// tracer is a no-op otherwise).
func traceSQL(ctx context.Context, query string) (context.Context, func(error)) {
	if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
		return ctx, func(error) {}
	}
	if len(query) > 500 {
		query = query[:500]
	}
	ctx, span := sqlTracer.Start(ctx, "sql", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.statement", query)))
	return ctx, func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, "statement failed")
		}
		span.End()
	}
}

// Tx starts a transaction whose statements are counted too.
func (c *CountingDriver) Tx(ctx context.Context) (dialect.Tx, error) {
	tx, err := c.Driver.Tx(ctx)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, n: &c.n}, nil
}

// BeginTx starts a transaction with options, counting its statements.
func (c *CountingDriver) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	b, ok := c.Driver.(interface {
		BeginTx(context.Context, *sql.TxOptions) (dialect.Tx, error)
	})
	if !ok {
		return c.Tx(ctx)
	}
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, n: &c.n}, nil
}

// QueryContext runs a raw query (ent's ExecQuery feature), counted.
func (c *CountingDriver) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	countIn(ctx, &c.n)
	return c.Driver.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}).QueryContext(ctx, query, args...)
}

// ExecContext runs a raw statement (ent's ExecQuery feature), counted.
// A job.TxProbe is answered with job.ErrNoTx: this is no transaction.
func (c *CountingDriver) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if probe(args) != nil {
		return nil, job.ErrNoTx
	}
	countIn(ctx, &c.n)
	return c.Driver.(interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}).ExecContext(ctx, query, args...)
}

// probe returns the job.TxProbe of a raw statement's arguments, if any.
func probe(args []any) *job.TxProbe {
	if len(args) == 1 {
		if p, ok := args[0].(*job.TxProbe); ok {
			return p
		}
	}
	return nil
}

type countingTx struct {
	dialect.Tx
	n *atomic.Int64
}

// ExecContext runs a raw statement in the transaction (ent's ExecQuery
// feature on a transaction's client), counted.
// A job.TxProbe is filled with the transaction instead (the event outbox
// enqueues in it).
func (t *countingTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if p := probe(args); p != nil {
		if et, ok := t.Tx.(*entsql.Tx); ok {
			if tx, ok := et.Tx.(*sql.Tx); ok {
				p.Tx = tx
				return driver.RowsAffected(0), nil
			}
		}
		return nil, errors.New("the transaction is not a database/sql one")
	}
	x, ok := t.Tx.(interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	})
	if !ok {
		return nil, errors.New("the transaction does not run raw statements")
	}
	countIn(ctx, t.n)
	ctx, end := traceSQL(ctx, query)
	res, err := x.ExecContext(ctx, query, args...)
	end(err)
	return res, err
}

// QueryContext runs a raw query in the transaction (ent's ExecQuery
// feature on a transaction's client), counted.
func (t *countingTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, ok := t.Tx.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	})
	if !ok {
		return nil, errors.New("the transaction does not run raw queries")
	}
	countIn(ctx, t.n)
	ctx, end := traceSQL(ctx, query)
	rows, err := q.QueryContext(ctx, query, args...)
	end(err)
	return rows, err
}

func (t *countingTx) Exec(ctx context.Context, query string, args, v any) error {
	countIn(ctx, t.n)
	ctx, end := traceSQL(ctx, query)
	err := t.Tx.Exec(ctx, query, args, v)
	end(err)
	return err
}

func (t *countingTx) Query(ctx context.Context, query string, args, v any) error {
	countIn(ctx, t.n)
	ctx, end := traceSQL(ctx, query)
	err := t.Tx.Query(ctx, query, args, v)
	end(err)
	return err
}
