package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"kiln/runtime/access"
	"kiln/server/internal/ratelimit"
	"kiln/server/internal/request"
)

// verifier checks an access token and returns its viewer.
type verifier interface {
	Verify(ctx context.Context, accessToken string) (*access.Viewer, error)
}

// isAdminSecret reports, in constant time, whether given is the configured
// admin secret (never when none is configured). HTTP and WebSocket
// connections both check the secret here.
func isAdminSecret(given, adminSecret string) bool {
	return adminSecret != "" && subtle.ConstantTimeCompare([]byte(given), []byte(adminSecret)) == 1
}

// adminViewer is the viewer of a request carrying the admin secret.
func adminViewer() *access.Viewer { return &access.Viewer{Admin: true, Roles: []string{"admin"}} }

// adminGuard checks admin secrets (HTTP header and WebSocket
// connection_init alike): each wrong one is logged at WARN with the client
// address and request id (never the secret) and counted per client address
// (ratelimit.IPKey) in failures, in memory or in Redis like the request
// limits. An address over its limit gets ErrAdminLimited for every admin
// secret, right or wrong, until its wait is over: the secret is not even
// compared, so guessing gains nothing.
type adminGuard struct {
	secret   string
	failures *ratelimit.Limiter
	log      *slog.Logger

	mu      sync.Mutex
	blocked map[string]time.Time // address key -> refused until
}

// maxBlocked bounds adminGuard.blocked; past it, expired entries are
// dropped and new ones are not recorded (the failure limit still applies).
const maxBlocked = 10_000

// AdminLimitedError is the answer to an admin secret from a client address
// that sent too many wrong ones.
type AdminLimitedError struct{ RetryAfter time.Duration }

func (e *AdminLimitedError) Error() string {
	return fmt.Sprintf("too many wrong admin secrets from this address; retry in %d s", ratelimit.RetryAfterSeconds(e.RetryAfter))
}

// errWrongAdminSecret is the answer to a wrong admin secret.
var errWrongAdminSecret = errors.New("invalid admin secret")

func newAdminGuard(secret string, failures *ratelimit.Limiter, log *slog.Logger) *adminGuard {
	return &adminGuard{secret: secret, failures: failures, log: log, blocked: map[string]time.Time{}}
}

// check returns nil when given is the admin secret, errWrongAdminSecret or
// an *AdminLimitedError otherwise. transport ("http" or "websocket") goes
// into the log line.
func (g *adminGuard) check(ctx context.Context, given, transport string) error {
	ip := request.ClientIP(ctx)
	key := "admin-secret:" + ratelimit.IPKey(ip)
	now := time.Now()
	g.mu.Lock()
	until, blocked := g.blocked[key]
	if blocked && !now.Before(until) {
		delete(g.blocked, key)
		blocked = false
	}
	g.mu.Unlock()
	if blocked {
		return &AdminLimitedError{RetryAfter: until.Sub(now)}
	}
	if isAdminSecret(given, g.secret) {
		return nil
	}
	g.log.WarnContext(ctx, "wrong admin secret", "client_ip", ip, "request_id", request.ID(ctx), "transport", transport)
	if g.failures == nil {
		return errWrongAdminSecret
	}
	ok, wait := g.failures.Allow(ctx, key)
	if ok {
		return errWrongAdminSecret
	}
	wait = max(wait, time.Second)
	g.mu.Lock()
	if len(g.blocked) >= maxBlocked {
		for k, u := range g.blocked {
			if !now.Before(u) {
				delete(g.blocked, k)
			}
		}
	}
	if len(g.blocked) < maxBlocked {
		g.blocked[key] = now.Add(wait)
	}
	g.mu.Unlock()
	g.log.WarnContext(ctx, "too many wrong admin secrets: refusing admin secrets from this address", "client_ip", ip,
		"request_id", request.ID(ctx), "transport", transport, "retry_after", wait.Round(time.Second))
	return &AdminLimitedError{RetryAfter: wait}
}

// withViewer puts the request's viewer in the context: an admin for the
// admin secret, the token's user for a valid bearer token, nobody without
// credentials. Bad credentials are refused with 401 before any resolver
// runs; admin secrets from an address that sent too many wrong ones with
// 429 RATE_LIMITED.
func withViewer(next http.Handler, auth verifier, admin *adminGuard) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if s := r.Header.Get("X-Kiln-Admin-Secret"); s != "" {
			var limited *AdminLimitedError
			switch err := admin.check(ctx, s, "http"); {
			case errors.As(err, &limited):
				adminLimited(w, limited)
				return
			case err != nil:
				unauthorized(w, "invalid admin secret")
				return
			}
			ctx = access.With(ctx, adminViewer())
			request.From(ctx).UserID = ratelimit.Admin
		} else if h := r.Header.Get("Authorization"); h != "" {
			token, ok := request.BearerToken(h)
			if !ok || auth == nil {
				unauthorized(w, "the Authorization header must be: Bearer <access token>")
				return
			}
			v, err := auth.Verify(ctx, token)
			if err != nil {
				unauthorized(w, "invalid or expired access token")
				return
			}
			ctx = access.With(ctx, v)
			request.From(ctx).UserID = v.ID.String()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": msg, "extensions": map[string]any{"code": "UNAUTHENTICATED"},
	}}})
}

// adminLimited answers 429 with Retry-After and RATE_LIMITED, like the
// request limits.
func adminLimited(w http.ResponseWriter, e *AdminLimitedError) {
	n := ratelimit.RetryAfterSeconds(e.RetryAfter)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(n))
	w.WriteHeader(http.StatusTooManyRequests)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": e.Error(), "extensions": map[string]any{"code": ratelimit.CodeRateLimited, "retryAfter": n},
	}}})
}
