package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/server/kilntest"
)

type created struct {
	Data struct {
		PostCreated struct{ ID, Body string }
	}
	Errors []kilntest.Error
}

func decodeNext(t *testing.T, m kilntest.Message) created {
	t.Helper()
	var c created
	if err := json.Unmarshal(m.Payload, &c); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	return c
}

// profileFor signs up a user and creates their profile.
func profileFor(t *testing.T, s *kilntest.Server, name string) (session, string) {
	t.Helper()
	u := signUp(t, s, name+"@example.com")
	var p struct{ CreateProfile struct{ ID string } }
	s.MustDoAs(t, u.AccessToken, `mutation($h: String!) { createProfile(input: {handle: $h, displayName: "x"}) { id } }`, map[string]any{"h": name}, &p)
	return u, p.CreateProfile.ID
}

// createPosts creates n posts in batches of aliased mutations.
func createPosts(t *testing.T, s *kilntest.Server, token, author, visibility, prefix string, n int) {
	t.Helper()
	for done := 0; done < n; {
		var q strings.Builder
		q.WriteString("mutation {")
		batch := min(18, n-done)
		for i := 0; i < batch; i++ {
			fmt.Fprintf(&q, ` p%d: createPost(input: {authorID: "%s", body: "%s %d", visibility: %s}) { id }`, i, author, prefix, done+i, visibility)
		}
		q.WriteString(" }")
		s.MustDoAs(t, token, q.String(), nil, nil)
		done += batch
	}
}

// TestSubscriptionsAreAuthorizedPerEvent: two users, many interleaved
// private events, zero cross-deliveries; public events reach both.
func TestSubscriptionsAreAuthorizedPerEvent(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice, ap := profileFor(t, s, "alice")
		bob, bp := profileFor(t, s, "bob")
		wa := s.Dial(t, map[string]any{"Authorization": "Bearer " + alice.AccessToken})
		wb := s.Dial(t, map[string]any{"accessToken": bob.AccessToken})
		sa := wa.Subscribe(t, `subscription { postCreated { id body } }`, nil)
		sb := wb.Subscribe(t, `subscription { postCreated { id body } }`, nil)
		filtered := wb.Subscribe(t, `subscription { postCreated(where: {bodyHasPrefix: "public"}) { id body } }`, nil)
		time.Sleep(200 * time.Millisecond) // subscriptions registered

		const perUser = 5000 // 10,000 interleaved private events
		var wg sync.WaitGroup
		for _, u := range []struct {
			token, profile, prefix string
		}{{alice.AccessToken, ap, "alice"}, {bob.AccessToken, bp, "bob"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				createPosts(t, s, u.token, u.profile, "PRIVATE", u.prefix, perUser)
			}()
		}
		wg.Wait()
		createPosts(t, s, alice.AccessToken, ap, "PUBLIC", "public", 1)

		count := func(ch <-chan kilntest.Message, own string) (mine, other, public int) {
			for {
				m, ok := kilntest.Next(ch, 5*time.Second)
				if !ok {
					return
				}
				c := decodeNext(t, m)
				if len(c.Errors) > 0 || m.Type != "next" {
					t.Fatalf("subscription message: %s %s", m.Type, m.Payload)
				}
				switch {
				case strings.HasPrefix(c.Data.PostCreated.Body, "public"):
					public++
					return
				case strings.HasPrefix(c.Data.PostCreated.Body, own):
					mine++
				default:
					other++
				}
			}
		}
		am, ao, apub := count(sa, "alice")
		bm, bo, bpub := count(sb, "bob")
		if ao != 0 || bo != 0 {
			t.Fatalf("cross-deliveries: alice got %d of bob's, bob got %d of alice's", ao, bo)
		}
		if am != perUser || bm != perUser || apub != 1 || bpub != 1 {
			t.Fatalf("deliveries: alice %d own + %d public, bob %d own + %d public", am, apub, bm, bpub)
		}
		m, ok := kilntest.Next(filtered, 5*time.Second)
		if !ok || !strings.HasPrefix(decodeNext(t, m).Data.PostCreated.Body, "public") {
			t.Fatalf("filtered subscription: %+v", m)
		}
	})
}

// TestSubscriptionUpdatesDeletesAndCascades covers updated and deleted
// events, including records deleted by a cascade.
func TestSubscriptionUpdatesDeletesAndCascades(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	u, p := profileFor(t, s, "carol")
	w := s.Dial(t, map[string]any{"accessToken": u.AccessToken})
	upd := w.Subscribe(t, `subscription { postUpdated(where: {visibility: PUBLIC}) { id body version } }`, nil)
	del := w.Subscribe(t, `subscription { postDeleted }`, nil)
	time.Sleep(200 * time.Millisecond)
	var c struct{ CreatePost struct{ ID string } }
	s.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "v1"}) { id } }`, map[string]any{"a": p}, &c)
	s.MustDoAs(t, u.AccessToken, `mutation($id: ID!) { updatePost(id: $id, input: {body: "v2"}) { id } }`, map[string]any{"id": c.CreatePost.ID}, nil)
	m, ok := kilntest.Next(upd, 5*time.Second)
	if !ok || !strings.Contains(string(m.Payload), `"body":"v2"`) {
		t.Fatalf("postUpdated: %+v", m)
	}
	// Deleting the profile cascades to its posts: a deleted event per post.
	s.MustDo(t, `mutation($id: ID!) { deleteProfile(id: $id) }`, map[string]any{"id": p}, nil)
	m, ok = kilntest.Next(del, 5*time.Second)
	if !ok || !strings.Contains(string(m.Payload), c.CreatePost.ID) {
		t.Fatalf("postDeleted by cascade: %+v", m)
	}
}

// TestSubscriptionEndsOnSignOut: signing out everywhere closes live
// subscriptions with 4403 within the revalidation interval.
func TestSubscriptionEndsOnSignOut(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_WS_REVALIDATE=500ms")
	u, _ := profileFor(t, s, "dave")
	w := s.Dial(t, map[string]any{"accessToken": u.AccessToken})
	w.Subscribe(t, `subscription { postCreated { id } }`, nil)
	// Another user in the same shared group stays subscribed.
	other, op := profileFor(t, s, "erin")
	wo := s.Dial(t, map[string]any{"accessToken": other.AccessToken})
	so := wo.Subscribe(t, `subscription { postCreated { id } }`, nil)
	// A bad token is refused at connection_init with 4403.
	if _, err := s.DialE(map[string]any{"accessToken": "nope"}); err == nil || !strings.Contains(err.Error(), "4403") {
		t.Fatalf("bad token at init: %v", err)
	}
	s.MustDoAs(t, u.AccessToken, `mutation { signOutEverywhere }`, nil, nil)
	code, err := w.WaitClosed(8 * time.Second)
	if err != nil || code != 4403 {
		t.Fatalf("after sign-out: code %d, %v", code, err)
	}
	createPosts(t, s, other.AccessToken, op, "PRIVATE", "erin", 1)
	if m, ok := kilntest.Next(so, 5*time.Second); !ok || m.Type != "next" {
		t.Fatalf("the other member after the sign-out: %+v, %v", m, ok)
	}
}

// TestSSE receives a subscription event over Server-Sent Events.
func TestSSE(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	u, p := profileFor(t, s, "erin")
	body := strings.NewReader(`{"query":"subscription { postCreated { body } }"}`)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+u.AccessToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "over sse") {
				got <- sc.Text()
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	s.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "over sse"}) { id } }`, map[string]any{"a": p}, nil)
	select {
	case line := <-got:
		t.Logf("sse: %s", line)
	case <-time.After(5 * time.Second):
		t.Fatal("no SSE event")
	}
}

// redisURL returns KILN_TEST_REDIS_URL, or skips (fails when
// KILN_REQUIRE_REDIS=1).
func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("KILN_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("KILN_REQUIRE_REDIS") == "1" {
			t.Fatal("KILN_REQUIRE_REDIS=1 but KILN_TEST_REDIS_URL is not set")
		}
		t.Skip("Redis test skipped: export KILN_TEST_REDIS_URL=$(.ci/redis.sh start)")
	}
	return u
}

// TestTwoInstancesShareEvents: a mutation on one instance reaches a
// subscriber on another through PostgreSQL and Redis; a Redis restart ends
// subscriptions with RESYNC, and new ones work once Redis is back.
func TestTwoInstancesShareEvents(t *testing.T) {
	redis := kilntest.PrivateRedis(t) // restarted below
	rurl := redis.URL
	db := kilntest.PostgresURL(t)
	env := []string{"DATABASE_URL=" + db, "REDIS_URL=" + rurl, "KILN_ADMIN_SECRET=" + adminSecret}
	// One data directory: both instances sign with the same key file.
	dir := t.TempDir()
	a := kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+dir)...)
	b := kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+dir)...)
	u, p := profileFor(t, a, "frank")
	w := b.Dial(t, map[string]any{"accessToken": u.AccessToken})
	sub := w.Subscribe(t, `subscription { postCreated { body } }`, nil)
	time.Sleep(300 * time.Millisecond)
	a.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "across instances"}) { id } }`, map[string]any{"a": p}, nil)
	m, ok := kilntest.Next(sub, 5*time.Second)
	if !ok || !strings.Contains(string(m.Payload), "across instances") {
		t.Fatalf("cross-instance event: %+v", m)
	}
	// The lag from a's publish to b's subscription is measured through Redis.
	if got := grepLines(metricsText(t, b), `kiln_pubsub_lag_seconds_count{backend="redis"}`); got == "" ||
		strings.HasSuffix(got, " 0") {
		t.Errorf("kiln_pubsub_lag_seconds on the receiving instance: %q", got)
	}
	if out, err := redis.Command("restart").CombinedOutput(); err != nil {
		t.Fatalf("redis restart: %v %s", err, out)
	}
	m, ok = kilntest.Next(sub, 10*time.Second)
	if !ok || !strings.Contains(string(m.Payload), "RESYNC") {
		t.Fatalf("after a Redis restart the subscriber should get RESYNC, got %+v (ok %v)", m, ok)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		sub2 := w.Subscribe(t, `subscription { postCreated { body } }`, nil)
		time.Sleep(300 * time.Millisecond)
		a.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "after restart"}) { id } }`, map[string]any{"a": p}, nil)
		if m, ok := kilntest.Next(sub2, 3*time.Second); ok && strings.Contains(string(m.Payload), "after restart") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("delivery did not resume after the Redis restart")
		}
	}
}

// TestViewerShareKey: connections share subscriptions only with viewers who
// see data the same way; a refreshed token of the same user keeps the key.
func TestViewerShareKey(t *testing.T) {
	id := uuid.New()
	key := func(v *access.Viewer) string {
		if v == nil {
			return viewerShareKey(context.Background())
		}
		return viewerShareKey(access.With(context.Background(), v))
	}
	user := key(&access.Viewer{ID: id, Roles: []string{"user"}, TokenVersion: 3})
	if again := key(&access.Viewer{ID: id, Roles: []string{"user"}, TokenVersion: 3}); again != user {
		t.Errorf("the same user with another token: %q, want %q", again, user)
	}
	for name, v := range map[string]*access.Viewer{
		"another user":    {ID: uuid.New(), Roles: []string{"user"}, TokenVersion: 3},
		"another role":    {ID: id, Roles: []string{"user", "moderator"}, TokenVersion: 3},
		"other claims":    {ID: id, Roles: []string{"user"}, TokenVersion: 3, Claims: map[string]any{"tenant": "a"}},
		"admin":           {Admin: true, Roles: []string{"admin"}},
		"anonymous (nil)": nil,
	} {
		if k := key(v); k == user || k == "" {
			t.Errorf("%s: key %q", name, k)
		}
	}
	if key(nil) != key(nil) || key(&access.Viewer{Admin: true}) != key(&access.Viewer{Admin: true}) {
		t.Error("anonymous visitors, or admins, do not share")
	}
}

// TestSubscriptionSharedAcrossViewers: identical viewer-independent
// subscriptions of different viewers (two users and an anonymous visitor)
// run as one group, and each event still reaches only the viewers who may
// read it; a selection with a relation (files) keeps a group per viewer. A member
// whose token is refreshed to another user then gets that user's events,
// and no longer the previous user's.
func TestSubscriptionSharedAcrossViewers(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	alice, ap := profileFor(t, s, "alice")
	bob, bp := profileFor(t, s, "bob")
	const q = `subscription { postCreated { id body } }`
	wa := s.Dial(t, map[string]any{"accessToken": alice.AccessToken})
	wb := s.Dial(t, map[string]any{"accessToken": bob.AccessToken})
	wn := s.Dial(t, nil)
	sa := wa.Subscribe(t, q, nil)
	sb := wb.Subscribe(t, q, nil)
	sn := wn.Subscribe(t, q, nil)
	// Files are a relation, read per viewer: this one is not shared.
	rel := wb.Subscribe(t, `subscription { postCreated { id body attachments { id } } }`, nil)
	time.Sleep(200 * time.Millisecond) // subscriptions registered

	// expect reads the next bodies of ch: exactly want, in order.
	expect := func(name string, ch <-chan kilntest.Message, want ...string) {
		t.Helper()
		for _, w := range want {
			m, ok := kilntest.Next(ch, 5*time.Second)
			if !ok {
				t.Fatalf("%s: no message, want %q", name, w)
			}
			c := decodeNext(t, m)
			if m.Type != "next" || len(c.Errors) > 0 {
				t.Fatalf("%s: %s %s", name, m.Type, m.Payload)
			}
			if got := c.Data.PostCreated.Body; got != w {
				t.Fatalf("%s: got %q, want %q", name, got, w)
			}
		}
	}
	createPosts(t, s, alice.AccessToken, ap, "PRIVATE", "alice-private", 1)
	createPosts(t, s, bob.AccessToken, bp, "PRIVATE", "bob-private", 1)
	createPosts(t, s, bob.AccessToken, bp, "PUBLIC", "public", 1)
	expect("alice", sa, "alice-private 0", "public 0")
	expect("bob", sb, "bob-private 0", "public 0")
	expect("anonymous", sn, "public 0")
	expect("bob, with a relation", rel, "bob-private 0", "public 0")
	// 3 events, each taken from the bus by 2 groups: the shared one and
	// bob's own for the selection with a relation (per viewer it would be 4).
	if n := s.Metric(t, `kiln_pubsub_lag_seconds_count{backend="memory"}`); n != 6 {
		t.Fatalf("events taken from the bus: %v, want 6 (3 events × 2 groups)", n)
	}

	// Bob's connection switches to alice by a token refresh: the shared
	// subscription stays and follows the new viewer.
	if err := wb.Ping(map[string]any{"accessToken": alice.AccessToken}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	createPosts(t, s, bob.AccessToken, bp, "PRIVATE", "bob-private", 1)
	createPosts(t, s, alice.AccessToken, ap, "PRIVATE", "alice-private", 1)
	createPosts(t, s, bob.AccessToken, bp, "PUBLIC", "public", 1)
	expect("bob's connection, now alice", sb, "alice-private 0", "public 0")
	expect("alice", sa, "alice-private 0", "public 0")
	expect("anonymous", sn, "public 0")
}

// TestSubscriptionSelectsEdges: a subscription may select relations of the
// record (loaded with the subscriber's rules), also nested.
func TestSubscriptionSelectsEdges(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	alice, ap := profileFor(t, s, "alice")
	w := s.Dial(t, map[string]any{"accessToken": alice.AccessToken})
	sub := w.Subscribe(t, `subscription { postCreated { id author { handle posts(first: 1) { totalCount } } } }`, nil)
	time.Sleep(200 * time.Millisecond)
	s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "with an edge"}) { id } }`, map[string]any{"a": ap}, nil)
	m, ok := kilntest.Next(sub, 5*time.Second)
	if !ok {
		t.Fatal("no event")
	}
	var got struct {
		Data struct {
			PostCreated struct {
				ID     string
				Author struct {
					Handle string
					Posts  struct{ TotalCount int }
				}
			}
		}
		Errors []kilntest.Error
	}
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	if len(got.Errors) > 0 || got.Data.PostCreated.Author.Handle != "alice" || got.Data.PostCreated.Author.Posts.TotalCount != 1 {
		t.Fatalf("event with edges: %s", m.Payload)
	}
}

// TestWebSocketAdminSecret: connection_init with the admin secret makes an
// admin connection; a wrong secret, or any secret when none is configured,
// is refused with 4403 (the same check as HTTP).
func TestWebSocketAdminSecret(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	if _, err := s.DialE(map[string]any{"X-Kiln-Admin-Secret": adminSecret + "x"}); err == nil || !strings.Contains(err.Error(), "4403") {
		t.Fatalf("wrong admin secret at init: %v", err)
	}
	w, err := s.DialE(map[string]any{"X-Kiln-Admin-Secret": adminSecret})
	if err != nil {
		t.Fatalf("admin secret at init: %v", err)
	}
	// Private posts are readable by their owner only: the admin sees them.
	alice, ap := profileFor(t, s, "alice")
	sub := w.Subscribe(t, `subscription { postCreated { id body } }`, nil)
	time.Sleep(200 * time.Millisecond)
	createPosts(t, s, alice.AccessToken, ap, "PRIVATE", "private", 1)
	if m, ok := kilntest.Next(sub, 5*time.Second); !ok || !strings.Contains(string(m.Payload), "private 0") {
		t.Fatalf("admin connection did not receive a private post: %+v, %v", m, ok)
	}

	none := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	if _, err := none.DialE(map[string]any{"X-Kiln-Admin-Secret": adminSecret}); err == nil || !strings.Contains(err.Error(), "4403") {
		t.Fatalf("admin secret on a server without one: %v", err)
	}
}
