// Package config reads the server's configuration from flags and the
// environment. Every error says which setting to fix.
package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"kiln/server/internal/auth"
	"kiln/server/internal/graphqlapi"
	"kiln/server/internal/ratelimit"
)

// Config is the server configuration.
type Config struct {
	// Addr is the listen address (-addr, KILN_ADDR; PORT is honoured too).
	Addr string
	// DatabaseURL selects PostgreSQL (postgres://...) or SQLite (empty,
	// or sqlite:///path/to/file.db). DATABASE_URL.
	DatabaseURL string
	// DataDir holds the SQLite file and other local state (KILN_DATA_DIR).
	DataDir string
	// DBMaxConns is the PostgreSQL pool size (KILN_DB_MAX_CONNS).
	DBMaxConns int
	// DBAcquireTimeout bounds the wait for a pooled PostgreSQL connection;
	// a request that cannot get one in time fails with UNAVAILABLE instead
	// of hanging (KILN_DB_ACQUIRE_TIMEOUT).
	DBAcquireTimeout time.Duration
	// ShutdownTimeout bounds graceful shutdown (KILN_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// GraphiQL serves the explorer at / (KILN_GRAPHIQL, default true).
	GraphiQL bool
	// LogLevel is debug, info, warn or error (KILN_LOG_LEVEL).
	LogLevel string
	// LogFormat is text or json (KILN_LOG_FORMAT).
	LogFormat string
	// AdminSecret, sent in the X-Kiln-Admin-Secret header, makes a request an
	// admin request: rules do not apply (KILN_ADMIN_SECRET; empty disables).
	AdminSecret string
	// Production refuses unsafe defaults (KILN_ENV=production).
	Production bool
	// JWTKeys are the access-token signing keys (KILN_JWT_KEYS); empty
	// outside production means a key generated under DataDir.
	JWTKeys string
	// SMTPAddr (host:port), SMTPFrom, SMTPUser, SMTPPassword configure mail
	// (KILN_SMTP_ADDR, ...); without SMTPAddr mails are logged.
	SMTPAddr, SMTPFrom, SMTPUser, SMTPPassword string
	// ResetURL is the password-reset link with %s for the token (KILN_RESET_URL).
	ResetURL string
	// TrustProxy takes the client address from X-Forwarded-For (KILN_TRUST_PROXY).
	TrustProxy bool
	// Passwords is the policy for new passwords (KILN_PASSWORD_MIN_LENGTH,
	// KILN_PASSWORD_MIN_SCORE).
	Passwords auth.PasswordPolicy
	// Limits bound each GraphQL request (KILN_MAX_DEPTH, KILN_MAX_ALIASES,
	// KILN_MAX_ROOT_FIELDS, KILN_MAX_COMPLEXITY, KILN_MAX_TOKENS, KILN_MAX_PAGE_SIZE).
	Limits graphqlapi.Limits
	// MaxBodyBytes bounds request bodies (KILN_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// RedisURL selects Redis pub/sub for subscriptions across instances
	// (REDIS_URL); empty means in memory.
	RedisURL string
	// WSRevalidate is how often live WebSocket connections re-check their
	// token (KILN_WS_REVALIDATE).
	WSRevalidate time.Duration
	// RateLimits bound requests to /graphql per client address and per user
	// (KILN_RATE_PER_IP, KILN_RATE_IP_BURST, KILN_RATE_PER_USER, KILN_RATE_USER_BURST).
	RateLimits ratelimit.Limits
	// Files configures file storage and uploads (see FilesConfig).
	Files FilesConfig
	// Realtime caps WebSocket connections and subscriptions per client (see RealtimeConfig).
	Realtime RealtimeConfig
	// AnonymizeDeletedAccounts keeps the records of a deleted account,
	// owned by nobody, instead of deleting them (KILN_DELETE_ACCOUNT=anonymize;
	// the default "delete" deletes them and the user's files).
	AnonymizeDeletedAccounts bool
	// AllowList accepts only the operations of schema/operations
	// (KILN_OPERATIONS=allowlist; the default "any" also accepts automatic
	// persisted queries).
	AllowList bool
	// Timeouts of HTTP connections (see Timeouts).
	Timeouts Timeouts
	// MetricsAddr, when set, serves /metrics on this address only
	// (KILN_METRICS_ADDR); otherwise /metrics is on the main listener,
	// behind the admin secret in production.
	MetricsAddr string
	// IdempotencyMaxBytes bounds the responses kept for Idempotency-Key
	// retries (KILN_IDEMPOTENCY_MAX_BYTES); a larger one is not kept, and a
	// retry is told that the request already ran.
	IdempotencyMaxBytes int
	// AdminFailBurst wrong admin secrets a client address may send before
	// it is limited, and AdminFailPerMinute how many more it may send per
	// minute after that (KILN_ADMIN_FAIL_BURST, KILN_ADMIN_FAIL_PER_MINUTE).
	AdminFailBurst     int
	AdminFailPerMinute float64
}

// Timeouts bound HTTP connections. WebSocket connections and Server-Sent
// Events streams are exempt from Read and Write once their request is
// accepted; uploads (PUT /files/..., multipart POST /graphql) get Upload for
// both instead.
type Timeouts struct {
	Read   time.Duration // reading a whole request, body included (KILN_READ_TIMEOUT)
	Write  time.Duration // from the end of the request headers to the end of the response (KILN_WRITE_TIMEOUT)
	Idle   time.Duration // a keep-alive connection waiting for its next request (KILN_IDLE_TIMEOUT)
	Upload time.Duration // reading and answering an upload (KILN_UPLOAD_TIMEOUT)
}

// Load parses args (without the program name) and the environment.
func Load(args []string, getenv func(string) string) (*Config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	defAddr := ":8080"
	if p := getenv("PORT"); p != "" {
		defAddr = ":" + p
	}
	c := &Config{}
	fs := flag.NewFlagSet("kiln", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", env("KILN_ADDR", defAddr), "listen address (env KILN_ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", getenv("DATABASE_URL"), "postgres://... for PostgreSQL; empty for SQLite under -data-dir (env DATABASE_URL)")
	fs.StringVar(&c.DataDir, "data-dir", env("KILN_DATA_DIR", "./data"), "directory for the SQLite file and local state (env KILN_DATA_DIR)")
	fs.StringVar(&c.LogLevel, "log-level", env("KILN_LOG_LEVEL", "info"), "debug, info, warn or error (env KILN_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("KILN_LOG_FORMAT", "text"), "text or json (env KILN_LOG_FORMAT)")
	maxConns := fs.String("db-max-conns", env("KILN_DB_MAX_CONNS", "20"), "PostgreSQL pool size (env KILN_DB_MAX_CONNS)")
	acquire := fs.String("db-acquire-timeout", env("KILN_DB_ACQUIRE_TIMEOUT", "5s"), "max wait for a pooled PostgreSQL connection before a request fails with UNAVAILABLE (env KILN_DB_ACQUIRE_TIMEOUT)")
	shutdown := fs.String("shutdown-timeout", env("KILN_SHUTDOWN_TIMEOUT", "15s"), "max time to finish in-flight requests on shutdown (env KILN_SHUTDOWN_TIMEOUT)")
	graphiql := fs.String("graphiql", env("KILN_GRAPHIQL", ""), "serve GraphiQL at / (env KILN_GRAPHIQL; default true, false in production)")
	c.AdminSecret = getenv("KILN_ADMIN_SECRET")
	c.JWTKeys = getenv("KILN_JWT_KEYS")
	c.SMTPAddr, c.SMTPFrom = getenv("KILN_SMTP_ADDR"), env("KILN_SMTP_FROM", "kiln@localhost")
	c.SMTPUser, c.SMTPPassword = getenv("KILN_SMTP_USER"), getenv("KILN_SMTP_PASSWORD")
	c.ResetURL = getenv("KILN_RESET_URL")
	c.TrustProxy = getenv("KILN_TRUST_PROXY") == "true"
	envName := env("KILN_ENV", "development")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var errs []error
	var err error
	if c.DBMaxConns, err = strconv.Atoi(*maxConns); err != nil || c.DBMaxConns < 1 {
		errs = append(errs, fmt.Errorf("KILN_DB_MAX_CONNS (-db-max-conns) must be a positive integer, got %q", *maxConns))
	}
	if c.DBAcquireTimeout, err = time.ParseDuration(*acquire); err != nil || c.DBAcquireTimeout <= 0 {
		errs = append(errs, fmt.Errorf("KILN_DB_ACQUIRE_TIMEOUT (-db-acquire-timeout) must be a duration such as 5s, got %q", *acquire))
	}
	if c.ShutdownTimeout, err = time.ParseDuration(*shutdown); err != nil || c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("KILN_SHUTDOWN_TIMEOUT (-shutdown-timeout) must be a duration such as 15s, got %q", *shutdown))
	}
	if *graphiql == "" {
		c.GraphiQL = envName != "production"
	} else if c.GraphiQL, err = strconv.ParseBool(*graphiql); err != nil {
		errs = append(errs, fmt.Errorf("KILN_GRAPHIQL (-graphiql) must be true or false, got %q", *graphiql))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("KILN_LOG_LEVEL (-log-level) must be debug, info, warn or error, got %q", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("KILN_LOG_FORMAT (-log-format) must be text or json, got %q", c.LogFormat))
	}
	if u := c.DatabaseURL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") && !strings.HasPrefix(u, "sqlite://") {
		errs = append(errs, fmt.Errorf("DATABASE_URL (-database-url) must start with postgres:// or sqlite://, got %q", redact(u)))
	}
	c.Limits = graphqlapi.DefaultLimits
	for _, l := range []struct {
		env string
		dst *int
	}{
		{"KILN_MAX_DEPTH", &c.Limits.MaxDepth}, {"KILN_MAX_ALIASES", &c.Limits.MaxAliases},
		{"KILN_MAX_ROOT_FIELDS", &c.Limits.MaxRootFields}, {"KILN_MAX_COMPLEXITY", &c.Limits.MaxComplexity},
		{"KILN_MAX_TOKENS", &c.Limits.MaxTokens}, {"KILN_MAX_PAGE_SIZE", &c.Limits.MaxPageSize},
	} {
		if v := getenv(l.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", l.env, v))
				continue
			}
			*l.dst = n
		}
	}
	c.RedisURL = getenv("REDIS_URL")
	switch v := env("KILN_DELETE_ACCOUNT", "delete"); v {
	case "delete":
	case "anonymize":
		c.AnonymizeDeletedAccounts = true
	default:
		errs = append(errs, fmt.Errorf("KILN_DELETE_ACCOUNT must be delete or anonymize, got %q", v))
	}
	switch ops := env("KILN_OPERATIONS", "any"); ops {
	case "any":
	case "allowlist":
		c.AllowList = true
	default:
		errs = append(errs, fmt.Errorf("KILN_OPERATIONS must be any or allowlist, got %q", ops))
	}
	c.WSRevalidate = 15 * time.Second
	if v := getenv("KILN_WS_REVALIDATE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("KILN_WS_REVALIDATE must be a duration of at least 100ms, got %q", v))
		} else {
			c.WSRevalidate = d
		}
	}
	c.MaxBodyBytes = 1 << 20
	if v := getenv("KILN_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			errs = append(errs, fmt.Errorf("KILN_MAX_BODY_BYTES must be an integer of at least 1024, got %q", v))
		} else {
			c.MaxBodyBytes = n
		}
	}
	c.Timeouts = Timeouts{Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second, Upload: 10 * time.Minute}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{
		{"KILN_READ_TIMEOUT", &c.Timeouts.Read}, {"KILN_WRITE_TIMEOUT", &c.Timeouts.Write},
		{"KILN_IDLE_TIMEOUT", &c.Timeouts.Idle}, {"KILN_UPLOAD_TIMEOUT", &c.Timeouts.Upload},
	} {
		if v := getenv(d.env); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t < 100*time.Millisecond {
				errs = append(errs, fmt.Errorf("%s must be a duration of at least 100ms such as 30s, got %q", d.env, v))
				continue
			}
			*d.dst = t
		}
	}
	c.MetricsAddr = getenv("KILN_METRICS_ADDR")
	c.IdempotencyMaxBytes = 64 << 10
	if v := getenv("KILN_IDEMPOTENCY_MAX_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("KILN_IDEMPOTENCY_MAX_BYTES must be a positive integer, got %q", v))
		} else {
			c.IdempotencyMaxBytes = n
		}
	}
	c.AdminFailBurst, c.AdminFailPerMinute = 10, 1
	if v := getenv("KILN_ADMIN_FAIL_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("KILN_ADMIN_FAIL_BURST must be a positive integer, got %q", v))
		} else {
			c.AdminFailBurst = n
		}
	}
	if v := getenv("KILN_ADMIN_FAIL_PER_MINUTE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) || f > 1e6 {
			errs = append(errs, fmt.Errorf("KILN_ADMIN_FAIL_PER_MINUTE must be a positive number, got %q", v))
		} else {
			c.AdminFailPerMinute = f
		}
	}
	errs = append(errs, c.Realtime.load(getenv))
	if c.RateLimits, err = ratelimit.LimitsFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	if c.Passwords, err = auth.PasswordPolicyFromEnv(getenv); err != nil {
		errs = append(errs, err)
	}
	switch envName {
	case "development":
	case "production":
		c.Production = true
	default:
		errs = append(errs, fmt.Errorf("KILN_ENV must be development or production, got %q", envName))
	}
	if c.Files, err = filesFromEnv(getenv, c.DataDir); err != nil {
		errs = append(errs, err)
	}
	if c.AdminSecret != "" && len(c.AdminSecret) < 16 {
		errs = append(errs, fmt.Errorf("KILN_ADMIN_SECRET must be at least 16 characters"))
	}
	return c, errors.Join(errs...)
}

// redact hides a password in a URL for error messages.
func redact(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}
