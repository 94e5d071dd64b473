// Package push is the contract between an app's code and Kiln's push
// notifications: the Notification an app sends to its users' registered
// devices (APNs for iOS, FCM for Android). The server delivers each one as
// durable jobs, with retries, and prunes the tokens the services report
// dead.
package push

import "time"

// Priority is how urgently a notification is delivered.
type Priority string

// Priorities: High wakes the device now (APNs 10, FCM HIGH); Normal lets
// the system batch it to save power (APNs 5, FCM NORMAL).
const (
	High   Priority = "high"
	Normal Priority = "normal"
)

// Notification is what a user's devices show, with data for the app.
type Notification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
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
