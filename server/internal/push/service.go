package push

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/sqljson"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"kiln/runtime/push"
	"kiln/runtime/store"
	"kiln/runtime/store/authdevice"
	"kiln/server/internal/jobs"
)

// batchSize is how many devices one delivery job holds.
const batchSize = 500

// Sender sends one message to one device (APNs, FCM).
type Sender interface {
	Send(ctx context.Context, m Message) Result
}

// Queue is where delivery jobs go (the job engine).
type Queue interface {
	InsertPush(ctx context.Context, batches []jobs.PushBatch) error
}

// Service queues notifications for users' and topics' devices and
// delivers the jobs: each device's message through its platform's sender,
// at most Concurrency at once per platform, dead tokens removed.
type Service struct {
	store *store.Client
	queue Queue
	log   *slog.Logger
	// senders by platform (ios, android); a platform without one is off.
	senders map[string]Sender
	slots   map[string]chan struct{}
	m       metrics
	// recipients is the app's opt-out (nil: everyone).
	recipients func(ctx context.Context, userIDs []uuid.UUID) ([]uuid.UUID, error)
}

// Recipients sets the app's opt-out: notifications go only to the users f
// keeps.
func (s *Service) Recipients(f func(ctx context.Context, userIDs []uuid.UUID) ([]uuid.UUID, error)) {
	s.recipients = f
}

// allowed keeps the users the app's opt-out lets through.
func (s *Service) allowed(ctx context.Context, userIDs []uuid.UUID) ([]uuid.UUID, error) {
	if s.recipients == nil || len(userIDs) == 0 {
		return userIDs, nil
	}
	ids, err := s.recipients(ctx, userIDs)
	if err != nil {
		return nil, fmt.Errorf("push: the app's recipients: %w", err)
	}
	return ids, nil
}

type metrics struct {
	sent    *prometheus.CounterVec
	failed  *prometheus.CounterVec
	pruned  *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewService makes the service; apns or fcm may be nil (that platform is
// off). concurrency bounds the requests in flight per platform.
func NewService(c *store.Client, q Queue, apns, fcm Sender, concurrency int, reg prometheus.Registerer, log *slog.Logger) *Service {
	s := &Service{store: c, queue: q, log: log, senders: map[string]Sender{}, slots: map[string]chan struct{}{}}
	if apns != nil {
		s.senders["ios"] = apns
	}
	if fcm != nil {
		s.senders["android"] = fcm
	}
	for p := range s.senders {
		s.slots[p] = make(chan struct{}, max(concurrency, 1))
	}
	s.m = metrics{
		sent:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_push_sent_total", Help: "Push notifications the push service accepted."}, []string{"platform"}),
		failed:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_push_failed_total", Help: "Push notification attempts that failed, by reason (retried when the reason is temporary)."}, []string{"platform", "reason"}),
		pruned:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_push_pruned_total", Help: "Device tokens removed because the push service reported them dead."}, []string{"platform"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kiln_push_request_seconds", Help: "Time of one request to a push service.", Buckets: prometheus.DefBuckets}, []string{"platform"}),
	}
	reg.MustRegister(s.m.sent, s.m.failed, s.m.pruned, s.m.latency)
	return s
}

// ToUsers queues n for every device of the users.
func (s *Service) ToUsers(ctx context.Context, userIDs []uuid.UUID, n push.Notification) (int, error) {
	userIDs, err := s.allowed(ctx, userIDs)
	if err != nil || len(userIDs) == 0 {
		return 0, err
	}
	list, err := s.store.AuthDevice.Query().Where(authdevice.UserIDIn(userIDs...)).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("push: load devices: %w", err)
	}
	return s.enqueue(ctx, list, n)
}

// ToTopic queues n for every device subscribed to topic.
func (s *Service) ToTopic(ctx context.Context, topic string, n push.Notification) (int, error) {
	list, err := s.store.AuthDevice.Query().Where(func(sel *sql.Selector) {
		sel.Where(sqljson.ValueContains(authdevice.FieldTopics, topic)) // in SQL: only the topic's devices are loaded
	}).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("push: load devices: %w", err)
	}
	if s.recipients != nil && len(list) > 0 {
		users := map[uuid.UUID]bool{}
		for _, d := range list {
			users[d.UserID] = true
		}
		ids, err := s.allowed(ctx, slices.Collect(maps.Keys(users)))
		if err != nil {
			return 0, err
		}
		keep := map[uuid.UUID]bool{}
		for _, id := range ids {
			keep[id] = true
		}
		list = slices.DeleteFunc(list, func(d *store.AuthDevice) bool { return !keep[d.UserID] })
	}
	return s.enqueue(ctx, list, n)
}

func (s *Service) enqueue(ctx context.Context, list []*store.AuthDevice, n push.Notification) (int, error) {
	by := map[string][]jobs.PushTarget{}
	for _, d := range list {
		if _, on := s.senders[d.Platform]; on {
			by[d.Platform] = append(by[d.Platform], jobs.PushTarget{Token: d.Token, AppID: d.AppID})
		}
	}
	var batches []jobs.PushBatch
	var expires time.Time
	if n.TTL > 0 {
		expires = time.Now().Add(n.TTL)
	}
	count := 0
	for p, ts := range by {
		count += len(ts)
		for chunk := range slices.Chunk(ts, batchSize) {
			batches = append(batches, jobs.PushBatch{Platform: p, Targets: chunk, Notification: n, Expires: expires})
		}
	}
	if err := s.queue.InsertPush(ctx, batches); err != nil {
		return 0, err
	}
	return count, nil
}

// SendBatch delivers one job's batch: it returns the devices to try again
// and the longest Retry-After among them.
func (s *Service) SendBatch(ctx context.Context, b jobs.PushBatch) (retry []jobs.PushTarget, wait time.Duration) {
	sender, ok := s.senders[b.Platform]
	if !ok {
		s.log.Warn("push: no sender for the platform; batch dropped", "platform", b.Platform, "devices", len(b.Targets))
		return nil, 0
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		dead []string
	)
	slots := s.slots[b.Platform]
	for _, t := range b.Targets {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			mu.Lock()
			retry = append(retry, t)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			start := time.Now()
			r := sender.Send(ctx, Message{Token: t.Token, AppID: t.AppID, Notification: b.Notification, Expires: b.Expires})
			s.m.latency.WithLabelValues(b.Platform).Observe(time.Since(start).Seconds())
			mu.Lock()
			defer mu.Unlock()
			switch r.Outcome {
			case Sent:
				s.m.sent.WithLabelValues(b.Platform).Inc()
				return
			case Retry:
				retry = append(retry, t)
				wait = max(wait, r.RetryAfter)
			case Dead:
				dead = append(dead, t.Token)
			}
			reason := r.Reason
			switch {
			case r.Status == 0 && r.Outcome == Retry:
				reason = "unreachable"
			case r.Status == 0 && r.Reason == "expired":
			case r.Status == 0:
				reason = "invalid_payload"
			}
			s.m.failed.WithLabelValues(b.Platform, reason).Inc()
			if r.Outcome == Failed {
				s.log.Warn("push: notification refused", "platform", b.Platform, "status", r.Status, "reason", r.Reason)
			}
		}()
	}
	wg.Wait()
	if len(dead) > 0 {
		n, err := s.store.AuthDevice.Delete().Where(authdevice.TokenIn(dead...)).Exec(context.WithoutCancel(ctx))
		if err != nil {
			s.log.Error("push: removing dead tokens", "err", err)
		} else {
			s.m.pruned.WithLabelValues(b.Platform).Add(float64(n))
			s.log.Info("push: dead device tokens removed", "platform", b.Platform, "count", n)
		}
	}
	return retry, wait
}
