// Package server is Kiln's API server as a library: one GraphQL endpoint
// for an app's generated schema (data, accounts, files, realtime over
// WebSocket and SSE), GraphiQL for admins, health checks and metrics. An
// app's main calls Main with its definition (graph.App()). With no
// configuration it runs on an embedded SQLite file under ./data; with
// DATABASE_URL=postgres://... it uses PostgreSQL.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"golang.org/x/time/rate"

	"kiln/runtime/access"
	"kiln/runtime/app"
	"kiln/runtime/files"
	"kiln/runtime/store"
	"kiln/server/internal/auth"
	"kiln/server/internal/config"
	"kiln/server/internal/database"
	"kiln/server/internal/graphiql"
	"kiln/server/internal/graphqlapi"
	"kiln/server/internal/idempotency"
	"kiln/server/internal/jobs"
	"kiln/server/internal/ratelimit"
	"kiln/server/internal/request"
	"kiln/server/internal/tracing"
)

// Main runs an app's command line with the process's arguments and
// environment, and exits with its status (0, 1 on failure, 2 for a
// command line it does not take). Without a command, or with flags only,
// it serves the app until SIGINT or SIGTERM; `help` lists the commands
// (serve, migrate status, migrate up, keys generate, version).
func Main(a app.Definition) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := execute(ctx, a, &invocation{prog: progName(), getenv: os.Getenv, environ: os.Environ(),
		stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Run runs one command of an app's command line (see Main) with args (no
// program name) and the environment getenv returns; logs and hints go to
// stderr, the output of commands such as version to standard output.
// Serving (no command) blocks until ctx is cancelled, then shuts down
// gracefully: in-flight requests finish within the shutdown timeout.
func Run(ctx context.Context, a app.Definition, args []string, getenv func(string) string, stderr io.Writer) error {
	return execute(ctx, a, &invocation{prog: progName(), getenv: getenv, environ: environOf(getenv),
		stdout: os.Stdout, stderr: stderr}, args)
}

// serveCmd serves the app: the listen address first (a bad or busy one
// fails before anything is touched), the data directory, the signing
// keys, the database (waiting for a PostgreSQL not up yet) and its
// migrations, then everything else.
func serveCmd(ctx context.Context, a app.Definition, inv *invocation, args []string) error {
	start := time.Now()
	cfg, log, err := setup(inv, "serve", args)
	if err != nil || cfg == nil {
		return err
	}
	tracingOn, stopTracing, err := tracing.Setup(ctx, inv.getenv, inv.stdout)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(sctx)
	}()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set KILN_ADDR or -addr): %w", cfg.Addr, err)
	}
	defer ln.Close()
	if err := checkDataDir(cfg); err != nil {
		return err
	}
	keys, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx, a.Migrations, log); err != nil {
		return err
	}
	if err := jobs.Migrate(ctx, db.SQL, db.Dialect, log); err != nil {
		return err
	}
	if err := db.Optimize(ctx); err != nil {
		log.Warn("sqlite statistics", "err", err)
	}
	engine, err := jobs.New(db.SQL, db.Dialect, cfg.Jobs, log)
	if err != nil {
		return err
	}
	kilnStore := store.NewClient(store.Driver(db.Driver)) // Kiln's own tables
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db.SQL, "kiln"))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kiln_sql_statements_total", Help: "SQL statements run by the API.",
	}, func() float64 { return float64(db.Driver.Statements()) }))
	bus, err := openBus(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer bus.Close()
	active := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kiln_subscriptions_active", Help: "Live GraphQL subscriptions on this instance."})
	reg.MustRegister(active)
	events := busEvents{bus: bus, active: active, lag: newLagHistogram(reg, backendName(cfg.RedisURL)), filters: sqlFilterSlots(cfg.Realtime)}
	var parts *app.Parts // built below, on the services; deleteAccount uses it
	accounts, err := auth.New(auth.Config{Client: kilnStore, Keys: keys, Logger: log,
		Mailer: mailer(cfg, log), MailTemplates: cfg.MailTemplates, ResetURL: cfg.ResetURL, Passwords: cfg.Passwords, Providers: cfg.Providers, VerifyEmails: cfg.VerifyEmails,
		CallbackURL: publicURL(cfg.Files, ln.Addr()) + auth.CallbackPath, RedirectURIs: cfg.RedirectURIs,
		OnDeleteAccount: func(ctx context.Context, tx *store.Client, userID uuid.UUID) error {
			return parts.DeleteOwned(ctx, tx, userID, cfg.AnonymizeDeletedAccounts)
		}})
	if err != nil {
		return err
	}
	blobs, diskStore, err := openFiles(ctx, cfg.Files, cfg.DataDir, ln.Addr())
	if err != nil {
		return err
	}
	uploadLimits, err := openUploads(ctx, cfg.Files, cfg.RedisURL, kilnStore, log)
	if err != nil {
		return err
	}
	defer uploadLimits.Close()
	images, err := imageOptions(cfg.Files, keys, ln.Addr())
	if err != nil {
		return err
	}
	filesSvc := &files.Service{Blobs: fileStore{blobs}, DB: kilnStore, Limits: uploadLimits.fileLimits(cfg.Files), Images: images}
	parts, err = a.Build(app.Services{Driver: db.Driver, Dialect: db.Dialect, Store: kilnStore, Events: events, Files: filesSvc,
		Accounts: graphqlapi.Accounts{Service: accounts}, Queue: engine, Jobs: engine})
	if err != nil {
		return fmt.Errorf("build the app: %w", err)
	}
	if err := openPush(cfg.Push, kilnStore, engine, parts.PushRecipients, reg, log); err != nil {
		return err
	}
	if err := engine.Register(parts.Triggers, parts.Periodic); err != nil {
		return fmt.Errorf("the app's triggers and jobs: %w", err)
	}
	if err := engine.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := engine.Stop(sctx); err != nil {
			log.Warn("job engine stop", "err", err)
		}
	}()
	jctx, stopJanitor := context.WithCancel(ctx)
	defer stopJanitor()
	go janitor(jctx, filesSvc, cfg.Files.JanitorInterval, log)
	go db.KeepOptimized(jctx, time.Hour, log)

	mux := http.NewServeMux()
	if diskStore != nil {
		mux.Handle("/files/", uploadLimits.guard(diskStore.Handler()))
	}
	mux.Handle(files.ImagePath, filesSvc.ImageHandler())
	limiter, err := ratelimit.Open(ctx, cfg.RedisURL, cfg.RateLimits, log)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	defer limiter.Close()
	// Wrong admin secrets, per client address (the per-user limit is unused).
	adminFailures, err := ratelimit.Open(ctx, cfg.RedisURL, ratelimit.Limits{PerIP: rate.Limit(cfg.AdminFailPerMinute / 60),
		IPBurst: cfg.AdminFailBurst, PerUser: rate.Inf, UserBurst: 1}, log)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	defer adminFailures.Close()
	admin := newAdminGuard(cfg.AdminSecret, adminFailures, log)
	idem := &idempotency.Middleware{Client: kilnStore, Log: log, MaxBody: cfg.MaxBodyBytes, MaxMultipart: cfg.Files.MaxMultipart,
		MaxStored: cfg.IdempotencyMaxBytes}
	mux.Handle("/graphql", limiter.Middleware(idem.Wrap(graphqlapi.New(parts, log, graphqlapi.Options{
		Limits: cfg.Limits, Production: cfg.Production, MaxBodyBytes: cfg.MaxBodyBytes, MaxMultipartBytes: cfg.Files.MaxMultipart,
		WebSocket: wsLimits(wsTransport(accounts, admin, cfg.WSRevalidate, active, parts.RealtimeViewerFree, log), limiter, cfg.Realtime),
		Metrics:   graphqlapi.NewMetrics(reg, parts.Operations),
		AllowList: allowList(cfg, parts.Operations),
		Tracing:   tracingExtension(tracingOn),
		// Last: runs just before a mutation executes.
		Idempotency: idem.Extension(),
	})), rateKeys))
	mux.Handle("GET /.well-known/jwks.json", keys.Handler())
	mux.Handle("GET "+auth.CallbackPath, accounts.CallbackHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", readyz(db, log))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	switch {
	case cfg.MetricsAddr != "":
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, metrics, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	case cfg.Production:
		mux.Handle("GET /metrics", adminOnly(metrics))
	default:
		mux.Handle("GET /metrics", metrics)
	}
	if cfg.GraphiQL {
		mux.Handle("/", graphiql.Handler("/graphql"))
	}

	var handler http.Handler = request.Middleware(withLogging(withViewer(mux, accounts, admin), log), cfg.TrustProxy)
	if tracingOn {
		handler = otelhttp.NewHandler(handler, "kiln")
	}
	srv := &http.Server{
		Handler:           withDeadlines(handler, cfg.Timeouts, log),
		ReadHeaderTimeout: min(10*time.Second, cfg.Timeouts.Read),
		ReadTimeout:       cfg.Timeouts.Read,
		WriteTimeout:      cfg.Timeouts.Write,
		IdleTimeout:       cfg.Timeouts.Idle,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("kiln ready", "addr", ln.Addr().String(), "database", db.Dialect, "startup", time.Since(start).Round(time.Millisecond))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// readyz answers 200 "ready" when the database answers and takes writes,
// else 503 with the reason: "database unavailable", or why writes would
// fail (a read-only PostgreSQL, an SQLite file or directory that is not
// writable).
func readyz(db *database.DB, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ready(pctx); err != nil {
			log.WarnContext(r.Context(), "not ready", "err", err)
			reason := err.Error()
			if errors.Is(err, database.ErrUnavailable) {
				reason = "database unavailable" // the driver's error stays in the log
			}
			http.Error(w, reason, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ready\n")
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadKeys returns the JWT signing keys: KILN_JWT_KEYS when set; otherwise,
// outside production, a key kept under the data directory.
func loadKeys(cfg *config.Config) (*auth.KeySet, error) {
	if cfg.JWTKeys != "" {
		k, err := auth.ParseKeys(cfg.JWTKeys)
		if err != nil {
			return nil, fmt.Errorf("KILN_JWT_KEYS: %w", err)
		}
		return k, nil
	}
	if cfg.Production {
		return nil, errors.New(`KILN_ENV=production needs KILN_JWT_KEYS: a JSON array of {"kid": "...", "key": "<base64 Ed25519 seed>"} (see README)`)
	}
	return auth.LoadOrCreateKeys(cfg.DataDir)
}

func mailer(cfg *config.Config, log *slog.Logger) auth.Mailer {
	if cfg.SMTPAddr != "" {
		return auth.SMTPMailer{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUser, Password: cfg.SMTPPassword}
	}
	return auth.LogMailer{Logger: log, Dev: !cfg.Production}
}

// allowList is the operation allow-list in allowlist mode, else nil.
func allowList(cfg *config.Config, ops map[string]string) map[string]string {
	if !cfg.AllowList {
		return nil
	}
	return ops
}

func tracingExtension(on bool) graphql.HandlerExtension {
	if !on {
		return nil
	}
	return tracing.GraphQL{}
}

// rateKeys are the rate-limit keys of a request: the client address and
// the viewer's id ("admin" for the admin secret).
func rateKeys(r *http.Request) (ip, user string) {
	ip = request.ClientIP(r.Context())
	switch v := access.From(r.Context()); {
	case v == nil:
	case v.Admin:
		user = ratelimit.Admin
	default:
		user = v.ID.String()
	}
	return ip, user
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush lets streaming responses (Server-Sent Events) through.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func withLogging(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		info := request.From(r.Context())
		log.LogAttrs(r.Context(), slog.LevelDebug, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.Duration("took", time.Since(start)), slog.String("request_id", info.ID),
			slog.String("user_id", info.UserID))
	})
}
