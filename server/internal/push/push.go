// Package push delivers push notifications to devices: an APNs client
// (HTTP/2, token-based auth with an ES256 JWT from a .p8 key) and an FCM
// HTTP v1 client (a service account's OAuth2 token), each answering with
// an Outcome the delivery jobs act on: sent, retry later (429 and 5xx,
// honouring Retry-After), failed for good, or a dead token to prune.
package push

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"kiln/runtime/push"
)

// Message is one notification for one device.
type Message struct {
	// Token is the device's APNs or FCM token.
	Token string
	// AppID is the iOS bundle id (the APNs topic); unused by FCM.
	AppID string
	push.Notification
	// Expires is when the notification's TTL ends (zero: none); it
	// overrides TTL, which counts from the send.
	Expires time.Time
}

// ttl is how long m may still wait for an offline device: 0 for the
// service's default, negative when it has expired.
func (m Message) ttl(now time.Time) time.Duration {
	if !m.Expires.IsZero() {
		if d := m.Expires.Sub(now); d > 0 {
			return d
		}
		return -1
	}
	return m.TTL
}

// Outcome is what a push service made of a message.
type Outcome int

// Outcomes of a send.
const (
	// Sent: the service accepted the message.
	Sent Outcome = iota
	// Retry: the service is overloaded or failing (429, 5xx, network):
	// send again later, after RetryAfter when set.
	Retry
	// Failed: the service refused the message (4xx other than 429 and
	// dead tokens); sending it again fails the same way.
	Failed
	// Dead: the token no longer reaches a device; remove it.
	Dead
)

func (o Outcome) String() string {
	return [...]string{"sent", "retry", "failed", "dead"}[o]
}

// Result is the answer to one message.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status (0 when no answer came).
	Status int
	// Reason is the service's reason (APNs reason, FCM errorCode or
	// status), or the error, for anything but Sent.
	Reason string
	// RetryAfter is the service's Retry-After, for Retry.
	RetryAfter time.Duration
}

// ErrTooLarge is the reason of a payload over the service's limit (4 KB).
var ErrTooLarge = errors.New("payload too large")

// maxPayload is the largest payload APNs and FCM accept for a regular
// notification.
const maxPayload = 4096

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// transient is the result of a request that got no answer.
func transient(ctx context.Context, err error) Result {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return Result{Outcome: Retry, Reason: err.Error()}
}

// byStatus classifies an answer that is not a dead token by its status.
func byStatus(status int, reason string, h http.Header, now time.Time) Result {
	switch {
	case status >= 200 && status < 300:
		return Result{Outcome: Sent, Status: status}
	case status == http.StatusTooManyRequests || status >= 500:
		return Result{Outcome: Retry, Status: status, Reason: reason, RetryAfter: retryAfter(h, now)}
	default:
		return Result{Outcome: Failed, Status: status, Reason: reason}
	}
}
