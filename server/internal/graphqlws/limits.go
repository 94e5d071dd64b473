package graphqlws

import (
	"context"
	"fmt"
	"sync"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"kiln/server/internal/ratelimit"
)

// Limits per client.
//
// A connection counts against its client address and its user (as
// Transport.Client names them) from its connection_ack on: one connection
// slot, and one subscription slot per subscription operation while it
// runs. The caps are per Transport (per server instance). Every subscribe
// message also goes through Transport.RateLimit, the budget that HTTP
// requests use.

// CloseTryAgainLater (1013, a standard WebSocket close code) closes a
// connection beyond a per-client connection cap, and one that kept sending
// operations after RateLimitCloseAfter refusals in a row: the client may
// retry later (graphql-ws clients do, with backoff).
const CloseTryAgainLater = 1013

// ErrorCodeRateLimited is the extensions.code of the error sent for a
// subscribe refused by Transport.RateLimit; extensions.retryAfter is the
// wait in whole seconds.
const ErrorCodeRateLimited = ratelimit.CodeRateLimited

// DefaultRateLimitCloseAfter is the default of
// Transport.RateLimitCloseAfter.
const DefaultRateLimitCloseAfter = 100

// clientKeys is what a connection counts against.
type clientKeys struct{ ip, user string }

// clientState is the Transport's count of connections and subscriptions
// per client, built from its caps on first use.
type clientState struct {
	clientOnce sync.Once
	connSlots  ratelimit.ClientSlots
	subSlots   ratelimit.ClientSlots
}

func (t *Transport) clientSlots() (conns, subs ratelimit.ClientSlots) {
	t.clientOnce.Do(func() {
		t.connSlots = ratelimit.ClientSlots{IP: ratelimit.NewSlots(t.MaxConnectionsPerIP), User: ratelimit.NewSlots(t.MaxConnectionsPerUser)}
		t.subSlots = ratelimit.ClientSlots{IP: ratelimit.NewSlots(t.MaxSubscriptionsPerIP), User: ratelimit.NewSlots(t.MaxSubscriptionsPerUser)}
	})
	return t.connSlots, t.subSlots
}

func (t *Transport) rateLimitCloseAfter() int {
	switch {
	case t.RateLimitCloseAfter > 0:
		return t.RateLimitCloseAfter
	case t.RateLimitCloseAfter < 0:
		return 0
	}
	return DefaultRateLimitCloseAfter
}

// admitClient counts the connection against the client of ctx (after
// Authenticate, or after Revalidate switched the context), giving back the
// slot it held for another client. It returns "" or, when a cap refuses,
// the reason to close the connection with (it then holds no slot).
// Callers serialize it (the reader before the ack, then revalMu).
func (c *conn) admitClient(ctx context.Context) string {
	if c.t.Client == nil {
		return ""
	}
	ip, user := c.t.Client(ctx)
	next := clientKeys{ip: ip, user: user}
	prev := c.client.Load()
	if prev != nil && *prev == next {
		return ""
	}
	conns, _ := c.t.clientSlots()
	if prev != nil {
		conns.Release(prev.ip, prev.user)
		c.client.Store(nil)
	}
	switch conns.Acquire(ip, user) {
	case ratelimit.RefusedIP:
		return fmt.Sprintf("Too many connections from this address (at most %d)", conns.IP.Max())
	case ratelimit.RefusedUser:
		return fmt.Sprintf("Too many connections for this user (at most %d)", conns.User.Max())
	}
	c.client.Store(&next)
	return ""
}

// releaseClient gives back the connection's slot when it ends.
func (c *conn) releaseClient() {
	if k := c.client.Swap(nil); k != nil {
		conns, _ := c.t.clientSlots()
		conns.Release(k.ip, k.user)
	}
}

// admitSubscription takes a subscription slot for the connection's client.
// It returns the release function, or the error to answer when a cap
// refuses.
func (c *conn) admitSubscription() (release func(), refused *gqlerror.Error) {
	k := c.client.Load()
	if k == nil {
		return func() {}, nil
	}
	_, subs := c.t.clientSlots()
	var msg string
	switch subs.Acquire(k.ip, k.user) {
	case ratelimit.RefusedNone:
		return func() { subs.Release(k.ip, k.user) }, nil
	case ratelimit.RefusedIP:
		msg = fmt.Sprintf("too many subscriptions from this address (at most %d at once across connections)", subs.IP.Max())
	default:
		msg = fmt.Sprintf("too many subscriptions for this user (at most %d at once across connections)", subs.User.Max())
	}
	return nil, &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": ErrorCodeTooManySubscriptions}}
}

// allowOperation runs Transport.RateLimit for a subscribe message. It
// returns ok, or the error to answer (the socket stays open), or close
// when the connection has been refused too often in a row and was closed.
// Reader only.
func (c *conn) allowOperation() (refused *gqlerror.Error, closed bool) {
	if c.t.RateLimit == nil {
		return nil, false
	}
	ok, wait := c.t.RateLimit(c.session.Context())
	if ok {
		c.refusedInRow = 0
		return nil, false
	}
	c.refusedInRow++
	if n := c.t.rateLimitCloseAfter(); n > 0 && c.refusedInRow > n {
		c.close(CloseTryAgainLater, "Rate limit exceeded")
		return nil, true
	}
	secs := ratelimit.RetryAfterSeconds(wait)
	return &gqlerror.Error{
		Message:    fmt.Sprintf("too many requests, retry in %d s", secs),
		Extensions: map[string]any{"code": ErrorCodeRateLimited, "retryAfter": secs},
	}, false
}
