package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// pushEnv is a server whose push services are fake APNs and FCM servers
// started by the test (HTTP/2 over TLS on loopback).
type pushEnv struct {
	s    *kilntest.Server
	apns *kilntest.FakeAPNs
	fcm  *kilntest.FakeFCM
}

func pushBackends(t *testing.T, fn func(t *testing.T, e pushEnv)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			e := pushEnv{apns: kilntest.StartFakeAPNs(t), fcm: kilntest.StartFakeFCM(t)}
			dir := t.TempDir()
			key, creds := filepath.Join(dir, "AuthKey.p8"), filepath.Join(dir, "fcm.json")
			if err := os.WriteFile(key, e.apns.KeyP8, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(creds, e.fcm.ServiceAccount, 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret,
				"KILN_PUSH_APNS_KEY_FILE=" + key, "KILN_PUSH_APNS_KEY_ID=" + e.apns.KeyID, "KILN_PUSH_APNS_TEAM_ID=" + e.apns.TeamID,
				"KILN_PUSH_APNS_ENDPOINT=" + e.apns.URL, "KILN_PUSH_FCM_CREDENTIALS_FILE=" + creds, "KILN_PUSH_FCM_ENDPOINT=" + e.fcm.URL,
				// httptest servers share one certificate.
				"KILN_PUSH_CA_FILE=" + e.apns.CAFile(t),
				"KILN_JOBS_POLL_INTERVAL=20ms", "KILN_JOBS_RETRY_BASE=50ms", "KILN_JOBS_RETRY_MAX=200ms"}
			if db == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			e.s = kilntest.Start(t, serverBin, env...)
			fn(t, e)
		})
	}
}

const sendNotification = `mutation($u: [ID!], $topic: String, $title: String) {
  sendNotification(to: {userIDs: $u, topic: $topic}, notification: {title: $title, body: "b", data: {k: "v", n: 1}}) }`

// drain waits until the job engine has no event or push job left to run
// (at most 600 looks, 50ms apart).
func drain(t *testing.T, s *kilntest.Server) {
	t.Helper()
	for range 600 {
		var out struct{ Available, Running, Scheduled, Retryable, Pending []struct{ ID string } }
		s.MustDo(t, `{ available: kilnJobs(state: "available", first: 1) { id } running: kilnJobs(state: "running", first: 1) { id }
		  scheduled: kilnJobs(state: "scheduled", first: 1) { id } retryable: kilnJobs(state: "retryable", first: 1) { id }
		  pending: kilnJobs(state: "pending", first: 1) { id } }`, nil, &out)
		if len(out.Available)+len(out.Running)+len(out.Scheduled)+len(out.Retryable)+len(out.Pending) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("jobs still pending after 600 looks")
}

func acceptedFor(reqs []kilntest.PushRequest, token string) int {
	n := 0
	for _, r := range reqs {
		if r.Token == token {
			n++
		}
	}
	return n
}

func sendTo(t *testing.T, s *kilntest.Server, title string, users ...string) int {
	t.Helper()
	var out struct{ SendNotification int }
	s.MustDo(t, sendNotification, map[string]any{"u": users, "title": title}, &out)
	return out.SendNotification
}

// TestPushDelivery sends notifications through the real server to fake
// APNs and FCM: delivered to every device of the users (payload as each
// service requires, checked by the fakes), dead tokens pruned (APNs 410,
// FCM UNREGISTERED), retried after 429 with Retry-After and after 503, not
// retried after 400, a moved token notifying its new user, topics, the
// admin-only mutation, and the metrics.
func TestPushDelivery(t *testing.T) {
	pushBackends(t, func(t *testing.T, e pushEnv) {
		s := e.s
		alice := signUp(t, s, "alice@push.example")
		bob := signUp(t, s, "bob@push.example")
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "alice-ios", "a": "com.example.app"}, nil)
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "ANDROID", "t": "alice-android", "a": "com.example.app"}, nil)
		s.MustDoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "bob-ios", "a": "com.example.app"}, nil)

		if n := sendTo(t, s, "one", alice.User.ID); n != 2 {
			t.Errorf("queued for %d devices, want alice's 2", n)
		}
		drain(t, s)
		if acceptedFor(e.apns.Accepted(), "alice-ios") != 1 || acceptedFor(e.fcm.Accepted(), "alice-android") != 1 || acceptedFor(e.apns.Accepted(), "bob-ios") != 0 {
			t.Fatalf("delivered: apns %d fcm %d", len(e.apns.Accepted()), len(e.fcm.Accepted()))
		}
		a := e.apns.Accepted()[0]
		if aps := a.Payload["aps"].(map[string]any); aps["alert"].(map[string]any)["title"] != "one" || a.Payload["k"] != "v" || a.Payload["n"] != "1" ||
			a.Header.Get("apns-topic") != "com.example.app" {
			t.Errorf("APNs got %v %v", a.Header, a.Payload)
		}
		if f := e.fcm.Accepted()[0].Payload; f["notification"].(map[string]any)["title"] != "one" || f["data"].(map[string]any)["n"] != "1" {
			t.Errorf("FCM got %v", f)
		}

		// Retried after 429 (Retry-After) and 503, then delivered once;
		// not retried after 400.
		e.apns.Answer("alice-ios", kilntest.PushAnswer{Status: 429, Reason: "TooManyRequests", RetryAfter: 1}, kilntest.PushAnswer{Status: 503, Reason: "ServiceUnavailable"})
		e.fcm.Answer("alice-android", kilntest.PushAnswer{Status: 400, Reason: "INVALID_ARGUMENT"})
		sendTo(t, s, "two", alice.User.ID)
		drain(t, s)
		if n := e.apns.Attempts("alice-ios"); n != 4 {
			t.Errorf("alice-ios: %d requests, want 4 (1 + 429 + 503 + 200)", n)
		}
		if n := acceptedFor(e.apns.Accepted(), "alice-ios"); n != 2 {
			t.Errorf("alice-ios accepted %d, want 2", n)
		}
		if n := e.fcm.Attempts("alice-android"); n != 2 {
			t.Errorf("alice-android: %d requests, want 2 (the 400 not retried)", n)
		}

		// A token registered by bob moves to him: alice's notification no
		// longer reaches it, bob's does.
		s.MustDoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "ANDROID", "t": "alice-android", "a": "com.example.app"}, nil)
		if n := sendTo(t, s, "three", alice.User.ID); n != 1 {
			t.Errorf("alice's notification queued for %d devices, want 1", n)
		}
		if n := sendTo(t, s, "four", bob.User.ID); n != 2 {
			t.Errorf("bob's notification queued for %d devices, want 2", n)
		}
		drain(t, s)
		if n := acceptedFor(e.fcm.Accepted(), "alice-android"); n != 2 {
			t.Errorf("the moved token got %d notifications, want 2 (one before the move, bob's)", n)
		}

		// Dead tokens are pruned.
		e.apns.Answer("bob-ios", kilntest.PushAnswer{Status: 410, Reason: "Unregistered"})
		e.fcm.Answer("alice-android", kilntest.PushAnswer{Status: 404, Reason: "UNREGISTERED"})
		sendTo(t, s, "five", bob.User.ID)
		drain(t, s)
		if got := devices(t, s, bob.AccessToken); len(got) != 0 {
			t.Errorf("bob's dead devices kept: %v", tokens(got))
		}
		if n := s.Metric(t, `kiln_push_pruned_total{platform="ios"}`) + s.Metric(t, `kiln_push_pruned_total{platform="android"}`); n != 2 {
			t.Errorf("pruned metric %v, want 2", n)
		}
		if n := s.Metric(t, `kiln_push_sent_total{platform="ios"}`); n != 4 {
			t.Errorf("sent metric (ios) %v, want 4 (alice-ios one, two, three; bob-ios four)", n)
		}
		if n := s.Metric(t, `kiln_push_failed_total{platform="ios",reason="TooManyRequests"}`); n != 1 {
			t.Errorf("failed metric (429) %v, want 1", n)
		}

		// Topics.
		s.MustDoAs(t, alice.AccessToken, `mutation { subscribeToTopic(token: "alice-ios", topic: "news") }`, nil, nil)
		// Another device on another topic whose name starts the same.
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "alice-ios-digest", "a": "com.example.app"}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation { subscribeToTopic(token: "alice-ios-digest", topic: "news-digest") }`, nil, nil)
		var out struct{ SendNotification int }
		s.MustDo(t, sendNotification, map[string]any{"topic": "news", "title": "topic"}, &out)
		if out.SendNotification != 1 {
			t.Errorf("topic notification queued for %d devices, want 1", out.SendNotification)
		}
		drain(t, s)
		if n := acceptedFor(e.apns.Accepted(), "alice-ios"); n != 4 {
			t.Errorf("alice-ios accepted %d after the topic notification, want 4", n)
		}

		// Admins only; bad targets refused.
		refused(t, "a user sends", s.DoAs(t, alice.AccessToken, sendNotification, map[string]any{"u": []string{alice.User.ID}, "title": "x"}), "FORBIDDEN", "")
		refused(t, "no target", s.Do(t, sendNotification, map[string]any{"title": "x"}), "BAD_USER_INPUT", "")
		refused(t, "empty notification", s.Do(t, `mutation($u: [ID!]) { sendNotification(to: {userIDs: $u}, notification: {}) }`, map[string]any{"u": []string{alice.User.ID}}), "BAD_USER_INPUT", "")
		for _, v := range append(e.apns.Violations(), e.fcm.Violations()...) {
			t.Errorf("a request the real service refuses: %s", v)
		}
	})
}

// TestPushOff: without push settings the server starts, says push is
// off, and sendNotification answers UNAVAILABLE.
func TestPushOff(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	alice := signUp(t, s, "alice@nopush.example")
	refused(t, "push off", s.Do(t, sendNotification, map[string]any{"u": []string{alice.User.ID}, "title": "x"}), "UNAVAILABLE", "")
	if !strings.Contains(s.Logs(), "push notifications off") {
		t.Error("the log does not say push is off")
	}
}

// TestCommentNotifiesPostAuthor runs the example app's code: a new comment
// notifies the post's author (the app's trigger), not when they comment on
// their own post, and not once their Settings.pushEnabled is false (the
// app's PushRecipients, which admins' notifications and topics obey too).
func TestCommentNotifiesPostAuthor(t *testing.T) {
	pushBackends(t, func(t *testing.T, e pushEnv) {
		s := e.s
		alice := signUp(t, s, "alice@comments.example")
		bob := signUp(t, s, "bob@comments.example")
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "alice-ios", "a": "com.example.app"}, nil)
		s.MustDoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "ANDROID", "t": "bob-android", "a": "com.example.app"}, nil)
		var ap, bp struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		s.MustDoAs(t, bob.AccessToken, `mutation { createProfile(input: {handle: "bob", displayName: "Bob"}) { id } }`, nil, &bp)
		var post struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, title: "Trip", body: "hello"}) { id } }`, map[string]any{"a": ap.CreateProfile.ID}, &post)
		comment := func(token, author, body string) {
			t.Helper()
			s.MustDoAs(t, token, `mutation($p: ID!, $a: ID!, $b: String!) { createComment(input: {postID: $p, authorID: $a, body: $b}) { id } }`,
				map[string]any{"p": post.CreatePost.ID, "a": author, "b": body}, nil)
		}

		comment(bob.AccessToken, bp.CreateProfile.ID, "nice one")
		comment(alice.AccessToken, ap.CreateProfile.ID, "thanks") // her own post: no notification
		// The comment's event job enqueues the push job: wait (bounded) for
		// the delivery, then for every job to settle.
		for i := 0; i < 600 && len(e.apns.Accepted()) == 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		drain(t, s)
		got := e.apns.Accepted()
		if len(got) != 1 || got[0].Token != "alice-ios" {
			t.Fatalf("APNs got %d notifications, want 1 for alice", len(got))
		}
		aps := got[0].Payload["aps"].(map[string]any)
		if alert := aps["alert"].(map[string]any); alert["title"] != "New comment on Trip" || alert["body"] != "nice one" || got[0].Payload["postId"] != post.CreatePost.ID {
			t.Errorf("notification %v", got[0].Payload)
		}
		if n := len(e.fcm.Accepted()); n != 0 {
			t.Errorf("bob (the commenter) got %d notifications", n)
		}

		// Alice turns push off.
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createSettings(input: {profileID: $p, pushEnabled: false}) { id } }`, map[string]any{"p": ap.CreateProfile.ID}, nil)
		comment(bob.AccessToken, bp.CreateProfile.ID, "again")
		drain(t, s)
		// The opt-out holds for admins' notifications and topics too.
		s.MustDoAs(t, alice.AccessToken, `mutation { subscribeToTopic(token: "alice-ios", topic: "news") }`, nil, nil)
		if n := sendTo(t, s, "admin", alice.User.ID); n != 0 {
			t.Errorf("sendNotification to alice with push off queued for %d devices, want 0", n)
		}
		var out struct{ SendNotification int }
		s.MustDo(t, sendNotification, map[string]any{"topic": "news", "title": "topic"}, &out)
		if out.SendNotification != 0 {
			t.Errorf("topic notification queued for %d devices of opted-out users, want 0", out.SendNotification)
		}
		if n := sendTo(t, s, "bob", bob.User.ID); n != 1 {
			t.Errorf("sendNotification to bob queued for %d devices, want 1", n)
		}
		drain(t, s)
		if n := len(e.apns.Accepted()); n != 1 {
			t.Errorf("alice got %d notifications with push off, want still 1", n)
		}
	})
}

// TestPushOutage: both push services answer 503 to everything for a
// while; every notification is retried and delivered exactly once when
// they are back.
func TestPushOutage(t *testing.T) {
	pushBackends(t, func(t *testing.T, e pushEnv) {
		s := e.s
		var users []string
		var ios, android []string
		for i := range 4 {
			u := signUp(t, s, fmt.Sprintf("user%d@outage.example", i))
			users = append(users, u.User.ID)
			for j := range 5 {
				tok := fmt.Sprintf("u%d-d%d", i, j)
				p := "IOS"
				if j%2 == 1 {
					p = "ANDROID"
					android = append(android, tok)
				} else {
					ios = append(ios, tok)
				}
				s.MustDoAs(t, u.AccessToken, registerDevice, map[string]any{"p": p, "t": tok, "a": "com.example.app"}, nil)
			}
		}
		e.apns.SetDown(true)
		e.fcm.SetDown(true)
		if n := sendTo(t, s, "during the outage", users...); n != 20 {
			t.Fatalf("queued for %d devices, want 20", n)
		}
		// Down until every device was tried three times (at least 2 s of
		// Retry-After), at most 600 looks 50ms apart.
		tried := func() bool {
			for _, tok := range ios {
				if e.apns.Attempts(tok) < 3 {
					return false
				}
			}
			for _, tok := range android {
				if e.fcm.Attempts(tok) < 3 {
					return false
				}
			}
			return true
		}
		for i := 0; !tried(); i++ {
			if i == 600 {
				t.Fatal("devices not retried during the outage")
			}
			time.Sleep(50 * time.Millisecond)
		}
		e.apns.SetDown(false)
		e.fcm.SetDown(false)
		drain(t, s)
		for _, tok := range ios {
			if n := acceptedFor(e.apns.Accepted(), tok); n != 1 {
				t.Errorf("%s got the notification %d times, want 1", tok, n)
			}
		}
		for _, tok := range android {
			if n := acceptedFor(e.fcm.Accepted(), tok); n != 1 {
				t.Errorf("%s got the notification %d times, want 1", tok, n)
			}
		}
	})
}
