// Package graphqlws is a gqlgen transport for the graphql-transport-ws
// WebSocket subprotocol, as specified by
// https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md.
//
// gqlgen ships its own websocket transport, but it does not close the socket
// with the codes that the protocol requires (4400, 4401, 4403, 4408, 4409,
// 4429; it uses 1002 or 1000), which reference clients such as the graphql-ws npm package rely on
// to tell a fatal error (bad credentials, protocol violation) from a network
// failure worth retrying. Transport implements the protocol exactly:
//
//   - the client must send connection_init within InitTimeout, or the socket
//     is closed with 4408; a second connection_init closes it with 4429;
//   - Authenticate runs on connection_init; an error closes with 4403,
//     success answers connection_ack;
//   - subscribe before connection_ack closes with 4401; a subscribe whose id
//     is already running closes with 4409; malformed or unexpected messages
//     close with 4400;
//   - every subscribe (subscription, query or mutation) runs in its own
//     goroutine and answers next… then complete, or a single error message
//     when the operation cannot be started (parse or validation errors);
//   - complete from the client cancels the operation, and nothing more is
//     sent for it;
//   - ping is answered with pong, and the server sends its own pings every
//     KeepAlive to connections that are otherwise idle;
//   - Revalidate re-checks the credentials every RevalidateEvery (or
//     RevalidateAll, all connections in one call) and whenever a client ping
//     carries an "accessToken" in its payload; an error closes the socket
//     with 4403;
//   - a subscribe beyond MaxSubscriptions running operations gets an error
//     message with extensions.code TOO_MANY_SUBSCRIPTIONS, and the socket
//     stays open;
//   - with Client set, connections and subscriptions are also capped per
//     client address and per user across connections (MaxConnectionsPerIP
//     and the like): a connection_init beyond a connection cap closes the
//     socket with 1013 Try Again Later, a subscription beyond a
//     subscription cap gets an error message with extensions.code
//     TOO_MANY_SUBSCRIPTIONS;
//   - with RateLimit set, every subscribe counts against the client's
//     request rate: a refused one gets an error message with
//     extensions.code RATE_LIMITED and retryAfter (the socket stays open),
//     and more than RateLimitCloseAfter refusals in a row close the socket
//     with 1013 Try Again Later;
//   - a panic in Authenticate or Revalidate closes with 4500; a panic in an
//     operation becomes that operation's error message;
//   - when the request's context ends first (server shutdown), the socket is
//     closed with 1001 Going away;
//   - with ShareKey set, identical subscriptions of equivalent viewers run
//     once and their responses are encoded once (see Transport.ShareKey).
//
// Each connection costs two goroutines (the reader, and one per running
// operation); timeouts, keep-alive pings and revalidation run on timers
// (with RevalidateAll, one sweep for all connections). Text messages are
// written straight to the hijacked socket, one write(2) each, bounded by a
// write deadline (WriteTimeout); the WebSocket library does the upgrade,
// the reads and the control frames. A shared subscription's event is
// written to its members' sockets by the broadcast itself, without
// blocking, and only queued for a member's goroutine when its socket does
// not take it at once.
//
// Add it to a gqlgen server ahead of any other websocket transport:
//
//	srv := handler.New(es)
//	srv.AddTransport(&graphqlws.Transport{Authenticate: auth, Revalidate: reval})
//	srv.AddTransport(transport.GET{})
//	srv.AddTransport(transport.POST{})
//
// # Connection context
//
// The context that Authenticate returns (and the latest one that Revalidate
// returns) is the connection's auth context. Operations see it live: a value
// that an operation's context looks up (the viewer, say) is taken from the
// latest auth context at the time of the lookup, so a token switched with a
// ping applies to operations that are already running as well as to new
// ones. [FromContext] gives the [Session] behind an operation's context.
package graphqlws

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
)

// Subprotocol is the WebSocket subprotocol implemented by Transport.
const Subprotocol = "graphql-transport-ws"

// Close codes of the graphql-transport-ws protocol.
const (
	CloseInternalServerError             = 4500
	CloseBadRequest                      = 4400
	CloseUnauthorized                    = 4401
	CloseForbidden                       = 4403
	CloseSubprotocolNotAcceptable        = 4406
	CloseConnectionInitialisationTimeout = 4408
	CloseSubscriberAlreadyExists         = 4409
	CloseTooManyInitialisationRequests   = 4429
)

// ErrorCodeTooManySubscriptions is the extensions.code of the error sent for
// a subscribe that would exceed Transport.MaxSubscriptions.
const ErrorCodeTooManySubscriptions = "TOO_MANY_SUBSCRIPTIONS"

// Defaults for the zero values of Transport's fields.
const (
	DefaultRevalidateEvery  = 15 * time.Second
	DefaultInitTimeout      = 10 * time.Second
	DefaultMaxSubscriptions = 100
	DefaultKeepAlive        = 15 * time.Second
	DefaultReadLimit        = 1 << 20

	DefaultWriteTimeout = 10 * time.Second
)

// Transport is a gqlgen graphql.Transport for the graphql-transport-ws
// subprotocol. The zero value is usable: every field is optional.
type Transport struct {
	// Authenticate runs on connection_init with its payload; it returns the
	// context for the connection (e.g. carrying the viewer) or an error, which
	// closes the socket with 4403 Forbidden. A nil context keeps ctx. Nil
	// accepts every connection.
	Authenticate func(ctx context.Context, payload map[string]any) (context.Context, error)

	// Revalidate runs every RevalidateEvery with a nil payload, and on every
	// client ping whose payload has an "accessToken" key, with that payload,
	// so that the connection can switch to a fresh token. ctx is the latest
	// connection context; the returned one (nil keeps ctx) replaces it for new
	// and running operations. An error (expired token, signed out, password
	// changed) closes the socket with 4403 Forbidden. Nil disables both.
	// Return nil when nothing changed; a new context is best derived from
	// FromContext(ctx).BaseContext(), so that its chain does not grow with
	// every switch over a long-lived connection.
	Revalidate func(ctx context.Context, payload map[string]any) (context.Context, error)

	// RevalidateEvery is the period of Revalidate (or RevalidateAll); 0
	// means 15s, a negative value disables the periodic check (pings still
	// revalidate).
	RevalidateEvery time.Duration

	// RevalidateAll, when set, replaces the periodic Revalidate calls with
	// batches: the acknowledged connections are spread over 16 slices, and
	// every RevalidateEvery/16 the latest connection contexts of one slice
	// go to one call, which returns an error, or nil, for each in the same
	// position; an error closes that connection with 4403 Forbidden (unless
	// it has switched to another context since). Every connection is
	// checked once per RevalidateEvery, and one call lets the check batch
	// its reads for hundreds of connections. Pings that carry an
	// "accessToken" still go through Revalidate.
	RevalidateAll func(ctxs []context.Context) []error

	// InitTimeout is how long a client has to send connection_init before
	// the socket is closed with 4408; 0 or negative means 10s.
	InitTimeout time.Duration

	// MaxSubscriptions caps the operations running at once on one
	// connection; 0 or negative means 100. A subscribe over the cap gets an
	// error message with extensions.code TOO_MANY_SUBSCRIPTIONS.
	MaxSubscriptions int

	// CheckOrigin decides whether a request's Origin may open a socket; a
	// rejected request gets HTTP 403 before upgrading. Nil allows requests
	// without an Origin header and those whose Origin host is the request's
	// Host.
	CheckOrigin func(r *http.Request) bool

	// KeepAlive is the interval of the server's ping messages (clients
	// answer pong), sent only to connections that carried no message of
	// an operation during the interval; 0 means 15s, a negative value
	// disables them.
	KeepAlive time.Duration

	// WriteTimeout bounds writes to a client: a client that does not read
	// for WriteTimeout/2 to WriteTimeout is disconnected. 0 or negative
	// means 10s.
	WriteTimeout time.Duration

	// ReadLimit is the largest message accepted from a client, in bytes;
	// 0 or negative means 1 MiB. A larger message closes the socket with
	// 1009 (message too big).
	ReadLimit int64

	// Logger receives the transport's logs; nil discards them.
	Logger *slog.Logger

	// ShareKey, when set, lets identical subscriptions share one execution:
	// subscription operations with the same query text, operation name and
	// variables, whose connection contexts have the same non-empty
	// ShareKey, run once, and each response is encoded once and written to
	// every subscriber. ShareKey must therefore return the same string only
	// for contexts under which the resolvers return the same data (e.g. the
	// viewer's identity, roles and claims); "" never shares. A shared
	// execution runs with the connection context of the subscriber that
	// started it. When Revalidate switches a connection to a context with
	// another ShareKey, its shared subscriptions end with an error whose
	// extensions.code is RESYNC. A subscriber whose client reads too slowly
	// to keep up gets the same error; either is followed by complete.
	ShareKey func(ctx context.Context) string

	// ViewerIndependent, when set with ShareKey and EventGate, lets
	// identical subscriptions of DIFFERENT viewers share one execution. It
	// reports whether the responses of the operation are the same for every
	// viewer who may receive them, so that the viewer matters only for
	// which responses it receives; false (or anything unknown) keeps
	// sharing by ShareKey. Such a group runs with the connection context
	// of the subscriber that started it, wrapped by EventGate.
	ViewerIndependent func(rc *graphql.OperationContext) bool

	// EventGate wraps the context of a group shared across viewers and
	// returns next, called once after each of its responses: next returns
	// the check of that response, which is called for each member with the
	// member's gate subject (see GateSubject) and reports whether that
	// member may receive it; a member it refuses skips the response. A nil
	// check lets every member receive it, without a call per member. When
	// next returns ok false (a response no event produced), the response
	// goes to nobody if it carries data, and to every member if it is an
	// error without data.
	EventGate func(ctx context.Context) (context.Context, func() (check func(subject any) bool, ok bool))

	// GateSubject, when set, derives what EventGate's checks receive from a
	// connection context (e.g. the viewer). It runs once per connection
	// context, when Authenticate or Revalidate returns one, so that a check
	// per member and event reads a small value rather than walking the
	// member's context chain. Nil passes the connection context itself.
	GateSubject func(ctx context.Context) any

	// SharedMembers, when set, is called with +1 when a subscription joins a
	// shared execution that was already running and -1 when such a second
	// or later subscriber leaves one that keeps running: the resolvers see
	// a single subscription per shared execution, so a count of live
	// subscriptions kept by them must add these.
	SharedMembers func(delta int)

	// Client, when set, names who a connection counts against for the
	// per-client caps below: its client address and its user, "" for none
	// (not counted; an administrator may return both empty). It is called
	// with the connection context after Authenticate, and again whenever
	// Revalidate returns a new one (the connection then moves to the new
	// client, or is closed when that client is at a cap).
	Client func(ctx context.Context) (ip, user string)

	// MaxConnectionsPerIP and MaxConnectionsPerUser cap the acknowledged
	// connections of one client address (grouped as ratelimit.IPKey does:
	// IPv6 by /64) and of one user on this Transport; 0 or negative means
	// no cap. A connection_init beyond a cap closes the socket with 1013
	// Try Again Later and a reason naming the cap. They need Client.
	MaxConnectionsPerIP, MaxConnectionsPerUser int

	// MaxSubscriptionsPerIP and MaxSubscriptionsPerUser cap the running
	// subscription operations of one client address and of one user across
	// all their connections on this Transport; 0 or negative means no cap.
	// A subscription beyond a cap gets an error message with
	// extensions.code TOO_MANY_SUBSCRIPTIONS, and the socket stays open.
	// A subscription stays counted against the client it started under.
	// They need Client.
	MaxSubscriptionsPerIP, MaxSubscriptionsPerUser int

	// RateLimit, when set, counts every subscribe message (query, mutation
	// or subscription) against the request rate of the client of the
	// latest connection context, before anything else is done with it. A
	// refused one gets an error message with extensions.code RATE_LIMITED
	// and extensions.retryAfter (whole seconds); the socket stays open.
	RateLimit func(ctx context.Context) (ok bool, retryAfter time.Duration)

	// RateLimitCloseAfter is how many refusals of RateLimit in a row a
	// connection gets as error messages: the next refused subscribe
	// closes the socket with 1013 Try Again Later. 0 means 100, negative
	// never closes.
	RateLimitCloseAfter int

	shareState
	sweepState
	clientState
}

var _ graphql.Transport = (*Transport)(nil)

// Supports reports whether r is a WebSocket upgrade request that offers the
// graphql-transport-ws subprotocol.
func (t *Transport) Supports(r *http.Request) bool {
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	return headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol)
}

// Do upgrades the request and serves the connection until it closes.
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	log := t.logger()
	if !t.checkOrigin(r) {
		log.Warn("graphqlws: origin rejected", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "graphqlws: origin not allowed", http.StatusForbidden)
		return
	}
	hw := &hijackWriter{ResponseWriter: w, timeout: t.writeTimeout()}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The origin was checked above, by CheckOrigin.
		InsecureSkipVerify: true,
	})
	if err != nil {
		log.Warn("graphqlws: upgrade failed", "err", err)
		return
	}
	if ws.Subprotocol() != Subprotocol {
		_ = ws.Close(CloseSubprotocolNotAcceptable, "Subprotocol not acceptable")
		return
	}
	ws.SetReadLimit(t.readLimit())
	newConn(t, ws, hw.conn, r, exec, log).serve()
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (t *Transport) checkOrigin(r *http.Request) bool {
	if t.CheckOrigin != nil {
		return t.CheckOrigin(r)
	}
	return SameOrigin(r)
}

// SameOrigin is the default CheckOrigin: it allows a request without an
// Origin header, or whose Origin's host (with port) is the request's Host.
func SameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func (t *Transport) initTimeout() time.Duration {
	if t.InitTimeout > 0 {
		return t.InitTimeout
	}
	return DefaultInitTimeout
}

func (t *Transport) revalidateEvery() time.Duration {
	switch {
	case t.RevalidateEvery > 0:
		return t.RevalidateEvery
	case t.RevalidateEvery < 0:
		return 0
	}
	return DefaultRevalidateEvery
}

func (t *Transport) keepAlive() time.Duration {
	switch {
	case t.KeepAlive > 0:
		return t.KeepAlive
	case t.KeepAlive < 0:
		return 0
	}
	return DefaultKeepAlive
}

func (t *Transport) maxSubscriptions() int {
	if t.MaxSubscriptions > 0 {
		return t.MaxSubscriptions
	}
	return DefaultMaxSubscriptions
}

func (t *Transport) writeTimeout() time.Duration {
	if t.WriteTimeout > 0 {
		return t.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (t *Transport) readLimit() int64 {
	if t.ReadLimit > 0 {
		return t.ReadLimit
	}
	return DefaultReadLimit
}

// headerHasToken reports whether any comma-separated element of header name
// equals token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
