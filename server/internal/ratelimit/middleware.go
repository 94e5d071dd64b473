package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// CodeRateLimited is extensions.code of the 429 answer.
const CodeRateLimited = "RATE_LIMITED"

// Middleware limits the requests to next. keys returns the client address
// and the signed-in user of a request ("" for none; Admin for admin
// requests). Every request counts against its address (IPKey; an empty ip
// is not limited) and, when user is set, against the user (UserKey); admin
// requests are not limited at all. An over-limit request gets 429 with
// Retry-After and a GraphQL error (extensions.code RATE_LIMITED and
// retryAfter in seconds), and next is not called. The ResponseWriter is
// passed on untouched, so WebSocket upgrades work (one request each).
func (l *Limiter) Middleware(next http.Handler, keys func(*http.Request) (ip, user string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, user := keys(r)
		if ok, wait := l.AllowRequest(r.Context(), ip, user); !ok {
			tooManyRequests(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AllowRequest counts one request of a client, as Middleware does: against
// its address (IPKey; an empty ip is not limited) and, when user is set,
// against the user (UserKey); admin requests (user Admin) are not limited.
// It reports whether the request may proceed and, if not, how long to
// wait. Other transports (operations over a WebSocket) use it so that they
// share the budget of HTTP requests.
func (l *Limiter) AllowRequest(ctx context.Context, ip, user string) (bool, time.Duration) {
	if user == Admin {
		return true, 0
	}
	if ip != "" {
		if ok, wait := l.Allow(ctx, IPKey(ip)); !ok {
			return false, wait
		}
	}
	if user != "" {
		if ok, wait := l.Allow(ctx, UserKey(user)); !ok {
			return false, wait
		}
	}
	return true, 0
}

// RetryAfterSeconds is wait in whole seconds, rounded up, at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

func tooManyRequests(w http.ResponseWriter, wait time.Duration) {
	n := RetryAfterSeconds(wait)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Retry-After", strconv.Itoa(n))
	w.WriteHeader(http.StatusTooManyRequests)
	fmt.Fprintf(w, `{"errors":[{"message":"too many requests, retry in %d s","extensions":{"code":%q,"retryAfter":%d}}]}`+"\n", n, CodeRateLimited, n)
}
