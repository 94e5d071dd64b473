// Package push is the contract between an app's code and Kiln's push
// notifications: the Notification an app sends to its users' registered
// devices (APNs for iOS, FCM for Android). The server delivers each one as
// durable jobs, with retries, and prunes the tokens the services report
// dead.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Priority is how urgently a notification is delivered.
type Priority string

// Priorities: High wakes the device now (APNs 10, FCM HIGH); Normal lets
// the system batch it to save power (APNs 5, FCM NORMAL).
const (
	High   Priority = "HIGH"
	Normal Priority = "NORMAL"
)

// Notification is what a user's devices show, with data for the app.
type Notification struct {
	Title string `json:"title,omitempty"`
	// Body is the text shown.
	Body string `json:"body,omitempty"`
	// Data are key-value pairs the app receives with the notification
	// (APNs: top-level keys next to aps; FCM: the data payload).
	Data map[string]string `json:"data,omitempty"`
	// Badge sets the app icon's badge (iOS); nil leaves it.
	Badge *int `json:"badge,omitempty"`
	// Sound is the sound to play ("default" for the system's); none when
	// empty.
	Sound string `json:"sound,omitempty"`
	// CollapseID replaces an earlier notification with the same id still
	// shown or pending (apns-collapse-id, FCM collapse_key).
	CollapseID string `json:"collapseId,omitempty"`
	// Priority defaults to High.
	Priority Priority `json:"priority,omitempty"`
	// TTL is how long the service keeps trying to reach an offline
	// device (apns-expiration, FCM android.ttl); zero for the services'
	// default (APNs: once, FCM: 4 weeks).
	TTL time.Duration `json:"ttl,omitempty"`
	// Silent sends a background notification (no alert: APNs push type
	// background with content-available, FCM data only).
	Silent bool `json:"silent,omitempty"`
}

// Sender queues notifications for delivery; the server provides it.
type Sender interface {
	// ToUsers queues n for every registered device of the users; it
	// returns how many devices it was queued for.
	ToUsers(ctx context.Context, userIDs []uuid.UUID, n Notification) (int, error)
	// ToTopic queues n for every device subscribed to topic.
	ToTopic(ctx context.Context, topic string, n Notification) (int, error)
}

// ErrOff is returned by the admin mutation when the server has no push
// service configured (see the KILN_PUSH_* settings).
var ErrOff = errors.New("push notifications are off: no APNs or FCM credentials are configured")

var current atomic.Pointer[Sender]

// Use makes s the sender of ToUsers and ToTopic (the server calls it at
// start; nil turns push off).
func Use(s Sender) {
	if s == nil {
		current.Store(nil)
		return
	}
	current.Store(&s)
}

// On reports whether a sender is configured.
func On() bool { return current.Load() != nil }

// ToUsers queues n for every registered device of the users, delivered in
// the background as durable jobs (retried when a push service is
// overloaded; dead tokens removed). It never waits for the push services,
// so it can be called from hooks, triggers and jobs. Without push
// configured it queues nothing and returns 0, nil.
func ToUsers(ctx context.Context, userIDs []uuid.UUID, n Notification) (int, error) {
	s := current.Load()
	if s == nil || len(userIDs) == 0 {
		return 0, nil
	}
	return (*s).ToUsers(ctx, userIDs, n)
}

// ToTopic queues n for every device subscribed to topic (see ToUsers).
func ToTopic(ctx context.Context, topic string, n Notification) (int, error) {
	s := current.Load()
	if s == nil {
		return 0, nil
	}
	return (*s).ToTopic(ctx, topic, n)
}

// Target is whom the admin mutation sendNotification notifies (GraphQL
// NotificationTarget): users' devices or a topic's, exactly one.
type Target struct {
	UserIDs []uuid.UUID `json:"userIDs,omitempty"`
	Topic   *string     `json:"topic,omitempty"`
}

// Input is a notification as the admin mutation takes it (GraphQL
// NotificationInput).
type Input struct {
	Title, Body, Sound, CollapseID *string
	Data                           map[string]any
	Badge                          *int
	Priority                       *Priority
	TTLSeconds                     *int
	Silent                         *bool
}

// InputError is a bad argument of sendNotification.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// Notification returns the notification of in. Data values that are not
// strings are sent as their JSON.
func (in Input) Notification() (Notification, error) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	n := Notification{Title: str(in.Title), Body: str(in.Body), Sound: str(in.Sound), CollapseID: str(in.CollapseID), Badge: in.Badge}
	if in.Priority != nil {
		n.Priority = *in.Priority
	}
	if in.Silent != nil {
		n.Silent = *in.Silent
	}
	if in.TTLSeconds != nil {
		if *in.TTLSeconds < 0 {
			return n, &InputError{Field: "notification.ttlSeconds", Message: "must not be negative"}
		}
		n.TTL = time.Duration(*in.TTLSeconds) * time.Second
	}
	if !n.Silent && n.Title == "" && n.Body == "" {
		return n, &InputError{Field: "notification", Message: "needs a title or a body (or silent: true)"}
	}
	if len(in.Data) > 0 {
		n.Data = map[string]string{}
		for k, v := range in.Data {
			if s, ok := v.(string); ok {
				n.Data[k] = s
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				return n, &InputError{Field: "notification.data", Message: err.Error()}
			}
			n.Data[k] = string(b)
		}
	}
	return n, nil
}

// Send queues in for to's devices (the admin mutation; the caller checks
// that an admin asks). Errors: *InputError, ErrOff.
func Send(ctx context.Context, to Target, in Input) (int, error) {
	if (len(to.UserIDs) == 0) == (to.Topic == nil) {
		return 0, &InputError{Field: "to", Message: "give exactly one of userIDs and topic"}
	}
	n, err := in.Notification()
	if err != nil {
		return 0, err
	}
	s := current.Load()
	if s == nil {
		return 0, ErrOff
	}
	if to.Topic != nil {
		return (*s).ToTopic(ctx, *to.Topic, n)
	}
	return (*s).ToUsers(ctx, to.UserIDs, n)
}
