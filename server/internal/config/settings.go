package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// Setting is one configuration setting: an environment variable, maybe a
// flag, its default and what it does. Settings is the one list of them:
// Load reads exactly these, the --help text and the configuration docs
// list them, and a KILN_* variable missing from it is reported as unknown.
type Setting struct {
	// Group is the section of the help and of docs/operate/configuration.md.
	Group string
	// Env is the environment variable.
	Env string
	// Flag is the command-line flag (without the dash) that overrides Env;
	// "" when the setting has none.
	Flag string
	// Default is the value used when the setting is not given, written as
	// one would set it (Load reads it like a given value); "" when unset
	// means off or none.
	Default string
	// DefaultDoc describes the default when it is not a plain value (it
	// depends on other settings); shown instead of Default.
	DefaultDoc string
	// Doc says what the setting does, in one line.
	Doc string
}

// Groups of settings, in the order of the help and the docs.
const (
	GroupServer        = "Server and database"
	GroupHTTP          = "HTTP"
	GroupAccounts      = "Accounts and authentication"
	GroupMail          = "Mail"
	GroupGraphQL       = "GraphQL requests"
	GroupRateLimits    = "Rate limits"
	GroupRealtime      = "Realtime"
	GroupFiles         = "Files"
	GroupUploads       = "Uploads"
	GroupJobs          = "Jobs, triggers and webhooks"
	GroupPush          = "Push notifications"
	GroupObservability = "Observability"
)

// Settings lists every setting the server reads.
var Settings = []Setting{
	{GroupServer, "KILN_ADDR", "addr", ":8080", ":8080, or :$PORT when PORT is set", "listen address of the API"},
	{GroupServer, "PORT", "", "", "", "port to listen on when KILN_ADDR is not set (hosting platforms set it)"},
	{GroupServer, "KILN_ENV", "", "development", "", "development or production; production refuses unsafe defaults"},
	{GroupServer, "DATABASE_URL", "database-url", "", "unset: SQLite at $KILN_DATA_DIR/kiln.db", "postgres://user:pass@host:5432/db for PostgreSQL, or sqlite:///path/to/file.db"},
	{GroupServer, "KILN_DATA_DIR", "data-dir", "./data", "", "local state: the SQLite database, generated keys and secrets, local files"},
	{GroupServer, "KILN_DB_MAX_CONNS", "db-max-conns", "20", "", "PostgreSQL connection pool size, per instance"},
	{GroupServer, "KILN_DB_ACQUIRE_TIMEOUT", "db-acquire-timeout", "5s", "", "longest wait for a pooled PostgreSQL connection before a request fails with UNAVAILABLE"},
	{GroupServer, "KILN_DB_CONNECT_TIMEOUT", "db-connect-timeout", "30s", "", "at start, how long to retry a PostgreSQL that is not up yet (0: do not retry)"},
	{GroupServer, "KILN_SHUTDOWN_TIMEOUT", "shutdown-timeout", "15s", "", "on SIGTERM or SIGINT, how long in-flight requests may take to finish"},
	{GroupServer, "KILN_GRAPHIQL", "graphiql", "", "true; false in production", "serve GraphiQL at /"},
	{GroupServer, "KILN_LOG_LEVEL", "log-level", "info", "", "debug, info, warn or error"},
	{GroupServer, "KILN_LOG_FORMAT", "log-format", "text", "", "text or json"},
	{GroupServer, "REDIS_URL", "", "", "unset: in memory", "redis://host:6379/0: share realtime events and rate limits between instances"},
	{GroupServer, "KILN_TRUST_PROXY", "", "false", "", "true: take the client address from X-Forwarded-For (only behind a proxy that sets it)"},

	{GroupHTTP, "KILN_READ_TIMEOUT", "", "30s", "", "longest time to read a request, body included"},
	{GroupHTTP, "KILN_WRITE_TIMEOUT", "", "60s", "", "longest time from the end of the request headers to the end of the response"},
	{GroupHTTP, "KILN_IDLE_TIMEOUT", "", "120s", "", "a keep-alive connection waiting for its next request is closed after this"},
	{GroupHTTP, "KILN_UPLOAD_TIMEOUT", "", "10m", "", "read and write time allowed for uploads"},
	{GroupHTTP, "KILN_MAX_BODY_BYTES", "", "1048576", "", "largest JSON request body in bytes (at least 1024)"},

	{GroupAccounts, "KILN_JWT_KEYS", "", "", "unset: outside production, a key kept in $KILN_DATA_DIR/jwt-keys.json", "access-token signing keys (required in production; make one with: keys generate)"},
	{GroupAccounts, "KILN_ADMIN_SECRET", "", "", "unset: no admin requests", "X-Kiln-Admin-Secret value that makes a request an admin request (at least 16 characters)"},
	{GroupAccounts, "KILN_ADMIN_FAIL_BURST", "", "10", "", "wrong admin secrets a client address may send before it is limited"},
	{GroupAccounts, "KILN_ADMIN_FAIL_PER_MINUTE", "", "1", "", "wrong admin secrets per minute allowed after the burst"},
	{GroupAccounts, "KILN_PASSWORD_MIN_LENGTH", "", "8", "", "minimum length of new passwords (1 to 128)"},
	{GroupAccounts, "KILN_PASSWORD_MIN_SCORE", "", "2", "", "minimum zxcvbn score of new passwords (1 to 4; 0: no check)"},
	{GroupAccounts, "KILN_AUTH_APPLE_CLIENT_IDS", "", "", "unset: no Sign in with Apple", "Sign in with Apple: the accepted audiences, comma-separated (the app's bundle id, a Services ID for the web)"},
	{GroupAccounts, "KILN_AUTH_GOOGLE_CLIENT_IDS", "", "", "unset: no Google sign-in", "Google sign-in: the accepted OAuth client ids, comma-separated (iOS, Android, web)"},
	{GroupAccounts, "KILN_AUTH_OIDC_PROVIDERS", "", "", "unset: none", "other OpenID Connect providers, ';'-separated name|issuerURL|clientID[,clientID...] (e.g. acme|https://id.acme.example|app-ios,app-web)"},
	{GroupAccounts, "KILN_AUTH_REDIRECT_CLIENTS", "", "", "unset: no redirect sign-in", "browser redirect sign-in: ';'-separated name|clientID|clientSecret of configured providers (the callback is KILN_PUBLIC_URL + /auth/callback)"},
	{GroupAccounts, "KILN_AUTH_REDIRECT_URIS", "", "", "unset: none", "app redirect URIs the redirect sign-in may return to, comma-separated, matched exactly (com.example.app:/auth, https universal links)"},
	{GroupAccounts, "KILN_DELETE_ACCOUNT", "", "delete", "", "what deleteAccount does with the user's records: delete or anonymize"},

	{GroupMail, "KILN_SMTP_ADDR", "", "", "unset: mails are logged, not sent", "SMTP server, host:port"},
	{GroupMail, "KILN_SMTP_FROM", "", "kiln@localhost", "", "sender of the mails"},
	{GroupMail, "KILN_SMTP_USER", "", "", "", "SMTP user (PLAIN authentication)"},
	{GroupMail, "KILN_SMTP_PASSWORD", "", "", "", "SMTP password"},
	{GroupMail, "KILN_VERIFY_EMAILS", "", "true", "", "mail a 6-digit verification code to the address of every new account (signUp, linkAccount); false: only on requestEmailVerification"},
	{GroupMail, "KILN_MAIL_TEMPLATES", "", "", "unset: the built-in mails", "directory of mail templates replacing the built-in ones: <kind>.subject.txt, <kind>.txt (text/template), <kind>.html (html/template); kinds verification, reset, email_code, signup_notice"},
	{GroupMail, "KILN_RESET_URL", "", "", "unset: the mail carries the token as a code", "password-reset link with %s where the token goes"},

	{GroupGraphQL, "KILN_MAX_DEPTH", "", "12", "", "deepest selection, through fragments"},
	{GroupGraphQL, "KILN_MAX_ALIASES", "", "30", "", "aliased fields in an operation"},
	{GroupGraphQL, "KILN_MAX_ROOT_FIELDS", "", "20", "", "top-level fields of an operation"},
	{GroupGraphQL, "KILN_MAX_COMPLEXITY", "", "2000", "", "largest cost of an operation"},
	{GroupGraphQL, "KILN_MAX_TOKENS", "", "15000", "", "largest number of parser tokens"},
	{GroupGraphQL, "KILN_MAX_PAGE_SIZE", "", "100", "", "largest first/last, and the page size when neither is given"},
	{GroupGraphQL, "KILN_OPERATIONS", "", "any", "", "any, or allowlist: only the operations of schema/operations"},
	{GroupGraphQL, "KILN_IDEMPOTENCY_MAX_BYTES", "", "65536", "", "largest response kept for Idempotency-Key retries"},

	{GroupRateLimits, "KILN_RATE_PER_IP", "", "20", "", "requests per second per client address (inf: no limit)"},
	{GroupRateLimits, "KILN_RATE_IP_BURST", "", "60", "", "requests a client address may make at once"},
	{GroupRateLimits, "KILN_RATE_PER_USER", "", "10", "", "requests per second per signed-in user (inf: no limit)"},
	{GroupRateLimits, "KILN_RATE_USER_BURST", "", "30", "", "requests a user may make at once"},

	{GroupRealtime, "KILN_WS_REVALIDATE", "", "15s", "", "how often live WebSocket connections re-check their token"},
	{GroupRealtime, "KILN_WS_MAX_CONNECTIONS_PER_IP", "", "1000", "", "WebSocket connections per client address (0: no cap)"},
	{GroupRealtime, "KILN_WS_MAX_CONNECTIONS_PER_USER", "", "20", "", "WebSocket connections per user (0: no cap)"},
	{GroupRealtime, "KILN_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", "", "100", "", "operations running at once on one connection"},
	{GroupRealtime, "KILN_WS_MAX_SUBSCRIPTIONS_PER_IP", "", "5000", "", "live WebSocket subscriptions per client address (0: no cap)"},
	{GroupRealtime, "KILN_WS_MAX_SUBSCRIPTIONS_PER_USER", "", "500", "", "live WebSocket subscriptions per user (0: no cap)"},
	{GroupRealtime, "KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_IP", "", "100", "", "live subscriptions per client address whose filter needs SQL per event (0: no cap)"},
	{GroupRealtime, "KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_USER", "", "10", "", "the same, per user (0: no cap)"},
	{GroupRealtime, "KILN_WS_RATE_LIMIT_CLOSE_AFTER", "", "100", "", "operations in a row over the rate limit before a connection is closed (0: never)"},

	{GroupJobs, "KILN_JOBS_POLL_INTERVAL", "", "1s", "", "how often an idle instance looks for queued events and jobs"},
	{GroupJobs, "KILN_JOBS_WORKERS", "", "10", "", "events and jobs an instance runs at once"},
	{GroupJobs, "KILN_JOBS_MAX_ATTEMPTS", "", "25", "", "deliveries of an event (when its trigger names none) before it is discarded"},
	{GroupJobs, "KILN_JOBS_RETRY_BASE", "", "1s", "", "wait after the first failed attempt; doubles with each attempt"},
	{GroupJobs, "KILN_JOBS_RETRY_MAX", "", "1h", "", "longest wait between two attempts"},
	{GroupJobs, "KILN_JOBS_TIMEOUT", "", "1m", "", "longest run of a handler or periodic job; then it is cancelled and retried"},
	{GroupJobs, "KILN_JOBS_RESCUE_AFTER", "", "10m", "", "a job still running this long after its start (its instance died) runs again; longer than KILN_JOBS_TIMEOUT"},
	{GroupJobs, "KILN_WEBHOOK_TIMEOUT", "", "10s", "", "longest webhook request; a slower receiver counts as a failed attempt"},

	{GroupPush, "KILN_PUSH_APNS_KEY_FILE", "", "", "unset: no APNs (iOS) notifications", "path of the APNs auth key (.p8) for token-based authentication"},
	{GroupPush, "KILN_PUSH_APNS_KEY_ID", "", "", "", "the .p8 key's id (10 characters, from the Apple developer account)"},
	{GroupPush, "KILN_PUSH_APNS_TEAM_ID", "", "", "", "the Apple developer team id"},
	{GroupPush, "KILN_PUSH_APNS_ENDPOINT", "", "production", "", "production, sandbox (development builds), or a URL"},
	{GroupPush, "KILN_PUSH_FCM_CREDENTIALS_FILE", "", "", "unset: no FCM (Android) notifications", "path of the Firebase service account's JSON key"},
	{GroupPush, "KILN_PUSH_FCM_PROJECT_ID", "", "", "the key's project_id", "the Firebase project"},
	{GroupPush, "KILN_PUSH_FCM_ENDPOINT", "", "https://fcm.googleapis.com", "", "FCM's API (tests point it elsewhere)"},
	{GroupPush, "KILN_PUSH_FCM_TOKEN_URL", "", "", "the key's token_uri", "the OAuth2 token endpoint"},
	{GroupPush, "KILN_PUSH_CA_FILE", "", "", "unset: the system's", "extra CA certificates (PEM) trusted for the push endpoints"},
	{GroupPush, "KILN_PUSH_CONCURRENCY", "", "32", "", "requests in flight per push service and instance"},

	{GroupFiles, "KILN_FILES_DIR", "", "", "$KILN_DATA_DIR/files", "local-disk file storage, used without KILN_S3_BUCKET"},
	{GroupFiles, "KILN_PUBLIC_URL", "", "", "http://<listen host, or localhost>:<port>", "base URL clients reach the server at, for signed /files/ URLs and the sign-in callback"},
	{GroupFiles, "KILN_FILES_SECRET", "", "", "a random key kept in $KILN_DATA_DIR/files-secret", "signs the /files/ URLs and image rendition URLs (unset: renditions use a key derived from KILN_JWT_KEYS); the same on every instance"},
	{GroupFiles, "KILN_IMAGE_SIZES", "", "64x64,128x128,256x256,512x512,1024x1024", "", "the WIDTHxHEIGHT boxes File.url(transform:) may ask for; renditions are made once and kept in file storage"},
	{GroupFiles, "KILN_S3_BUCKET", "", "", "unset: local disk", "store files in this S3 bucket"},
	{GroupFiles, "KILN_S3_REGION", "", "us-east-1", "", "the bucket's region"},
	{GroupFiles, "KILN_S3_ACCESS_KEY", "", "", "unset: the AWS default credential chain", "S3 access key (with KILN_S3_SECRET_KEY)"},
	{GroupFiles, "KILN_S3_SECRET_KEY", "", "", "unset: the AWS default credential chain", "S3 secret key (with KILN_S3_ACCESS_KEY)"},
	{GroupFiles, "KILN_S3_ENDPOINT", "", "", "unset: AWS", "S3 API of an S3-compatible server"},
	{GroupFiles, "KILN_S3_PATH_STYLE", "", "false", "", "true: <endpoint>/<bucket>/<key> addressing (most self-hosted servers)"},
	{GroupFiles, "KILN_S3_PUBLIC_ENDPOINT", "", "", "unset: the endpoint", "base URL put in presigned URLs"},

	{GroupUploads, "KILN_MAX_UPLOAD_SIZE", "", "100MB", "", "largest file (at most 5GiB with S3)"},
	{GroupUploads, "KILN_MAX_MULTIPART_SIZE", "", "10MB", "", "largest uploadFile (multipart) request"},
	{GroupUploads, "KILN_UPLOAD_URL_TTL", "", "15m", "", "how long an upload ticket's URL is valid"},
	{GroupUploads, "KILN_FILE_URL_MAX_EXPIRY", "", "1h", "", "longest File.url(expiresIn:)"},
	{GroupUploads, "KILN_UPLOAD_TTL", "", "24h", "", "unreferenced files idle this long are removed"},
	{GroupUploads, "KILN_FILES_JANITOR_INTERVAL", "", "10m", "", "how often this instance removes unreferenced files (off: never)"},
	{GroupUploads, "KILN_UPLOAD_QUOTA_PENDING", "", "200MB", "", "per user: bytes of uploads in progress (0 or off: no quota)"},
	{GroupUploads, "KILN_STORAGE_QUOTA", "", "1GB", "", "per user: bytes of all their files (0 or off: no quota)"},
	{GroupUploads, "KILN_ANON_UPLOAD_QUOTA_PENDING", "", "50MB", "", "the pending quota of anonymous accounts"},
	{GroupUploads, "KILN_ANON_STORAGE_QUOTA", "", "100MB", "", "the storage quota of anonymous accounts"},
	{GroupUploads, "KILN_UPLOAD_RATE_PER_IP", "", "2", "", "upload tickets per second per client address (inf: no limit)"},
	{GroupUploads, "KILN_UPLOAD_RATE_IP_BURST", "", "60", "", "the burst of the per-address upload rates"},
	{GroupUploads, "KILN_UPLOAD_RATE_PER_USER", "", "1", "", "upload tickets per second per user (inf: no limit)"},
	{GroupUploads, "KILN_UPLOAD_RATE_USER_BURST", "", "30", "", "the burst of the per-user upload rates"},

	{GroupObservability, "KILN_METRICS_ADDR", "", "", "unset: /metrics on the API's address", "serve /metrics only on this address, e.g. 127.0.0.1:9090"},
	{GroupObservability, "OTEL_TRACES_EXPORTER", "", "none", "", "otlp, console or none"},
	{GroupObservability, "OTEL_SERVICE_NAME", "", "kiln", "", "the service.name of the traces"},
}

// Lookup returns the setting of an environment variable.
func Lookup(env string) (Setting, bool) {
	i := slices.IndexFunc(Settings, func(s Setting) bool { return s.Env == env })
	if i < 0 {
		return Setting{}, false
	}
	return Settings[i], true
}

// ShownDefault is the default as the help and the docs show it.
func (s Setting) ShownDefault() string {
	switch {
	case s.DefaultDoc != "":
		return s.DefaultDoc
	case s.Default != "":
		return s.Default
	}
	return "unset"
}

// UsageError is a command line the server does not take: an unknown flag,
// a flag without its value, an unexpected argument.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// values are the settings as given: flags win over the environment.
type values struct {
	given map[string]string // by environment variable; only non-empty ones
	errs  []error
}

// resolve parses the flags in args and reads the environment for every
// setting. It returns flag.ErrHelp for -h, -help and --help, and a
// *UsageError for anything else it cannot take.
func resolve(args []string, getenv func(string) string) (*values, error) {
	fs := flag.NewFlagSet("kiln", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	flags := map[string]*string{}
	for _, s := range Settings {
		if s.Flag != "" {
			flags[s.Env] = fs.String(s.Flag, "", s.Doc)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{err}
	}
	if fs.NArg() > 0 {
		return nil, &UsageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	v := &values{given: map[string]string{}}
	for _, s := range Settings {
		x := getenv(s.Env)
		if s.Flag != "" && onCommandLine[s.Flag] {
			x = *flags[s.Env]
		}
		if x != "" {
			v.given[s.Env] = x
		}
	}
	return v, nil
}

// get returns a setting's value: as given, else its default. A name that
// is not in Settings is a mistake in Kiln, reported as an error by Load.
func (v *values) get(env string) string {
	s, ok := Lookup(env)
	if !ok {
		v.errs = append(v.errs, fmt.Errorf("internal error: %s is read but is not in config.Settings", env))
		return ""
	}
	if x, ok := v.given[env]; ok {
		return x
	}
	return s.Default
}

// isSet reports whether a setting was given (flag or environment).
func (v *values) isSet(env string) bool { _, ok := v.given[env]; return ok }

// Ignored reports whether a KILN_ variable belongs to Kiln's own tooling
// (tests, benchmarks, the .ci scripts, the SDK tests) rather than to the
// server: such variables are never reported as unknown.
func Ignored(env string) bool {
	for _, p := range []string{"KILN_TEST_", "KILN_BENCH_", "KILN_REQUIRE_", "KILN_PG_", "KILN_REDIS_", "KILN_SWIFT"} {
		if strings.HasPrefix(env, p) {
			return true
		}
	}
	switch env {
	case "KILN_S3_DIR", "KILN_S3_BIN", "KILN_S3_PORT", "KILN_S3_URL", "KILN_CACHE_DIR", "KILN_URL", "KILN_ALLOWLIST_URL":
		return true
	}
	return false
}

// Unknown is a KILN_ environment variable that is no setting.
type Unknown struct {
	Env string
	// Suggestion is the setting it most likely means, or "".
	Suggestion string
}

func (u Unknown) String() string {
	if u.Suggestion != "" {
		return fmt.Sprintf("unknown environment variable %s; did you mean %s?", u.Env, u.Suggestion)
	}
	return fmt.Sprintf("unknown environment variable %s (not a Kiln setting)", u.Env)
}

// UnknownVariables returns the KILN_ variables of environ (KEY=VALUE
// entries, as os.Environ returns them) that are no setting and not
// Ignored, each with the closest setting when one is close.
func UnknownVariables(environ []string) []Unknown {
	var out []Unknown
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "KILN_") || seen[name] || Ignored(name) {
			continue
		}
		seen[name] = true
		if _, ok := Lookup(name); ok {
			continue
		}
		out = append(out, Unknown{Env: name, Suggestion: Suggest(name)})
	}
	return out
}

// Suggest returns the setting closest to name by edit distance, when it is
// close enough to be a typo of it (at most 2 edits, 3 for long names).
func Suggest(name string) string {
	best, bestD := "", 1<<30
	for _, s := range Settings {
		d := levenshtein.ComputeDistance(strings.ToUpper(name), s.Env)
		if d < bestD {
			best, bestD = s.Env, d
		}
	}
	limit := 2
	if len(name) >= 20 {
		limit = 3
	}
	if bestD > limit {
		return ""
	}
	return best
}

// WriteHelp writes every setting, by group: its environment variable, its
// flag when it has one, its default and what it does.
func WriteHelp(w io.Writer) {
	fmt.Fprintln(w, "Settings (environment variable, -flag when there is one; a flag wins over its variable):")
	group := ""
	for _, s := range Settings {
		if s.Group != group {
			group = s.Group
			fmt.Fprintf(w, "\n%s:\n", group)
		}
		name := s.Env
		if s.Flag != "" {
			name += ", -" + s.Flag
		}
		fmt.Fprintf(w, "  %s (default: %s)\n      %s\n", name, s.ShownDefault(), s.Doc)
	}
}
