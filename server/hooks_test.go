package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln/runtime/job"
	"kiln/server/kilntest"
)

// The hooks app (testdata/hooksapp): the example app with hooks, triggers
// and a periodic job registered for these tests.
var (
	hooksOnce sync.Once
	hooksBin  string
	hooksErr  error
)

func hooksApp(t *testing.T) string {
	t.Helper()
	hooksOnce.Do(func() { hooksBin, hooksErr = kilntest.Build("testdata/hooksapp") })
	if hooksErr != nil {
		t.Fatal(hooksErr)
	}
	return hooksBin
}

// hooksBackends runs fn against the hooks app on SQLite and PostgreSQL,
// with env added; jobs are polled often and retried quickly, so tests wait
// on conditions (bounded by counts) rather than on the clock.
func hooksBackends(t *testing.T, env []string, fn func(t *testing.T, s *kilntest.Server)) {
	bin := hooksApp(t)
	base := append([]string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms",
		"KILN_JOBS_RETRY_BASE=10ms", "KILN_JOBS_RETRY_MAX=50ms"}, env...)
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, bin, append(base, "KILN_DATA_DIR="+t.TempDir())...))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, bin, append(base, "KILN_DATA_DIR="+t.TempDir(), "DATABASE_URL="+kilntest.PostgresURL(t))...))
	})
}

// eventually polls cond up to n times, 50ms apart, and fails with what
// when it never holds.
func eventually(t *testing.T, n int, what string, cond func() bool) {
	t.Helper()
	for range n {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("never happened: %s", what)
}

func postScore(t *testing.T, s *kilntest.Server, id string) float64 {
	t.Helper()
	var out struct{ Post *struct{ Score float64 } }
	s.MustDo(t, `query($id: ID!) { post(id: $id) { score } }`, map[string]any{"id": id}, &out)
	if out.Post == nil {
		t.Fatalf("post %s is gone", id)
	}
	return out.Post.Score
}

func createComment(s *kilntest.Server, t *testing.T, post, author, body string) *kilntest.Response {
	return s.Do(t, `mutation($p: ID!, $a: ID!, $b: String!) { createComment(input: {ownerID: "`+testOwner+`", postID: $p, authorID: $a, body: $b}) { id } }`,
		map[string]any{"p": post, "a": author, "b": body})
}

// TestHooks: a rejecting before-hook stores nothing and answers its error;
// a before-hook changes the input; an after-hook's write commits with the
// mutation and rolls back with it; a before-delete hook protects a record;
// delete hooks run on records a database cascade removes.
func TestHooks(t *testing.T) {
	hooksBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		author := createProfile(t, s, "author", "").ID

		r := s.Do(t, `mutation($a: ID!) { createPost(input: {ownerID: "`+testOwner+`", authorID: $a, body: "reject me"}) { id } }`, map[string]any{"a": author})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "body" || r.Errors[0].Message != "the hook refuses this body" {
			t.Fatalf("rejected create answered %+v", r.Errors)
		}
		if n := total(t, s, "", `{ posts { totalCount } }`, nil); n != 0 {
			// The anonymous reader sees public posts; the admin sees all.
			t.Fatalf("%d posts after a rejected create", n)
		}
		var all struct{ Posts struct{ TotalCount int } }
		s.MustDo(t, `{ posts { totalCount } }`, nil, &all)
		if all.Posts.TotalCount != 0 {
			t.Fatalf("the rejected post was stored: %d posts", all.Posts.TotalCount)
		}

		var changed struct{ CreatePost struct{ ID, Body string } }
		s.MustDo(t, `mutation($a: ID!) { createPost(input: {ownerID: "`+testOwner+`", authorID: $a, body: "change me"}) { id body } }`, map[string]any{"a": author}, &changed)
		if changed.CreatePost.Body != "changed by the hook" {
			t.Fatalf("before-hook did not change the input: %q", changed.CreatePost.Body)
		}
		post := changed.CreatePost.ID

		// The after-hook adds 1 to the post's score, then fails: both roll back.
		if r := createComment(s, t, post, author, "fail after"); len(r.Errors) == 0 {
			t.Fatal("a failing after-hook did not fail the mutation")
		}
		var comments struct{ Comments struct{ TotalCount int } }
		s.MustDo(t, `{ comments { totalCount } }`, nil, &comments)
		if comments.Comments.TotalCount != 0 || postScore(t, s, post) != 0 {
			t.Fatalf("after a failed after-hook: %d comments, score %v; want 0 and 0", comments.Comments.TotalCount, postScore(t, s, post))
		}
		if r := createComment(s, t, post, author, "fine"); len(r.Errors) != 0 {
			t.Fatal(r.Errors)
		}
		if got := postScore(t, s, post); got != 1 {
			t.Fatalf("after-hook's write: score %v, want 1", got)
		}

		// A before-delete hook refuses; the post stays.
		pinned := createPost(t, s, author, "pinned body", `, title: "pinned"`)
		r = s.Do(t, `mutation($id: ID!) { deletePost(id: $id) }`, map[string]any{"id": pinned})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "id" {
			t.Fatalf("delete of a pinned post answered %+v", r.Errors)
		}
		postScore(t, s, pinned)

		// Deleting a profile cascades to its likes in the database; the
		// likes' after-delete hook still runs (100 per like on the post).
		fan1 := createProfile(t, s, "fanone", "").ID
		fan2 := createProfile(t, s, "fantwo", "").ID
		for _, fan := range []string{fan1, fan2} {
			s.MustDo(t, `mutation($p: ID!, $post: ID!) { createLike(input: {ownerID: "`+testOwner+`", profileID: $p, postID: $post}) { id } }`,
				map[string]any{"p": fan, "post": post}, nil)
		}
		s.MustDo(t, `mutation($id: ID!) { deleteProfile(id: $id) }`, map[string]any{"id": fan1}, nil)
		if got := postScore(t, s, post); got != 101 {
			t.Fatalf("after a cascaded like delete: score %v, want 101", got)
		}
		// A like deleted directly runs it too.
		var likes struct {
			Likes struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		s.MustDo(t, `{ likes { edges { node { id } } } }`, nil, &likes)
		if len(likes.Likes.Edges) != 1 {
			t.Fatalf("%d likes left, want 1", len(likes.Likes.Edges))
		}
		s.MustDo(t, `mutation($id: ID!) { deleteLike(id: $id) }`, map[string]any{"id": likes.Likes.Edges[0].Node.ID}, nil)
		if got := postScore(t, s, post); got != 201 {
			t.Fatalf("after a like delete: score %v, want 201", got)
		}
	})
}

// receiver is a webhook endpoint on loopback that checks signatures and
// fails on demand.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	// failFirst: answer 500 to the first n attempts of every event.
	failFirst int
	// failBody: answer 500 to events whose new record has this body.
	failBody string
	attempts map[string]int       // by event id
	got      map[string]job.Event // events answered 200, by id
	bad      []string
}

func newReceiver(t *testing.T, secret string, failFirst int) (*receiver, *httptest.Server) {
	rc := &receiver{t: t, secret: secret, failFirst: failFirst, attempts: map[string]int{}, got: map[string]job.Event{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	{
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err := job.Verify(rc.secret, r.Header.Get(job.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			rc.bad = append(rc.bad, err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var e job.Event
		if err := json.Unmarshal(body, &e); err != nil {
			rc.bad = append(rc.bad, err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.attempts[e.ID]++
		var rec struct{ Body string }
		_ = json.Unmarshal(e.New, &rec)
		if rc.attempts[e.ID] <= rc.failFirst || (rc.failBody != "" && rec.Body == rc.failBody) {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		rc.got[e.ID] = e
	}
}

func (rc *receiver) delivered(body string) (job.Event, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, e := range rc.got {
		var rec struct{ Body string }
		if json.Unmarshal(e.New, &rec) == nil && rec.Body == body {
			return e, true
		}
	}
	return job.Event{}, false
}

type kilnJob struct {
	ID, Kind, Name, EventID, State string
	Attempt, MaxAttempts           int
	Errors                         []string
}

func jobsIn(t *testing.T, s *kilntest.Server, state string) []kilnJob {
	t.Helper()
	var out struct{ KilnJobs []kilnJob }
	s.MustDo(t, `query($s: String) { kilnJobs(state: $s, first: 100) { id kind name eventID state attempt maxAttempts errors } }`, map[string]any{"s": state}, &out)
	return out.KilnJobs
}

// TestTriggers: events are enqueued in the write's transaction (a
// rolled-back write never fires), delivered to a webhook that fails then
// succeeds with valid signatures, and to a Go handler; after the maximum
// attempts an event is discarded, visible to admins, and an admin retry
// delivers it.
func TestTriggers(t *testing.T) {
	const secret = "whsec-test-0123456789"
	const attempts = 3
	bin := hooksApp(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t, secret, attempts-1)
			env := []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms", "KILN_JOBS_RETRY_BASE=10ms",
				"KILN_JOBS_RETRY_MAX=50ms", "KILN_DATA_DIR=" + t.TempDir(), "HOOKS_WEBHOOK_URL=" + srv.URL,
				"HOOKS_WEBHOOK_SECRET=" + secret, fmt.Sprintf("HOOKS_WEBHOOK_ATTEMPTS=%d", attempts)}
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			s := kilntest.Start(t, bin, env...)
			author := createProfile(t, s, "author", "").ID
			post := createPost(t, s, author, "a post", `, title: "score me"`)

			// A Go handler sets the post's score.
			eventually(t, 400, "the Go handler ran", func() bool { return postScore(t, s, post) == 7 })

			// A comment whose after-hook fails rolls back: its event never
			// exists. The next one is delivered after two failed attempts.
			if r := createComment(s, t, post, author, "fail after"); len(r.Errors) == 0 {
				t.Fatal("a failing after-hook did not fail the mutation")
			}
			var ids []string
			for i := range 5 {
				var out struct{ CreateComment struct{ ID string } }
				s.MustDo(t, `mutation($p: ID!, $a: ID!, $b: String!) { createComment(input: {ownerID: "`+testOwner+`", postID: $p, authorID: $a, body: $b}) { id } }`,
					map[string]any{"p": post, "a": author, "b": fmt.Sprintf("comment %d", i)}, &out)
				ids = append(ids, out.CreateComment.ID)
			}
			for i, id := range ids {
				eventually(t, 600, "comment "+id+" delivered", func() bool { _, ok := rc.delivered(fmt.Sprintf("comment %d", i)); return ok })
				e, _ := rc.delivered(fmt.Sprintf("comment %d", i))
				if e.Model != "Comment" || e.Op != job.Create || e.RecordID != id || e.Trigger != "commentWebhook" || e.Old != nil && string(e.Old) != "null" {
					t.Fatalf("event %+v", e)
				}
				rc.mu.Lock()
				n := rc.attempts[e.ID]
				rc.mu.Unlock()
				if n != attempts {
					t.Fatalf("event %s arrived after %d attempts, want %d (two failures, then 200)", e.ID, n, attempts)
				}
			}
			if _, ok := rc.delivered("fail after"); ok {
				t.Fatal("the rolled-back comment's event was delivered")
			}
			// The engine marks them completed (asynchronously, after the 200).
			eventually(t, 600, "the events completed", func() bool {
				return countJobs(jobsIn(t, s, "completed"), "commentWebhook") == len(ids)
			})
			if n := countJobs(jobsIn(t, s, ""), "commentWebhook"); n != len(ids) {
				t.Fatalf("%d comment events in the engine, want %d (none for the rolled-back write)", n, len(ids))
			}

			// An event that always fails is discarded after its attempts,
			// admins see it, and their retry delivers it.
			rc.mu.Lock()
			rc.failBody = "always fails"
			rc.mu.Unlock()
			createComment(s, t, post, author, "always fails")
			var discarded kilnJob
			eventually(t, 600, "the event discarded", func() bool {
				for _, j := range jobsIn(t, s, "discarded") {
					if j.Name == "commentWebhook" {
						discarded = j
						return true
					}
				}
				return false
			})
			if discarded.Attempt != attempts || len(discarded.Errors) != attempts {
				t.Fatalf("discarded after %d attempts with %d errors, want %d", discarded.Attempt, len(discarded.Errors), attempts)
			}
			rc.mu.Lock()
			rc.failBody = ""
			rc.mu.Unlock()
			// Anyone but an admin is refused.
			if r := s.DoAs(t, "", `mutation($id: String!) { kilnRetryJob(id: $id) { id } }`, map[string]any{"id": discarded.ID}); r.Code() != "FORBIDDEN" && r.Code() != "UNAUTHENTICATED" {
				t.Fatalf("a signed-out retry answered %+v", r.Errors)
			}
			var retried struct{ KilnRetryJob kilnJob }
			s.MustDo(t, `mutation($id: String!) { kilnRetryJob(id: $id) { id state } }`, map[string]any{"id": discarded.ID}, &retried)
			eventually(t, 600, "the retried event delivered", func() bool { _, ok := rc.delivered("always fails"); return ok })

			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.bad) > 0 {
				t.Fatalf("bad deliveries: %v", rc.bad)
			}
		})
	}
}

// TestTriggerEventsOfOneWrite: a write that changes several records (a
// post's delete cascading, through ent, to its comments) enqueues one
// event per record in its transaction (on PostgreSQL one multi-row
// insert), each with the trigger's maximum attempts, all delivered with
// the old record; a delete refused by a hook enqueues none.
func TestTriggerEventsOfOneWrite(t *testing.T) {
	const secret = "whsec-test-0123456789"
	const attempts = 4
	rc, srv := newReceiver(t, secret, 0)
	hooksBackends(t, []string{"HOOKS_WEBHOOK_URL=" + srv.URL, "HOOKS_WEBHOOK_SECRET=" + secret, fmt.Sprintf("HOOKS_WEBHOOK_ATTEMPTS=%d", attempts)},
		func(t *testing.T, s *kilntest.Server) {
			author := createProfile(t, s, "author", "").ID
			deletes := func(ids map[string]bool) int {
				rc.mu.Lock()
				defer rc.mu.Unlock()
				n := 0
				for _, e := range rc.got {
					if e.Op == job.Delete && ids[e.RecordID] {
						n++
					}
				}
				return n
			}
			comments := func(post string) map[string]bool {
				ids := map[string]bool{}
				for i := range 3 {
					var out struct{ CreateComment struct{ ID string } }
					s.MustDo(t, `mutation($p: ID!, $a: ID!, $b: String!) { createComment(input: {ownerID: "`+testOwner+`", postID: $p, authorID: $a, body: $b}) { id } }`,
						map[string]any{"p": post, "a": author, "b": fmt.Sprintf("%s comment %d", post, i)}, &out)
					ids[out.CreateComment.ID] = true
				}
				return ids
			}

			// Refused by the post's before-delete hook: no event.
			pinned := createPost(t, s, author, "pinned body", `, title: "pinned"`)
			pinnedComments := comments(pinned)
			if r := s.Do(t, `mutation($id: ID!) { deletePost(id: $id) }`, map[string]any{"id": pinned}); r.Code() != "BAD_USER_INPUT" {
				t.Fatalf("delete of a pinned post answered %+v", r.Errors)
			}

			post := createPost(t, s, author, "a post", "")
			ids := comments(post)
			s.MustDo(t, `mutation($id: ID!) { deletePost(id: $id) }`, map[string]any{"id": post}, nil)
			eventually(t, 600, "the three delete events delivered", func() bool { return deletes(ids) == len(ids) })
			rc.mu.Lock()
			for _, e := range rc.got {
				if e.Op != job.Delete || !ids[e.RecordID] {
					continue
				}
				var old struct{ ID, Body string }
				if err := json.Unmarshal(e.Old, &old); err != nil || old.ID != e.RecordID || old.Body == "" || e.New != nil && string(e.New) != "null" {
					t.Errorf("delete event %s: old %s (%v), new %s", e.ID, e.Old, err, e.New)
				}
			}
			rc.mu.Unlock()
			// Each event is its own job, with the trigger's attempts.
			n := 0
			for _, j := range jobsIn(t, s, "") {
				if j.Name == "commentWebhook" {
					n++
					if j.MaxAttempts != attempts {
						t.Errorf("job %s has %d max attempts, want %d", j.ID, j.MaxAttempts, attempts)
					}
				}
			}
			// 6 creates, 3 deletes; none for the refused delete.
			if n != 9 {
				t.Fatalf("%d commentWebhook jobs, want 9", n)
			}
			if got := deletes(pinnedComments); got != 0 {
				t.Fatalf("%d delete events for the comments of the post whose delete was refused", got)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.bad) > 0 {
				t.Fatalf("bad deliveries: %v", rc.bad)
			}
		})
}

// TestWebhookConnectionsReused: deliveries to one receiver reuse their
// connections (one per worker at most, plus the few a busy moment adds),
// instead of opening one for most events as Go's default of 2 idle
// connections per host did with more workers than that.
func TestWebhookConnectionsReused(t *testing.T) {
	const secret = "whsec-test-0123456789"
	const workers, events = 4, 60
	bin := hooksApp(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			rc := &receiver{t: t, secret: secret, attempts: map[string]int{}, got: map[string]job.Event{}}
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(rc)
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			env := []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms", fmt.Sprintf("KILN_JOBS_WORKERS=%d", workers),
				"KILN_DATA_DIR=" + t.TempDir(), "HOOKS_WEBHOOK_URL=" + srv.URL, "HOOKS_WEBHOOK_SECRET=" + secret}
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			s := kilntest.Start(t, bin, env...)
			author := createProfile(t, s, "author", "").ID
			post := createPost(t, s, author, "a post", "")
			for i := range events {
				if r := createComment(s, t, post, author, fmt.Sprintf("comment %d", i)); len(r.Errors) > 0 {
					t.Fatal(r.Errors)
				}
			}
			eventually(t, 600, "every event delivered", func() bool {
				rc.mu.Lock()
				defer rc.mu.Unlock()
				return len(rc.got) == events
			})
			t.Logf("%d connections for %d events", conns.Load(), events)
			if n := conns.Load(); n > 3*workers {
				t.Fatalf("%d connections for %d events from %d workers, want at most %d", n, events, workers, 3*workers)
			}
		})
	}
}

func countJobs(jobs []kilnJob, name string) int {
	n := 0
	for _, j := range jobs {
		if j.Name == name {
			n++
		}
	}
	return n
}

// TestExampleCode checks the example app's own code (code.go at the
// module root): Post.likeCount kept by hooks on Like, through the API, a
// delete and a cascade; the webhook of new public posts.
func TestExampleCode(t *testing.T) {
	const secret = "example-webhook-secret"
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t, secret, 0)
			env := []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_DATA_DIR=" + t.TempDir(), "KILN_JOBS_POLL_INTERVAL=20ms",
				"NEW_POST_WEBHOOK_URL=" + srv.URL, "NEW_POST_WEBHOOK_SECRET=" + secret}
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			s := kilntest.Start(t, serverBin, env...)
			likeCount := func(id string) int {
				var out struct{ Post struct{ LikeCount int } }
				s.MustDo(t, `query($id: ID!) { post(id: $id) { likeCount } }`, map[string]any{"id": id}, &out)
				return out.Post.LikeCount
			}
			alice := signUp(t, s, "alice@example.com")
			bob := signUp(t, s, "bob@example.com")
			var ap, bp struct{ CreateProfile struct{ ID string } }
			s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
			s.MustDoAs(t, bob.AccessToken, `mutation { createProfile(input: {handle: "bob", displayName: "Bob"}) { id } }`, nil, &bp)
			var pub, priv struct{ CreatePost struct{ ID string } }
			s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "public news"}) { id } }`, nil, &pub)
			s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "private note", visibility: PRIVATE}) { id } }`, nil, &priv)
			post := pub.CreatePost.ID

			var al, bl struct{ CreateLike struct{ ID string } }
			s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createLike(input: {postID: $p}) { id } }`, map[string]any{"p": post}, &al)
			s.MustDoAs(t, bob.AccessToken, `mutation($p: ID!) { createLike(input: {postID: $p}) { id } }`, map[string]any{"p": post}, &bl)
			if n := likeCount(post); n != 2 {
				t.Fatalf("likeCount %d after two likes, want 2", n)
			}
			s.MustDoAs(t, alice.AccessToken, `mutation($id: ID!) { deleteLike(id: $id) }`, map[string]any{"id": al.CreateLike.ID}, nil)
			if n := likeCount(post); n != 1 {
				t.Fatalf("likeCount %d after an unlike, want 1", n)
			}
			// Bob's profile goes (admin delete): its like goes by cascade.
			s.MustDo(t, `mutation($id: ID!) { deleteProfile(id: $id) }`, map[string]any{"id": bp.CreateProfile.ID}, nil)
			if n := likeCount(post); n != 0 {
				t.Fatalf("likeCount %d after the liker's profile was deleted, want 0", n)
			}
			// An account deleted with its records: its like goes through
			// the hooks too.
			carol := signUp(t, s, "carol@example.com")
			s.MustDoAs(t, carol.AccessToken, `mutation { createProfile(input: {handle: "carol", displayName: "Carol"}) { id } }`, nil, nil)
			s.MustDoAs(t, carol.AccessToken, `mutation($p: ID!) { createLike(input: {postID: $p}) { id } }`, map[string]any{"p": post}, nil)
			if n := likeCount(post); n != 1 {
				t.Fatalf("likeCount %d after carol's like, want 1", n)
			}
			s.MustDoAs(t, carol.AccessToken, `mutation { deleteAccount(password: "correct horse battery") }`, nil, nil)
			if n := likeCount(post); n != 0 {
				t.Fatalf("likeCount %d after carol deleted her account, want 0", n)
			}
			// The client cannot set it.
			if r := s.DoAs(t, alice.AccessToken, `mutation($id: ID!) { updatePost(id: $id, input: {likeCount: 9}) { id } }`, map[string]any{"id": post}); len(r.Errors) == 0 {
				t.Fatal("a client set likeCount")
			}

			// The webhook gets the public post, not the private one.
			eventually(t, 600, "the public post's webhook", func() bool { _, ok := rc.delivered("public news"); return ok })
			e, _ := rc.delivered("public news")
			if e.Trigger != "newPublicPost" || e.RecordID != post || e.Model != "Post" {
				t.Fatalf("event %+v", e)
			}
			var rec map[string]any
			if err := json.Unmarshal(e.New, &rec); err != nil || rec["visibility"] != "PUBLIC" || rec["authorID"] != ap.CreateProfile.ID {
				t.Fatalf("event record %s (%v)", e.New, err)
			}
			eventually(t, 600, "the event completed", func() bool { return countJobs(jobsIn(t, s, "completed"), "newPublicPost") == 1 })
			if n := countJobs(jobsIn(t, s, ""), "newPublicPost"); n != 1 {
				t.Fatalf("%d newPublicPost events, want 1 (none for the private post)", n)
			}
		})
	}
}

// TestPeriodic: a periodic job runs once per tick, also with two instances
// on one PostgreSQL (only the elected leader enqueues ticks, unique per
// period): the work done (a post's score, +1 per run) equals the ticks the
// engine completed, and no period has two ticks.
func TestPeriodic(t *testing.T) {
	bin := hooksApp(t)
	for _, c := range []struct {
		backend   string
		instances int
	}{{"sqlite", 1}, {"postgres", 2}} {
		t.Run(c.backend, func(t *testing.T) {
			t.Parallel()
			dbEnv := "KILN_DATA_DIR=" + t.TempDir()
			if c.backend == "postgres" {
				dbEnv = "DATABASE_URL=" + kilntest.PostgresURL(t)
			}
			env := func(extra ...string) []string {
				e := []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms", dbEnv}
				if c.backend == "postgres" {
					e = append(e, "KILN_DATA_DIR="+t.TempDir())
				}
				return append(e, extra...)
			}
			// The post the ticks count on, made before any tick.
			first := kilntest.Start(t, bin, env()...)
			author := createProfile(t, first, "ticker", "").ID
			post := createPost(t, first, author, "counts ticks", `, title: "ticks"`)
			if err := first.Stop(); err != nil {
				t.Fatal(err)
			}
			var servers []*kilntest.Server
			for range c.instances {
				servers = append(servers, kilntest.Start(t, bin, env("HOOKS_TICK=1s")...))
			}
			s := servers[0]
			eventually(t, 1200, "four ticks completed", func() bool { return countJobs(jobsIn(t, s, "completed"), "tick") >= 4 })
			for _, srv := range servers {
				if err := srv.Stop(); err != nil {
					t.Fatal(err)
				}
			}
			// Read with an instance that has no periodic job (ticks still
			// queued are cancelled by it, never run).
			r := kilntest.Start(t, bin, env()...)
			var ticks []kilnJob
			for _, j := range jobsIn(t, r, "completed") {
				if j.Name == "tick" {
					ticks = append(ticks, j)
				}
			}
			if score := postScore(t, r, post); int(score) != len(ticks) {
				t.Fatalf("score %v after %d completed ticks: each tick must run exactly once", score, len(ticks))
			}
			for _, j := range ticks {
				if j.Attempt != 1 {
					t.Fatalf("tick %+v took %d attempts", j, j.Attempt)
				}
			}
		})
	}
}

// TestKillWithQueuedEvents: with 100 events queued and deliveries in
// flight, the server is killed (SIGKILL); after a restart every event is
// delivered (counted by event id), and only those in flight at the kill
// arrive twice.
func TestKillWithQueuedEvents(t *testing.T) {
	bin := hooksApp(t)
	const events = 100
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			hold := make(chan struct{})
			held := map[string]bool{}      // event ids of requests held when the server died
			seen := map[string]int{}       // requests per event id
			done := map[string]job.Event{} // answered 200
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var e job.Event
				if err := json.Unmarshal(body, &e); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				seen[e.ID]++
				select {
				case <-hold: // released: answer at once
				default:
					held[e.ID] = true
					mu.Unlock()
					<-hold // in flight until the server is dead
					return
				}
				done[e.ID] = e
				mu.Unlock()
			}))
			defer srv.Close()
			env := []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms", "KILN_JOBS_RETRY_BASE=10ms",
				"KILN_JOBS_RETRY_MAX=50ms", "KILN_JOBS_WORKERS=4", "KILN_JOBS_TIMEOUT=2s", "KILN_JOBS_RESCUE_AFTER=3s",
				"HOOKS_WEBHOOK_URL=" + srv.URL, "HOOKS_WEBHOOK_SECRET=s"}
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t), "KILN_DATA_DIR="+t.TempDir())
			} else {
				env = append(env, "KILN_DATA_DIR="+t.TempDir())
			}
			s := kilntest.Start(t, bin, env...)
			author := createProfile(t, s, "author", "").ID
			post := createPost(t, s, author, "a post", "")
			for i := range events {
				if r := createComment(s, t, post, author, fmt.Sprintf("kill %d", i)); len(r.Errors) != 0 {
					t.Fatal(r.Errors)
				}
			}
			eventually(t, 600, "four deliveries in flight", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) >= 4 })
			s.Kill()
			mu.Lock()
			inFlight := len(held)
			mu.Unlock()
			close(hold)

			kilntest.Start(t, bin, env...)
			eventually(t, 2400, "every event delivered after the restart", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(done) == events
			})
			mu.Lock()
			defer mu.Unlock()
			bodies := map[string]bool{}
			for id, e := range done {
				var rec struct{ Body string }
				_ = json.Unmarshal(e.New, &rec)
				bodies[rec.Body] = true
				if seen[id] > 1 && !held[id] {
					t.Errorf("event %s (%s) arrived %d times but was not in flight at the kill", id, rec.Body, seen[id])
				}
			}
			if len(bodies) != events {
				t.Fatalf("%d distinct comments delivered, want %d", len(bodies), events)
			}
			t.Logf("%d events, %d in flight at the kill (delivered again)", events, inFlight)
		})
	}
}

// TestEventsAcrossInstances: two instances on one PostgreSQL share the
// events: every event is delivered exactly once when every attempt
// succeeds, whichever instance wrote it and whichever works it.
func TestEventsAcrossInstances(t *testing.T) {
	bin := hooksApp(t)
	const secret = "two-instances-secret"
	rc, srv := newReceiver(t, secret, 0)
	dbURL := kilntest.PostgresURL(t)
	env := func() []string {
		return []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms", "DATABASE_URL=" + dbURL,
			"KILN_DATA_DIR=" + t.TempDir(), "HOOKS_WEBHOOK_URL=" + srv.URL, "HOOKS_WEBHOOK_SECRET=" + secret}
	}
	a := kilntest.Start(t, bin, env()...)
	b := kilntest.Start(t, bin, env()...)
	author := createProfile(t, a, "author", "").ID
	post := createPost(t, a, author, "a post", "")
	const n = 60
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		if r := createComment(s, t, post, author, fmt.Sprintf("across %d", i)); len(r.Errors) != 0 {
			t.Fatal(r.Errors)
		}
	}
	eventually(t, 1200, "every event delivered", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return len(rc.got) == n
	})
	eventually(t, 600, "the events completed", func() bool { return countJobs(jobsIn(t, b, "completed"), "commentWebhook") == n })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for id, k := range rc.attempts {
		if k != 1 {
			t.Errorf("event %s arrived %d times", id, k)
		}
	}
	if len(rc.bad) > 0 {
		t.Fatalf("bad deliveries: %v", rc.bad)
	}
}

// TestWebhookReceiverDown: while the receiver is down (connection
// refused), attempts fail and are retried; once it is up, the event
// arrives, signed.
func TestWebhookReceiverDown(t *testing.T) {
	bin := hooksApp(t)
	const secret = "receiver-down-secret"
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close() // down: nothing listens there
			env := []string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_JOBS_POLL_INTERVAL=20ms", "KILN_JOBS_RETRY_BASE=10ms",
				"KILN_JOBS_RETRY_MAX=50ms", "KILN_DATA_DIR=" + t.TempDir(), "HOOKS_WEBHOOK_URL=http://" + addr,
				"HOOKS_WEBHOOK_SECRET=" + secret, "HOOKS_WEBHOOK_ATTEMPTS=100000"}
			if backend == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			s := kilntest.Start(t, bin, env...)
			author := createProfile(t, s, "author", "").ID
			post := createPost(t, s, author, "a post", "")
			createComment(s, t, post, author, "while down")
			eventually(t, 1200, "three refused attempts", func() bool {
				for _, j := range jobsIn(t, s, "") {
					if j.Name == "commentWebhook" && len(j.Errors) >= 3 && strings.Contains(j.Errors[0], "connection refused") {
						return true
					}
				}
				return false
			})
			ln, err = net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listen again on %s: %v", addr, err)
			}
			rc := &receiver{t: t, secret: secret, attempts: map[string]int{}, got: map[string]job.Event{}}
			srv := httptest.NewUnstartedServer(rc)
			srv.Listener.Close()
			srv.Listener = ln
			srv.Start()
			defer srv.Close()
			eventually(t, 1200, "delivered once the receiver is up", func() bool { _, ok := rc.delivered("while down"); return ok })
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.bad) > 0 {
				t.Fatal(rc.bad)
			}
		})
	}
}
