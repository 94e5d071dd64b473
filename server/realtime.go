package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"kiln/runtime/access"
	"kiln/runtime/realtime"
	"kiln/server/internal/auth"
	"kiln/server/internal/config"
	"kiln/server/internal/graphqlws"
	"kiln/server/internal/pubsub"
	"kiln/server/internal/pubsub/memory"
	"kiln/server/internal/pubsub/redis"
	"kiln/server/internal/ratelimit"
	"kiln/server/internal/request"
)

// openBus returns the pub/sub for subscriptions: Redis when REDIS_URL is
// set (events reach subscribers on every instance), otherwise in memory.
func openBus(ctx context.Context, redisURL string) (pubsub.Bus, error) {
	if redisURL == "" {
		return memory.New(), nil
	}
	b, err := redis.New(ctx, redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return b, nil
}

// busEvents adapts a pubsub.Bus to the resolvers' realtime.Events.
type busEvents struct {
	bus    pubsub.Bus
	active prometheus.Gauge
	// lag observes, for every message a subscription takes from the bus,
	// the time since it was published (nil: not measured).
	lag prometheus.Observer
	// filters caps, per client, the subscriptions whose where runs SQL
	// for every event (see AcquireSQLFilter; zero: no cap).
	filters ratelimit.ClientSlots
}

// sqlFilterSlots are busEvents.filters for the configured caps.
func sqlFilterSlots(rc config.RealtimeConfig) ratelimit.ClientSlots {
	return ratelimit.ClientSlots{IP: ratelimit.NewSlots(rc.MaxSQLFilteredPerIP), User: ratelimit.NewSlots(rc.MaxSQLFilteredPerUser)}
}

// AcquireSQLFilter implements realtime.SQLFilterQuota: a subscription whose
// where needs SQL for every event (a relation filter) takes a slot of its
// client address and of its user, over any transport; over a cap it is
// refused with TOO_MANY_SUBSCRIPTIONS. This bounds the statements that one
// client adds to every event.
func (b busEvents) AcquireSQLFilter(ctx context.Context) (func(), error) {
	ip, user := clientOf(ctx)
	var msg string
	switch b.filters.Acquire(ip, user) {
	case ratelimit.RefusedNone:
		return func() { b.filters.Release(ip, user) }, nil
	case ratelimit.RefusedIP:
		msg = fmt.Sprintf("too many subscriptions with a relation filter from this address (at most %d at once): each one queries the database for every event", b.filters.IP.Max())
	default:
		msg = fmt.Sprintf("too many subscriptions with a relation filter for this user (at most %d at once): each one queries the database for every event", b.filters.User.Max())
	}
	return nil, &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": graphqlws.ErrorCodeTooManySubscriptions}}
}

// clientOf is who a request or connection context counts against for
// rate limits and caps: the client address (as withClientIP found it) and
// the viewer's id; both empty for an administrator, who is not limited.
func clientOf(ctx context.Context) (ip, user string) {
	ip = request.ClientIP(ctx)
	switch v := access.From(ctx); {
	case v == nil:
	case v.Admin:
		return "", ""
	default:
		user = v.ID.String()
	}
	return ip, user
}

// wsLimits applies the per-client limits to a WebSocket transport: every
// operation sent over a socket counts against the same per-address and
// per-user request rates as an HTTP request (limiter), and the
// connections and subscriptions of a client are capped (rc).
func wsLimits(t *graphqlws.Transport, limiter *ratelimit.Limiter, rc config.RealtimeConfig) *graphqlws.Transport {
	t.Client = clientOf
	t.MaxConnectionsPerIP, t.MaxConnectionsPerUser = rc.MaxConnectionsPerIP, rc.MaxConnectionsPerUser
	t.MaxSubscriptions = rc.MaxSubscriptionsPerConnection
	t.MaxSubscriptionsPerIP, t.MaxSubscriptionsPerUser = rc.MaxSubscriptionsPerIP, rc.MaxSubscriptionsPerUser
	t.RateLimitCloseAfter = rc.RateLimitCloseAfter
	if rc.RateLimitCloseAfter == 0 {
		t.RateLimitCloseAfter = -1 // never
	}
	if limiter != nil {
		t.RateLimit = func(ctx context.Context) (bool, time.Duration) {
			ip, user := clientOf(ctx)
			return limiter.AllowRequest(ctx, ip, user)
		}
	}
	return t
}

// newLagHistogram is kiln_pubsub_lag_seconds for the backend ("memory" or
// "redis"): the time from Publish until a subscription on this instance
// takes the message from the bus, i.e. before authorization, filtering and
// the write to the client. Through Redis the publish time is another
// instance's clock, so skew between machines shows in it.
func newLagHistogram(reg prometheus.Registerer, backend string) prometheus.Observer {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kiln_pubsub_lag_seconds",
		Help:    "Time from publishing an event to its delivery to a subscription on this instance, by pub/sub backend.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"backend"})
	reg.MustRegister(h)
	return h.WithLabelValues(backend)
}

// backendName is the kiln_pubsub_lag_seconds label of the bus that openBus
// returns for redisURL.
func backendName(redisURL string) string {
	if redisURL == "" {
		return "memory"
	}
	return "redis"
}

func (b busEvents) Publish(ctx context.Context, topic string, data []byte) error {
	return b.bus.Publish(ctx, topic, data)
}

func (b busEvents) Subscribe(ctx context.Context, topics ...string) (realtime.Stream, error) {
	sub, err := b.bus.Subscribe(ctx, topics...)
	if err != nil {
		return nil, err
	}
	if b.active != nil {
		b.active.Inc()
	}
	return &busStream{sub: sub, active: b.active, lag: b.lag}, nil
}

// busStream is a realtime.Stream: the resolver's goroutine reads the bus
// subscription directly, without a goroutine in between.
type busStream struct {
	sub    pubsub.Subscription
	active prometheus.Gauge
	lag    prometheus.Observer
	once   sync.Once
}

// errStreamEnded: the bus ended the subscription (the bus was closed).
var errStreamEnded = errors.New("realtime: the subscription ended")

func (s *busStream) Next(ctx context.Context) (realtime.Event, error) {
	in, events := s.sub.C(), s.sub.Events()
	for {
		select {
		case <-ctx.Done():
			return realtime.Event{}, ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return realtime.Event{}, errStreamEnded
			}
			if ev == pubsub.EventLost {
				return realtime.Event{}, realtime.ErrEventsLost
			}
		case m, ok := <-in:
			if !ok {
				return realtime.Event{}, errStreamEnded
			}
			if s.lag != nil && !m.Published.IsZero() {
				s.lag.Observe(time.Since(m.Published).Seconds())
			}
			ev := realtime.Event{Topic: m.Topic, Data: m.Data}
			if m.Memo != nil {
				ev.Memo = m.Memo
			}
			return ev, nil
		}
	}
}

func (s *busStream) Close() error {
	s.once.Do(func() {
		if s.active != nil {
			s.active.Dec()
		}
	})
	return s.sub.Close()
}

// wsTransport authenticates graphql-transport-ws connections from the
// connection_init payload ({"Authorization": "Bearer <token>"}, or
// {"accessToken": "<token>"}, or the admin secret) and re-checks the token
// periodically and when a ping carries a new accessToken: an expired token,
// a sign-out everywhere or a password change closes the socket with 4403.
//
// Identical subscriptions of viewers with the same identity, roles and
// claims share one execution (see graphqlws.Transport.ShareKey): every
// admin connection, every anonymous one, and the connections of one user.
// Identical subscriptions whose selection does not depend on the viewer
// (realtime.ViewerIndependent) share one execution across all viewers, and
// each event is authorized per subscriber (realtime.WithEventGate). active
// counts their members.
func wsTransport(accounts *auth.Service, admin *adminGuard, revalidate time.Duration, active prometheus.Gauge, viewerFree map[string]map[string]bool, log *slog.Logger) *graphqlws.Transport {
	authenticate := func(ctx context.Context, payload map[string]any) (context.Context, error) {
		if s, _ := payload["X-Kiln-Admin-Secret"].(string); s != "" {
			if err := admin.check(ctx, s, "websocket"); err != nil {
				return nil, err
			}
			return access.With(ctx, adminViewer()), nil
		}
		token, _ := payload["accessToken"].(string)
		if h, _ := payload["Authorization"].(string); h != "" {
			t, ok := request.BearerToken(h)
			if !ok {
				return nil, errors.New("the Authorization payload must be: Bearer <access token>")
			}
			token = t
		}
		if token == "" {
			return ctx, nil
		}
		v, err := accounts.Verify(ctx, token)
		if err != nil {
			return nil, err
		}
		return access.With(ctx, v), nil
	}
	return &graphqlws.Transport{
		Authenticate: authenticate,
		Revalidate: func(ctx context.Context, payload map[string]any) (context.Context, error) {
			// Only a ping with a new token comes here: the periodic check
			// is RevalidateAll's.
			if t, _ := payload["accessToken"].(string); t != "" {
				base := ctx
				if sess, ok := graphqlws.FromContext(ctx); ok {
					base = sess.BaseContext()
				}
				return authenticate(base, payload)
			}
			return nil, nil
		},
		// The periodic check of every connection in one call: expiry in
		// memory, and the token versions of all their users in one query
		// per 500 users (not a signature check and a query per connection).
		RevalidateAll: func(ctxs []context.Context) []error {
			viewers := make([]*access.Viewer, len(ctxs))
			for i, ctx := range ctxs {
				viewers[i] = access.From(ctx)
			}
			return accounts.Recheck(context.Background(), viewers)
		},
		RevalidateEvery: revalidate,
		Logger:          log,
		ShareKey:        viewerShareKey,
		// Subscriptions that read only a record's own columns without
		// field-level @auth are shared by all viewers; the read rule of
		// each event's record is checked per subscriber.
		ViewerIndependent: func(rc *graphql.OperationContext) bool {
			return realtime.ViewerIndependent(viewerFree, rc)
		},
		EventGate:   realtime.WithEventGate,
		GateSubject: realtime.GateSubject,
		SharedMembers: func(delta int) {
			if active != nil {
				active.Add(float64(delta))
			}
		},
	}
}

// viewerShareKey is the graphqlws share key of a connection: its whole
// viewer (identity, roles, claims, token version; admin; anonymous), which
// is all that rules and resolvers read of a subscriber. "" (no sharing) if
// it cannot be encoded.
func viewerShareKey(ctx context.Context) string {
	v := access.From(ctx)
	if v == nil {
		return "anonymous"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
