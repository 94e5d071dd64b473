package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"kiln/graph"
	"kiln/server/kilntest"
)

var serverBin string

// adminSecret makes the CRUD tests run as admin (rules are tested on their own).
const adminSecret = "test-admin-secret-0123456789"

// testOwner owns the records the admin creates in CRUD tests.
const testOwner = "00000000-0000-4000-8000-0000000000aa"

func TestMain(m *testing.M) {
	bin, err := kilntest.Build("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = bin
	if os.Getenv("KILN_TEST_POSTGRES_URL") == "" {
		fmt.Fprintln(os.Stderr, "note: PostgreSQL end-to-end tests are skipped; export KILN_TEST_POSTGRES_URL=$(.ci/pg.sh start) to run them")
	}
	code := m.Run()
	os.RemoveAll(filepath.Dir(bin))
	os.Exit(code)
}

// backends runs fn against a fresh server on SQLite and on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, s *kilntest.Server)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret, "DATABASE_URL="+kilntest.PostgresURL(t)))
	})
}

type profile struct {
	ID      string `json:"id"`
	Handle  string `json:"handle"`
	Version int    `json:"version"`
}

func createProfile(t *testing.T, s *kilntest.Server, handle string, extra string) profile {
	t.Helper()
	var out struct{ CreateProfile profile }
	s.MustDo(t, `mutation($h: String!, $e: String!, $o: ID!) { createProfile(input: {handle: $h, email: $e, displayName: "Test", ownerID: $o`+extra+`}) { id handle version } }`,
		map[string]any{"h": handle, "e": handle + "@example.com", "o": uuid.NewString()}, &out)
	return out.CreateProfile
}

func createPost(t *testing.T, s *kilntest.Server, author, body string, extra string) string {
	t.Helper()
	var out struct{ CreatePost struct{ ID string } }
	s.MustDo(t, `mutation($a: ID!, $b: String!) { createPost(input: {ownerID: "`+testOwner+`", authorID: $a, body: $b`+extra+`}) { id } }`,
		map[string]any{"a": author, "b": body}, &out)
	return out.CreatePost.ID
}

func TestCRUD(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		// Create with defaults, enum lists, JSON through a related model.
		var c struct {
			CreateProfile struct {
				ID, Handle, CreatedAt, UpdatedAt string
				Version                          int
				Verified                         bool
				Interests                        []string
				Links                            []string
			}
		}
		s.MustDo(t, `mutation { createProfile(input: {ownerID: "`+uuid.NewString()+`", handle: "ada", email: "ada@example.com", displayName: "Ada", interests: [TECH, MUSIC]}) {
			id handle createdAt updatedAt version verified interests links } }`, nil, &c)
		p := c.CreateProfile
		if p.Version != 1 || p.Verified || len(p.Interests) != 2 || p.Interests[0] != "TECH" || p.Links == nil || p.CreatedAt == "" {
			t.Fatalf("unexpected create result: %+v", p)
		}
		if _, err := uuid.Parse(p.ID); err != nil {
			t.Fatalf("id %q is not a UUID", p.ID)
		}

		// Client-supplied id.
		own := uuid.NewString()
		var c2 struct{ CreateProfile profile }
		s.MustDo(t, `mutation($id: ID!) { createProfile(input: {ownerID: "`+uuid.NewString()+`", id: $id, handle: "bob", email: "bob@example.com", displayName: "Bob"}) { id handle version } }`,
			map[string]any{"id": own}, &c2)
		if c2.CreateProfile.ID != own {
			t.Fatalf("client id not kept: %s != %s", c2.CreateProfile.ID, own)
		}

		// One-to-one with JSON.
		var st struct {
			CreateSettings struct {
				Theme       string
				Preferences map[string]any
				Profile     profile
			}
		}
		s.MustDo(t, `mutation($p: ID!) { createSettings(input: {ownerID: "`+testOwner+`", profileID: $p, theme: "dark", preferences: {lang: "en", n: 2}}) { theme preferences profile { handle } } }`,
			map[string]any{"p": p.ID}, &st)
		if st.CreateSettings.Theme != "dark" || st.CreateSettings.Preferences["lang"] != "en" || st.CreateSettings.Profile.Handle != "ada" {
			t.Fatalf("settings: %+v", st.CreateSettings)
		}
		var withSettings struct {
			Profile struct{ Settings struct{ Theme string } }
		}
		s.MustDo(t, `query($id: ID!) { profile(id: $id) { settings { theme } } }`, map[string]any{"id": p.ID}, &withSettings)
		if withSettings.Profile.Settings.Theme != "dark" {
			t.Fatalf("hasOne edge: %+v", withSettings)
		}

		// Get, and a missing id is null.
		var g struct{ Profile *profile }
		s.MustDo(t, `query($id: ID!) { profile(id: $id) { id handle version } }`, map[string]any{"id": p.ID}, &g)
		if g.Profile == nil || g.Profile.Handle != "ada" {
			t.Fatalf("get: %+v", g)
		}
		s.MustDo(t, `query($id: ID!) { profile(id: $id) { id } }`, map[string]any{"id": uuid.NewString()}, &g)
		if g.Profile != nil {
			t.Fatalf("missing profile should be null, got %+v", g.Profile)
		}

		// Update: version increments; null clears a nullable field.
		var u struct {
			UpdateProfile struct {
				Bio     *string
				Version int
			}
		}
		s.MustDo(t, `mutation($id: ID!) { updateProfile(id: $id, input: {bio: "hello", version: 1}) { bio version } }`, map[string]any{"id": p.ID}, &u)
		if u.UpdateProfile.Version != 2 || u.UpdateProfile.Bio == nil || *u.UpdateProfile.Bio != "hello" {
			t.Fatalf("update: %+v", u.UpdateProfile)
		}
		s.MustDo(t, `mutation($id: ID!) { updateProfile(id: $id, input: {bio: null}) { bio version } }`, map[string]any{"id": p.ID}, &u)
		if u.UpdateProfile.Bio != nil || u.UpdateProfile.Version != 3 {
			t.Fatalf("clear: %+v", u.UpdateProfile)
		}

		// Stale version: CONFLICT, nothing stored.
		r := s.Do(t, `mutation($id: ID!) { updateProfile(id: $id, input: {bio: "stale", version: 1}) { version } }`, map[string]any{"id": p.ID})
		if r.Code() != "CONFLICT" {
			t.Fatalf("stale version: want CONFLICT, got %+v", r.Errors)
		}
		var after struct {
			Profile struct {
				Bio     *string
				Version int
			}
		}
		s.MustDo(t, `query($id: ID!) { profile(id: $id) { bio version } }`, map[string]any{"id": p.ID}, &after)
		if after.Profile.Bio != nil || after.Profile.Version != 3 {
			t.Fatalf("stale update stored something: %+v", after.Profile)
		}

		// Readonly fields are not in the update input.
		r = s.Do(t, `mutation($id: ID!, $a: ID!) { updatePost(id: $id, input: {authorID: $a}) { id } }`, map[string]any{"id": uuid.NewString(), "a": p.ID})
		if r.Code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("readonly authorID in update: want GRAPHQL_VALIDATION_FAILED, got %+v", r.Errors)
		}

		// Delete, then NOT_FOUND.
		var d struct{ DeleteProfile string }
		s.MustDo(t, `mutation($id: ID!) { deleteProfile(id: $id) }`, map[string]any{"id": own}, &d)
		if d.DeleteProfile != own {
			t.Fatalf("delete returned %q", d.DeleteProfile)
		}
		for _, q := range []string{
			`mutation($id: ID!) { deleteProfile(id: $id) }`,
			`mutation($id: ID!) { updateProfile(id: $id, input: {bio: "x"}) { id } }`,
		} {
			r := s.Do(t, q, map[string]any{"id": own})
			if r.Code() != "NOT_FOUND" {
				t.Fatalf("%s: want NOT_FOUND, got %+v", q, r.Errors)
			}
		}
	})
}

func TestValidationAndConstraints(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		p := createProfile(t, s, "grace", "")
		cases := []struct {
			name, input, field, code string
		}{
			{"length min", `handle: "ab", email: "a@example.com", displayName: "A"`, "handle", "BAD_USER_INPUT"},
			{"length max", `handle: "` + strings.Repeat("a", 31) + `", email: "a@example.com", displayName: "A"`, "handle", "BAD_USER_INPUT"},
			{"pattern", `handle: "Not Valid", email: "a@example.com", displayName: "A"`, "handle", "BAD_USER_INPUT"},
			{"email", `handle: "valid_one", email: "not-an-email", displayName: "A"`, "email", "BAD_USER_INPUT"},
			{"range", `handle: "valid_two", email: "b@example.com", displayName: "A", birthYear: 1800`, "birthYear", "BAD_USER_INPUT"},
			{"list length", `handle: "valid_three", email: "c@example.com", displayName: "A", links: ["1","2","3","4","5","6"]`, "links", "BAD_USER_INPUT"},
			{"unique", `handle: "grace", email: "other@example.com", displayName: "A"`, "handle", "CONFLICT"},
		}
		for _, c := range cases {
			r := s.Do(t, `mutation { createProfile(input: {ownerID: "`+uuid.NewString()+`", `+c.input+`}) { id } }`, nil)
			if r.Code() != c.code {
				t.Errorf("%s: want %s, got %+v", c.name, c.code, r.Errors)
				continue
			}
			if c.code == "BAD_USER_INPUT" && r.Errors[0].Extensions["field"] != c.field {
				t.Errorf("%s: want field %s, got %v", c.name, c.field, r.Errors[0].Extensions["field"])
			}
			if strings.Contains(strings.ToLower(r.Errors[0].Message), "sql") || strings.Contains(r.Errors[0].Message, "constraint failed") {
				t.Errorf("%s: error leaks SQL: %s", c.name, r.Errors[0].Message)
			}
		}
		// Validation on update too.
		r := s.Do(t, `mutation($id: ID!) { updateProfile(id: $id, input: {handle: "x"}) { id } }`, map[string]any{"id": p.ID})
		if r.Code() != "BAD_USER_INPUT" {
			t.Errorf("update validation: %+v", r.Errors)
		}
		// Composite unique: one like per profile and post.
		post := createPost(t, s, p.ID, "hi", "")
		s.MustDo(t, `mutation($p: ID!, $q: ID!) { createLike(input: {ownerID: "`+testOwner+`", profileID: $p, postID: $q}) { id } }`, map[string]any{"p": p.ID, "q": post}, nil)
		r = s.Do(t, `mutation($p: ID!, $q: ID!) { createLike(input: {ownerID: "`+testOwner+`", profileID: $p, postID: $q}) { id } }`, map[string]any{"p": p.ID, "q": post})
		if r.Code() != "CONFLICT" {
			t.Errorf("composite unique: want CONFLICT, got %+v", r.Errors)
		}
		// A reference to a missing record.
		r = s.Do(t, `mutation($a: ID!) { createPost(input: {ownerID: "`+testOwner+`", authorID: $a, body: "x"}) { id } }`, map[string]any{"a": uuid.NewString()})
		if r.Code() != "BAD_USER_INPUT" {
			t.Errorf("missing reference: want BAD_USER_INPUT, got %+v", r.Errors)
		}
		// Bad ids and enum values are rejected before resolvers run.
		r = s.Do(t, `query { profile(id: "not-a-uuid") { id } }`, nil)
		if len(r.Errors) == 0 {
			t.Errorf("bad uuid accepted")
		}
		r = s.Do(t, `mutation($a: ID!) { createPost(input: {ownerID: "`+testOwner+`", authorID: $a, body: "x", visibility: SECRET}) { id } }`, map[string]any{"a": p.ID})
		if r.Code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Errorf("bad enum: %+v", r.Errors)
		}
		// Nothing partial: a mutation that fails half-way stores nothing.
		r = s.Do(t, `mutation($f: ID!) { createProfile(input: {ownerID: "`+uuid.NewString()+`", handle: "partial", email: "p@example.com", displayName: "P", followingIDs: [$f]}) { id } }`,
			map[string]any{"f": uuid.NewString()})
		if len(r.Errors) == 0 {
			t.Fatalf("linking a missing profile should fail")
		}
		var cnt struct{ Profiles struct{ TotalCount int } }
		s.MustDo(t, `{ profiles(where: {handle: "partial"}) { totalCount } }`, nil, &cnt)
		if cnt.Profiles.TotalCount != 0 {
			t.Fatalf("failed mutation left %d rows", cnt.Profiles.TotalCount)
		}
		// Two mutations in one operation share a transaction.
		r = s.Do(t, `mutation { a: createProfile(input: {ownerID: "`+uuid.NewString()+`", handle: "first_of_two", email: "f2@example.com", displayName: "A"}) { id }
			b: createProfile(input: {ownerID: "`+uuid.NewString()+`", handle: "x", email: "bad", displayName: "B"}) { id } }`, nil)
		if len(r.Errors) == 0 {
			t.Fatal("second mutation should fail")
		}
		s.MustDo(t, `{ profiles(where: {handle: "first_of_two"}) { totalCount } }`, nil, &cnt)
		if cnt.Profiles.TotalCount != 0 {
			t.Fatalf("operation was not atomic: %d rows", cnt.Profiles.TotalCount)
		}
	})
}

func TestListFilterOrderPaginate(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		a := createProfile(t, s, "alice", "")
		b := createProfile(t, s, "brian", "")
		for i := 0; i < 7; i++ {
			vis := "PUBLIC"
			if i%2 == 1 {
				vis = "PRIVATE"
			}
			createPost(t, s, a.ID, fmt.Sprintf("alice post %d", i), fmt.Sprintf(`, visibility: %s, score: %d, tags: ["t%d"]`, vis, i, i%3))
		}
		createPost(t, s, b.ID, "brian says hi", `, score: 100`)

		type conn struct {
			TotalCount int
			PageInfo   struct {
				HasNextPage, HasPreviousPage bool
				StartCursor, EndCursor       *string
			}
			Edges []struct {
				Cursor string
				Node   struct {
					Body   string
					Score  float64
					Author struct{ Handle string }
				}
			}
		}
		var out struct{ Posts conn }
		q := `query($w: PostWhereInput, $o: [PostOrder!], $first: Int, $after: Cursor, $last: Int, $before: Cursor) {
			posts(where: $w, orderBy: $o, first: $first, after: $after, last: $last, before: $before) {
				totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
				edges { cursor node { body score author { handle } } } } }`
		// eq on an enum, ordering, first page.
		s.MustDo(t, q, map[string]any{"w": map[string]any{"visibility": "PUBLIC"}, "o": []any{map[string]any{"field": "SCORE", "direction": "DESC"}}, "first": 2}, &out)
		if out.Posts.TotalCount != 5 || len(out.Posts.Edges) != 2 || !out.Posts.PageInfo.HasNextPage || out.Posts.Edges[0].Node.Score != 100 {
			t.Fatalf("page 1: %+v", out.Posts)
		}
		// Next page by cursor.
		after := *out.Posts.PageInfo.EndCursor
		s.MustDo(t, q, map[string]any{"w": map[string]any{"visibility": "PUBLIC"}, "o": []any{map[string]any{"field": "SCORE", "direction": "DESC"}}, "first": 2, "after": after}, &out)
		if len(out.Posts.Edges) != 2 || out.Posts.Edges[0].Node.Score != 4 {
			t.Fatalf("page 2: %+v", out.Posts)
		}
		// last/before.
		s.MustDo(t, q, map[string]any{"o": []any{map[string]any{"field": "SCORE"}}, "last": 3}, &out)
		if len(out.Posts.Edges) != 3 || out.Posts.Edges[2].Node.Score != 100 || !out.Posts.PageInfo.HasPreviousPage {
			t.Fatalf("last 3: %+v", out.Posts)
		}
		// String predicates, in/notIn, gt, and/or/not, isNil.
		filters := []struct {
			where map[string]any
			want  int
		}{
			{map[string]any{"bodyContains": "says"}, 1},
			{map[string]any{"bodyHasPrefix": "alice"}, 7},
			{map[string]any{"scoreGT": 3}, 4},
			{map[string]any{"scoreIn": []any{1, 2}}, 2},
			{map[string]any{"scoreNotIn": []any{1, 2}}, 6},
			{map[string]any{"visibilityNEQ": "PUBLIC"}, 3},
			{map[string]any{"or": []any{map[string]any{"scoreLT": 1}, map[string]any{"scoreGTE": 100}}}, 2},
			{map[string]any{"and": []any{map[string]any{"scoreGTE": 1}, map[string]any{"scoreLTE": 2}}}, 2},
			{map[string]any{"not": map[string]any{"bodyHasPrefix": "alice"}}, 1},
			{map[string]any{"titleIsNil": true}, 8},
			// Relation filters.
			{map[string]any{"hasAuthorWith": []any{map[string]any{"handle": "brian"}}}, 1},
			{map[string]any{"hasLikes": true}, 0},
		}
		for _, f := range filters {
			s.MustDo(t, q, map[string]any{"w": f.where}, &out)
			if out.Posts.TotalCount != f.want || len(out.Posts.Edges) != f.want {
				t.Errorf("where %v: want %d, got total %d, %d edges", f.where, f.want, out.Posts.TotalCount, len(out.Posts.Edges))
			}
		}
		// GET works for queries (GraphQL over HTTP) and refuses mutations.
		r := s.Get(t, `query { posts(first: 1) { totalCount } }`, nil)
		if len(r.Errors) > 0 || r.Status != 200 {
			t.Fatalf("GET query: %d %+v", r.Status, r.Errors)
		}
		r = s.Get(t, `mutation { deletePost(id: "`+uuid.NewString()+`") }`, nil)
		if len(r.Errors) == 0 {
			t.Fatalf("GET mutation accepted")
		}
	})
}

func TestManyToManyAndNodes(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		a := createProfile(t, s, "anna", "")
		b := createProfile(t, s, "boris", "")
		c := createProfile(t, s, "chen", `, followingIDs: ["`+a.ID+`", "`+b.ID+`"]`)
		type edges struct {
			TotalCount int
			Edges      []struct{ Node struct{ Handle string } }
		}
		var out struct {
			Profile struct {
				Following edges
				Followers edges
			}
		}
		q := `query($id: ID!) { profile(id: $id) { following(orderBy: [{field: HANDLE}]) { totalCount edges { node { handle } } } followers { totalCount edges { node { handle } } } } }`
		s.MustDo(t, q, map[string]any{"id": c.ID}, &out)
		if out.Profile.Following.TotalCount != 2 || out.Profile.Following.Edges[0].Node.Handle != "anna" {
			t.Fatalf("following: %+v", out.Profile.Following)
		}
		s.MustDo(t, q, map[string]any{"id": a.ID}, &out)
		if out.Profile.Followers.TotalCount != 1 || out.Profile.Followers.Edges[0].Node.Handle != "chen" {
			t.Fatalf("followers of anna: %+v", out.Profile.Followers)
		}
		s.MustDo(t, `mutation($id: ID!, $a: ID!) { updateProfile(id: $id, input: {removeFollowingIDs: [$a]}) { id } }`, map[string]any{"id": c.ID, "a": a.ID}, nil)
		s.MustDo(t, q, map[string]any{"id": a.ID}, &out)
		if out.Profile.Followers.TotalCount != 0 {
			t.Fatalf("unfollow did not stick: %+v", out.Profile.Followers)
		}
		// Cross-type many-to-many.
		var conv struct {
			CreateConversation struct {
				ID      string
				Members edges
			}
		}
		s.MustDo(t, `mutation($m: [ID!]) { createConversation(input: {ownerID: "`+testOwner+`", title: "chat", memberIDs: $m}) { id members { totalCount edges { node { handle } } } } }`,
			map[string]any{"m": []string{a.ID, b.ID}}, &conv)
		if conv.CreateConversation.Members.TotalCount != 2 {
			t.Fatalf("members: %+v", conv)
		}
		// node and nodes.
		var n struct {
			Node  map[string]any
			Nodes []map[string]any
		}
		s.MustDo(t, `query($id: ID!, $ids: [ID!]!) { node(id: $id) { __typename id ... on Conversation { title } } nodes(ids: $ids) { __typename id } }`,
			map[string]any{"id": conv.CreateConversation.ID, "ids": []string{a.ID, uuid.NewString(), conv.CreateConversation.ID}}, &n)
		if n.Node["__typename"] != "Conversation" || n.Node["title"] != "chat" {
			t.Fatalf("node: %+v", n.Node)
		}
		if len(n.Nodes) != 3 || n.Nodes[0]["__typename"] != "Profile" || n.Nodes[1] != nil || n.Nodes[2]["__typename"] != "Conversation" {
			t.Fatalf("nodes: %+v", n.Nodes)
		}
		// Cascade: deleting a profile deletes its posts; SET_NULL keeps messages.
		post := createPost(t, s, b.ID, "bye", "")
		var msg struct{ CreateMessage struct{ ID string } }
		s.MustDo(t, `mutation($c: ID!, $s: ID!) { createMessage(input: {ownerID: "`+testOwner+`", conversationID: $c, senderID: $s, body: "hey", metadata: {k: 1}}) { id } }`,
			map[string]any{"c": conv.CreateConversation.ID, "s": b.ID}, &msg)
		s.MustDo(t, `mutation($id: ID!) { deleteProfile(id: $id) }`, map[string]any{"id": b.ID}, nil)
		var gone struct {
			Post    *struct{ ID string }
			Message *struct{ SenderID *string }
		}
		s.MustDo(t, `query($p: ID!, $m: ID!) { post(id: $p) { id } message(id: $m) { senderID } }`, map[string]any{"p": post, "m": msg.CreateMessage.ID}, &gone)
		if gone.Post != nil || gone.Message == nil || gone.Message.SenderID != nil {
			t.Fatalf("cascade/set null: %+v", gone)
		}
	})
}

// TestNoNPlusOne checks that a nested query runs a fixed number of SQL
// statements whatever the number of rows.
func TestNoNPlusOne(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		q := `{ posts(first: 50, orderBy: [{field: CREATED_AT}]) { totalCount edges { node { body author { handle followers(first: 3) { totalCount } }
			comments(first: 5) { totalCount edges { node { body author { handle } } } } likes { totalCount } } } } }`
		seed := func(n int) {
			for i := 0; i < n; i++ {
				p := createProfile(t, s, fmt.Sprintf("user_%d_%d", n, i), "")
				for j := 0; j < 3; j++ {
					post := createPost(t, s, p.ID, fmt.Sprintf("post %d", j), "")
					for k := 0; k < 2; k++ {
						s.MustDo(t, `mutation($p: ID!, $a: ID!) { createComment(input: {ownerID: "`+testOwner+`", postID: $p, authorID: $a, body: "c"}) { id } }`, map[string]any{"p": post, "a": p.ID}, nil)
					}
				}
			}
		}
		count := func() (float64, int) {
			before := s.Metric(t, "kiln_sql_statements_total")
			var out struct{ Posts struct{ TotalCount int } }
			s.MustDo(t, q, nil, &out)
			return s.Metric(t, "kiln_sql_statements_total") - before, out.Posts.TotalCount
		}
		seed(2)
		small, rows1 := count()
		seed(6)
		large, rows2 := count()
		if rows2 <= rows1 {
			t.Fatalf("seeding failed: %d then %d rows", rows1, rows2)
		}
		if small != large {
			t.Fatalf("statements grew with rows: %v for %d posts, %v for %d posts", small, rows1, large, rows2)
		}
		if large > 12 {
			t.Fatalf("nested query ran %v statements", large)
		}
		t.Logf("nested query: %v statements for %d and for %d posts", large, rows1, rows2)
	})
}

func TestHealthAndGraphiQL(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/": "graphiql"} {
		res, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(strings.ToLower(string(b)), want) {
			t.Errorf("%s: %d %q", path, res.StatusCode, b)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	err := Run(t.Context(), graph.App(), []string{"-db-max-conns", "zero"}, func(k string) string {
		if k == "KILN_LOG_LEVEL" {
			return "loud"
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "KILN_DB_MAX_CONNS") || !strings.Contains(err.Error(), "KILN_LOG_LEVEL") {
		t.Fatalf("want errors naming both settings, got %v", err)
	}
}

// TestConcurrentStartMigratesOnce starts three instances on one empty
// PostgreSQL database at once: the migration lock lets one migrate while the
// others wait, and all become ready and share the data.
func TestConcurrentStartMigratesOnce(t *testing.T) {
	url := kilntest.PostgresURL(t)
	type started struct {
		s   *kilntest.Server
		err error
	}
	ch := make(chan started, 3)
	for i := 0; i < 3; i++ {
		go func() {
			s, err := kilntest.StartE(serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret, "DATABASE_URL="+url)
			ch <- started{s, err}
		}()
	}
	var servers []*kilntest.Server
	for i := 0; i < 3; i++ {
		r := <-ch
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		servers = append(servers, r.s)
		t.Cleanup(func() { r.s.Stop() })
	}
	if len(servers) != 3 {
		t.Fatalf("only %d of 3 instances started", len(servers))
	}
	migrated := 0
	for _, s := range servers {
		if strings.Contains(s.Logs(), "migration applied") {
			migrated++
		}
	}
	if migrated != 1 {
		t.Fatalf("%d instances applied migrations, want 1", migrated)
	}
	p := createProfile(t, servers[0], "shared", "")
	var g struct{ Profile *profile }
	servers[2].MustDo(t, `query($id: ID!) { profile(id: $id) { id handle } }`, map[string]any{"id": p.ID}, &g)
	if g.Profile == nil {
		t.Fatal("instances do not share data")
	}
}

func TestProductionNeedsKeys(t *testing.T) {
	err := Run(t.Context(), graph.App(), []string{"-data-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, func(k string) string {
		if k == "KILN_ENV" {
			return "production"
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "KILN_JWT_KEYS") {
		t.Fatalf("production without keys: want an error naming KILN_JWT_KEYS, got %v", err)
	}
}
