// Package config reads the server's configuration from flags and the
// environment. Every error says which setting to fix.
package config

import (
	"errors"
	"fmt"
	"slices"
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
	// DBConnectTimeout is how long the start retries a PostgreSQL that
	// does not answer yet (KILN_DB_CONNECT_TIMEOUT; 0: one attempt).
	DBConnectTimeout time.Duration
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
	// MailTemplates are the mails' subjects and bodies: the built-in ones
	// with those of KILN_MAIL_TEMPLATES in their place; nil when it is
	// unset (the built-in ones).
	MailTemplates *auth.MailTemplates
	// VerifyEmails mails verification codes after sign-up (KILN_VERIFY_EMAILS).
	VerifyEmails bool
	// Providers are the OpenID Connect providers whose ID tokens sign in
	// (KILN_AUTH_APPLE_CLIENT_IDS, KILN_AUTH_GOOGLE_CLIENT_IDS,
	// KILN_AUTH_OIDC_PROVIDERS).
	Providers []auth.Provider
	// RedirectURIs are the app redirect URIs of the redirect sign-in
	// (KILN_AUTH_REDIRECT_URIS).
	RedirectURIs []string
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
	// Jobs configures event triggers, webhooks and periodic jobs.
	Jobs JobsConfig
	// Push configures push notifications (KILN_PUSH_*).
	Push PushConfig
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

// Load parses args (flags only, without the program name) and the
// environment: every setting of Settings, flags winning over variables,
// defaults from the table. It returns flag.ErrHelp when args ask for help,
// a *UsageError when it cannot take args, and otherwise one error naming
// every bad setting.
func Load(args []string, getenv func(string) string) (*Config, error) {
	vals, err := resolve(args, getenv)
	if err != nil {
		return nil, err
	}
	get := vals.get
	c := &Config{}
	c.Addr = get("KILN_ADDR")
	if p := get("PORT"); p != "" && !vals.isSet("KILN_ADDR") {
		c.Addr = ":" + p
	}
	c.DatabaseURL = get("DATABASE_URL")
	c.DataDir = get("KILN_DATA_DIR")
	c.LogLevel, c.LogFormat = get("KILN_LOG_LEVEL"), get("KILN_LOG_FORMAT")
	maxConns, acquire, connect := get("KILN_DB_MAX_CONNS"), get("KILN_DB_ACQUIRE_TIMEOUT"), get("KILN_DB_CONNECT_TIMEOUT")
	shutdown, graphiql := get("KILN_SHUTDOWN_TIMEOUT"), get("KILN_GRAPHIQL")
	c.AdminSecret = get("KILN_ADMIN_SECRET")
	c.JWTKeys = get("KILN_JWT_KEYS")
	c.SMTPAddr, c.SMTPFrom = get("KILN_SMTP_ADDR"), get("KILN_SMTP_FROM")
	c.SMTPUser, c.SMTPPassword = get("KILN_SMTP_USER"), get("KILN_SMTP_PASSWORD")
	c.ResetURL = get("KILN_RESET_URL")
	envName := get("KILN_ENV")
	var errs []error
	if c.DBMaxConns, err = strconv.Atoi(maxConns); err != nil || c.DBMaxConns < 1 {
		errs = append(errs, fmt.Errorf("KILN_DB_MAX_CONNS (-db-max-conns) must be a positive integer, got %q", maxConns))
	}
	if c.DBAcquireTimeout, err = time.ParseDuration(acquire); err != nil || c.DBAcquireTimeout <= 0 {
		errs = append(errs, fmt.Errorf("KILN_DB_ACQUIRE_TIMEOUT (-db-acquire-timeout) must be a duration such as 5s, got %q", acquire))
	}
	if c.DBConnectTimeout, err = time.ParseDuration(connect); err != nil || c.DBConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("KILN_DB_CONNECT_TIMEOUT (-db-connect-timeout) must be a duration such as 30s, or 0 not to retry, got %q", connect))
	}
	if c.ShutdownTimeout, err = time.ParseDuration(shutdown); err != nil || c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("KILN_SHUTDOWN_TIMEOUT (-shutdown-timeout) must be a duration such as 15s, got %q", shutdown))
	}
	if graphiql == "" {
		c.GraphiQL = envName != "production"
	} else if c.GraphiQL, err = strconv.ParseBool(graphiql); err != nil {
		errs = append(errs, fmt.Errorf("KILN_GRAPHIQL (-graphiql) must be true or false, got %q", graphiql))
	}
	if c.TrustProxy, err = strconv.ParseBool(get("KILN_TRUST_PROXY")); err != nil {
		errs = append(errs, fmt.Errorf("KILN_TRUST_PROXY must be true or false, got %q", get("KILN_TRUST_PROXY")))
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
	// positive reads a positive integer setting into dst.
	positive := func(env string, dst *int) {
		n, err := strconv.Atoi(get(env))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", env, get(env)))
			return
		}
		*dst = n
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
		positive(l.env, l.dst)
	}
	c.RedisURL = get("REDIS_URL")
	switch v := get("KILN_DELETE_ACCOUNT"); v {
	case "delete":
	case "anonymize":
		c.AnonymizeDeletedAccounts = true
	default:
		errs = append(errs, fmt.Errorf("KILN_DELETE_ACCOUNT must be delete or anonymize, got %q", v))
	}
	switch ops := get("KILN_OPERATIONS"); ops {
	case "any":
	case "allowlist":
		c.AllowList = true
	default:
		errs = append(errs, fmt.Errorf("KILN_OPERATIONS must be any or allowlist, got %q", ops))
	}
	if d, err := time.ParseDuration(get("KILN_WS_REVALIDATE")); err != nil || d < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("KILN_WS_REVALIDATE must be a duration of at least 100ms, got %q", get("KILN_WS_REVALIDATE")))
	} else {
		c.WSRevalidate = d
	}
	if n, err := strconv.ParseInt(get("KILN_MAX_BODY_BYTES"), 10, 64); err != nil || n < 1024 {
		errs = append(errs, fmt.Errorf("KILN_MAX_BODY_BYTES must be an integer of at least 1024, got %q", get("KILN_MAX_BODY_BYTES")))
	} else {
		c.MaxBodyBytes = n
	}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{
		{"KILN_READ_TIMEOUT", &c.Timeouts.Read}, {"KILN_WRITE_TIMEOUT", &c.Timeouts.Write},
		{"KILN_IDLE_TIMEOUT", &c.Timeouts.Idle}, {"KILN_UPLOAD_TIMEOUT", &c.Timeouts.Upload},
	} {
		v := get(d.env)
		t, err := time.ParseDuration(v)
		if err != nil || t < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("%s must be a duration of at least 100ms such as 30s, got %q", d.env, v))
			continue
		}
		*d.dst = t
	}
	c.MetricsAddr = get("KILN_METRICS_ADDR")
	positive("KILN_IDEMPOTENCY_MAX_BYTES", &c.IdempotencyMaxBytes)
	positive("KILN_ADMIN_FAIL_BURST", &c.AdminFailBurst)
	if f, err := strconv.ParseFloat(get("KILN_ADMIN_FAIL_PER_MINUTE"), 64); err != nil || !(f > 0) || f > 1e6 {
		errs = append(errs, fmt.Errorf("KILN_ADMIN_FAIL_PER_MINUTE must be a positive number, got %q", get("KILN_ADMIN_FAIL_PER_MINUTE")))
	} else {
		c.AdminFailPerMinute = f
	}
	errs = append(errs, c.Realtime.load(get))
	errs = append(errs, c.Jobs.load(get))
	errs = append(errs, c.Push.load(get))
	if c.RateLimits, err = ratelimit.LimitsFromEnv(get); err != nil {
		errs = append(errs, err)
	}
	if c.Passwords, err = auth.PasswordPolicyFromEnv(get); err != nil {
		errs = append(errs, err)
	}
	if c.Providers, err = auth.ProvidersFromEnv(get); err != nil {
		errs = append(errs, err)
	}
	if dir := get("KILN_MAIL_TEMPLATES"); dir != "" {
		if c.MailTemplates, err = auth.LoadMailTemplates(dir); err != nil {
			errs = append(errs, fmt.Errorf("KILN_MAIL_TEMPLATES: %w", err))
		}
	}
	for u := range strings.SplitSeq(get("KILN_AUTH_REDIRECT_URIS"), ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if err := auth.ValidateRedirectURI(u); err != nil {
			errs = append(errs, fmt.Errorf("KILN_AUTH_REDIRECT_URIS: %w", err))
			continue
		}
		c.RedirectURIs = append(c.RedirectURIs, u)
	}
	if c.VerifyEmails, err = strconv.ParseBool(get("KILN_VERIFY_EMAILS")); err != nil {
		errs = append(errs, fmt.Errorf("KILN_VERIFY_EMAILS must be true or false, got %q", get("KILN_VERIFY_EMAILS")))
	}
	switch envName {
	case "development":
	case "production":
		c.Production = true
	default:
		errs = append(errs, fmt.Errorf("KILN_ENV must be development or production, got %q", envName))
	}
	if c.Files, err = filesFromEnv(get, c.DataDir); err != nil {
		errs = append(errs, err)
	}
	if c.Production && c.Files.PublicURL == "" && slices.ContainsFunc(c.Providers, func(p auth.Provider) bool { return p.Redirect != nil }) {
		errs = append(errs, errors.New("KILN_AUTH_REDIRECT_CLIENTS needs KILN_PUBLIC_URL in production: the callback registered at the providers is KILN_PUBLIC_URL/auth/callback"))
	}
	if c.AdminSecret != "" && len(c.AdminSecret) < 16 {
		errs = append(errs, fmt.Errorf("KILN_ADMIN_SECRET must be at least 16 characters"))
	}
	errs = append(errs, vals.errs...) // settings read but missing from the table
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
