package push_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiln/runtime/push"
	ipush "kiln/server/internal/push"
	"kiln/server/kilntest"
)

func newAPNs(t *testing.T, f *kilntest.FakeAPNs, now func() time.Time) *ipush.APNs {
	t.Helper()
	a, err := ipush.NewAPNs(ipush.APNsConfig{KeyID: f.KeyID, TeamID: f.TeamID, Key: f.KeyP8, Endpoint: f.URL, Client: f.Client(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func noViolations(t *testing.T, v []string) {
	t.Helper()
	for _, x := range v {
		t.Errorf("the fake service saw a request the real one refuses: %s", x)
	}
}

// TestAPNs sends through the fake APNs: the request as Apple requires it
// (checked by the fake), each answer's outcome, the provider token reused
// and renewed before an hour, and the 4 KB limit.
func TestAPNs(t *testing.T) {
	f := kilntest.StartFakeAPNs(t)
	// The client's clock runs 55 minutes behind: its tokens are accepted
	// (the fake checks iat against the real clock) until it moves on.
	skew := -55 * time.Minute
	clock := func() time.Time { return time.Now().Add(skew) }
	a := newAPNs(t, f, clock)
	ctx := context.Background()
	badge := 3
	n := push.Notification{Title: "Hi", Body: "New comment", Data: map[string]string{"postId": "p1"}, Badge: &badge, Sound: "default",
		CollapseID: "post-p1", TTL: time.Hour}

	if r := a.Send(ctx, ipush.Message{Token: "ok1", AppID: "com.example.app", Notification: n}); r.Outcome != ipush.Sent {
		t.Fatalf("send: %+v", r)
	}
	got := f.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d, want 1", len(got))
	}
	h, p := got[0].Header, got[0].Payload
	if h.Get("apns-topic") != "com.example.app" || h.Get("apns-push-type") != "alert" || h.Get("apns-priority") != "10" ||
		h.Get("apns-collapse-id") != "post-p1" || h.Get("apns-expiration") == "" {
		t.Errorf("headers %v", h)
	}
	aps := p["aps"].(map[string]any)
	alert, _ := aps["alert"].(map[string]any)
	if alert["title"] != "Hi" || alert["body"] != "New comment" || aps["badge"] != float64(3) || aps["sound"] != "default" || p["postId"] != "p1" {
		t.Errorf("payload %v", p)
	}

	// A silent notification is a background push at priority 5.
	if r := a.Send(ctx, ipush.Message{Token: "ok2", AppID: "com.example.app", Notification: push.Notification{Silent: true, Data: map[string]string{"k": "v"}}}); r.Outcome != ipush.Sent {
		t.Fatalf("silent send: %+v", r)
	}
	if h := f.Accepted()[1].Header; h.Get("apns-push-type") != "background" || h.Get("apns-priority") != "5" {
		t.Errorf("silent headers %v", h)
	}

	// Answers.
	f.Answer("gone", kilntest.PushAnswer{Status: 410, Reason: "Unregistered"})
	f.Answer("bad", kilntest.PushAnswer{Status: 400, Reason: "BadDeviceToken"})
	f.Answer("refused", kilntest.PushAnswer{Status: 400, Reason: "BadCollapseId"})
	f.Answer("busy", kilntest.PushAnswer{Status: 429, Reason: "TooManyRequests", RetryAfter: 7})
	f.Answer("down", kilntest.PushAnswer{Status: 503, Reason: "ServiceUnavailable"})
	for _, c := range []struct {
		token  string
		want   ipush.Outcome
		reason string
		after  time.Duration
	}{
		{"gone", ipush.Dead, "Unregistered", 0},
		{"bad", ipush.Dead, "BadDeviceToken", 0},
		{"refused", ipush.Failed, "BadCollapseId", 0},
		{"busy", ipush.Retry, "TooManyRequests", 7 * time.Second},
		{"down", ipush.Retry, "ServiceUnavailable", 0},
	} {
		r := a.Send(ctx, ipush.Message{Token: c.token, AppID: "com.example.app", Notification: n})
		if r.Outcome != c.want || r.Reason != c.reason || r.RetryAfter != c.after {
			t.Errorf("%s: %+v, want %v %s after %v", c.token, r, c.want, c.reason, c.after)
		}
	}

	// One provider token so far; renewed after 50 minutes (before an hour).
	if n := f.ProviderTokens(); n != 1 {
		t.Errorf("%d provider tokens for 7 requests, want 1 reused", n)
	}
	skew += 49 * time.Minute
	a.Send(ctx, ipush.Message{Token: "ok3", AppID: "com.example.app", Notification: n})
	if n := f.ProviderTokens(); n != 1 {
		t.Errorf("%d provider tokens at 49 minutes, want 1", n)
	}
	skew += 2 * time.Minute
	a.Send(ctx, ipush.Message{Token: "ok4", AppID: "com.example.app", Notification: n})
	if n := f.ProviderTokens(); n != 2 {
		t.Errorf("%d provider tokens at 51 minutes, want 2 (a renewed one)", n)
	}

	// ExpiredProviderToken: sent again at once with a new provider token.
	f.Answer("expired", kilntest.PushAnswer{Status: 403, Reason: "ExpiredProviderToken"})
	if r := a.Send(ctx, ipush.Message{Token: "expired", AppID: "com.example.app", Notification: n}); r.Outcome != ipush.Sent || f.Attempts("expired") != 2 {
		t.Errorf("after ExpiredProviderToken: %+v, %d attempts, want sent on the 2nd", r, f.Attempts("expired"))
	}
	if n := f.ProviderTokens(); n != 3 {
		t.Errorf("%d provider tokens after ExpiredProviderToken, want 3", n)
	}

	// A notification past its TTL (a retry too late) is not sent; one
	// within it carries the remaining time.
	if r := a.Send(ctx, ipush.Message{Token: "late", AppID: "com.example.app", Notification: n, Expires: clock().Add(-time.Second)}); r.Outcome != ipush.Failed || r.Reason != "expired" || f.Attempts("late") != 0 {
		t.Errorf("expired: %+v, %d attempts", r, f.Attempts("late"))
	}
	exp := clock().Add(10 * time.Minute)
	a.Send(ctx, ipush.Message{Token: "soon", AppID: "com.example.app", Notification: n, Expires: exp})
	if h := f.Accepted()[len(f.Accepted())-1].Header; h.Get("apns-expiration") != strconv.FormatInt(exp.Unix(), 10) {
		t.Errorf("apns-expiration %s, want %d", h.Get("apns-expiration"), exp.Unix())
	}

	// Over 4 KB: refused before sending.
	big := push.Notification{Body: strings.Repeat("x", 4100)}
	if r := a.Send(ctx, ipush.Message{Token: "big", AppID: "com.example.app", Notification: big}); r.Outcome != ipush.Failed || !strings.Contains(r.Reason, "too large") {
		t.Errorf("big payload: %+v", r)
	}
	if f.Attempts("big") != 0 {
		t.Error("a payload over 4 KB was sent")
	}
	noViolations(t, f.Violations())
}

// TestAPNsKey refuses keys that are not .p8 EC keys.
func TestAPNsKey(t *testing.T) {
	for _, k := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ipush.NewAPNs(ipush.APNsConfig{KeyID: "k", TeamID: "t", Key: []byte(k)}); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

// TestFCM sends through the fake FCM: the OAuth2 token from the service
// account (fetched once, reused), the v1 message (checked by the fake),
// and each answer's outcome.
func TestFCM(t *testing.T) {
	f := kilntest.StartFakeFCM(t)
	c, err := ipush.NewFCM(ipush.FCMConfig{ServiceAccount: f.ServiceAccount, Endpoint: f.URL, Client: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	badge := 2
	n := push.Notification{Title: "Hi", Body: "New comment", Data: map[string]string{"postId": "p1"}, Badge: &badge, Sound: "default",
		CollapseID: "post-p1", TTL: 90 * time.Second, Priority: push.Normal}
	if r := c.Send(ctx, ipush.Message{Token: "ok1", Notification: n}); r.Outcome != ipush.Sent {
		t.Fatalf("send: %+v", r)
	}
	m := f.Accepted()[0].Payload
	notif, _ := m["notification"].(map[string]any)
	android, _ := m["android"].(map[string]any)
	data, _ := m["data"].(map[string]any)
	if notif["title"] != "Hi" || notif["body"] != "New comment" || data["postId"] != "p1" ||
		android["priority"] != "NORMAL" || android["ttl"] != "90s" || android["collapse_key"] != "post-p1" {
		t.Errorf("message %v", m)
	}
	// A silent notification is data only.
	c.Send(ctx, ipush.Message{Token: "ok2", Notification: push.Notification{Silent: true, Data: map[string]string{"k": "v"}}})
	if m := f.Accepted()[1].Payload; m["notification"] != nil || m["android"].(map[string]any)["priority"] != "HIGH" {
		t.Errorf("silent message %v", m)
	}

	f.Answer("gone", kilntest.PushAnswer{Status: 404, Reason: "UNREGISTERED"})
	f.Answer("unreg", kilntest.PushAnswer{Status: 400, Reason: "UNREGISTERED"})
	f.Answer("invalid", kilntest.PushAnswer{Status: 400, Reason: "INVALID_ARGUMENT"})
	f.Answer("busy", kilntest.PushAnswer{Status: 429, Reason: "QUOTA_EXCEEDED", RetryAfter: 5})
	f.Answer("down", kilntest.PushAnswer{Status: 503, Reason: "UNAVAILABLE"})
	for _, c2 := range []struct {
		token string
		want  ipush.Outcome
		after time.Duration
	}{
		{"gone", ipush.Dead, 0}, {"unreg", ipush.Dead, 0}, {"invalid", ipush.Failed, 0},
		{"busy", ipush.Retry, 5 * time.Second}, {"down", ipush.Retry, 0},
	} {
		r := c.Send(ctx, ipush.Message{Token: c2.token, Notification: n})
		if r.Outcome != c2.want || r.RetryAfter != c2.after {
			t.Errorf("%s: %+v, want %v after %v", c2.token, r, c2.want, c2.after)
		}
	}
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("%d access tokens for 7 sends, want 1 cached", n)
	}
	big := push.Notification{Body: strings.Repeat("x", 4100)}
	if r := c.Send(ctx, ipush.Message{Token: "big", Notification: big}); r.Outcome != ipush.Failed || f.Attempts("big") != 0 {
		t.Errorf("big payload: %+v, %d attempts", r, f.Attempts("big"))
	}
	noViolations(t, f.Violations())
}
