package server

import (
	"encoding/json"
	"testing"

	"kiln/server/kilntest"
)

// TestNestedFilterOracle replays the attack of issue #12: a filter on a
// nested connection must not see rows or fields the viewer may not read, at
// any depth, through totalCount (eager-loaded counts), edges and node().
// Alice's message body and her email are private; an anonymous account
// follows her and probes them character by character.
func TestNestedFilterOracle(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", email: "alice@example.com", displayName: "Alice"}) { id } }`, nil, &ap)
		aliceProfile := ap.CreateProfile.ID
		var conv struct{ CreateConversation struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createConversation(input: {title: "private"}) { id } }`, nil, &conv)
		s.MustDoAs(t, alice.AccessToken, `mutation($c: ID!, $p: ID!) { createMessage(input: {conversationID: $c, senderID: $p, body: "secret plans"}) { id } }`,
			map[string]any{"c": conv.CreateConversation.ID, "p": aliceProfile}, nil)
		var pub struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "hello", visibility: PUBLIC}) { id } }`, map[string]any{"a": aliceProfile}, &pub)

		var anon struct{ SignInAnonymously session }
		s.MustDoAs(t, "", `mutation { signInAnonymously { accessToken } }`, nil, &anon)
		eve := anon.SignInAnonymously.AccessToken
		var ep struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, eve, `mutation($a: ID!) { createProfile(input: {handle: "eve", displayName: "Eve", followingIDs: [$a]}) { id } }`, map[string]any{"a": aliceProfile}, &ep)
		eveProfile := ep.CreateProfile.ID
		s.MustDoAs(t, eve, `mutation($p: ID!, $a: ID!) { createComment(input: {postID: $p, authorID: $a, body: "nice"}) { id } }`, map[string]any{"p": pub.CreatePost.ID, "a": eveProfile}, nil)

		probes := []struct{ name, query string }{
			{"message body, depth 2, count only", `query($id: ID!) { profile(id: $id) { following(where: {hasMessagesWith: [{bodyHasPrefix: "s"}]}) { totalCount } } }`},
			{"message body, depth 2, paged", `query($id: ID!) { profile(id: $id) { following(first: 5, where: {hasMessagesWith: [{bodyHasPrefix: "s"}]}) { totalCount edges { node { id } } } } }`},
			{"message body, nested and/not", `query($id: ID!) { profile(id: $id) { following(where: {and: [{not: {hasMessagesWithout: true}}], or: [{hasMessagesWith: [{bodyContains: "plans"}]}]}) { totalCount } } }`},
			{"email, depth 2", `query($id: ID!) { profile(id: $id) { following(where: {emailHasPrefix: "al"}) { totalCount } } }`},
			{"email, depth 2 through node", `query($id: ID!) { node(id: $id) { ... on Profile { following(where: {emailHasPrefix: "al"}) { totalCount } } } }`},
			{"message, depth 3", `query($id: ID!) { profile(id: $id) { following(first: 5) { edges { node { followers(where: {hasFollowingWith: [{hasMessagesWith: [{bodyHasPrefix: "s"}]}]}) { totalCount } } } } } }`},
			{"email, depth 3", `query($id: ID!) { profile(id: $id) { following(first: 5) { edges { node { followers(where: {hasFollowingWith: [{emailHasPrefix: "al"}]}) { totalCount } } } } } }`},
		}
		for _, p := range probes {
			r := s.DoAs(t, eve, p.query, map[string]any{"id": eveProfile})
			if p.name == "message body, nested and/not" {
				// hasMessagesWithout is not a field: the probe must fail validation, not leak.
				if r.Code() == "" {
					t.Errorf("%s: want a validation error, got %s", p.name, r.Data)
				}
				continue
			}
			if len(r.Errors) > 0 {
				t.Fatalf("%s: %v", p.name, r.Errors)
			}
			if got := countsIn(decoded(t, r)); got != 0 {
				t.Errorf("%s: an anonymous account learned a private value (totalCount %d): %s", p.name, got, r.Data)
			}
		}
		// Alice herself still filters by her own data.
		r := s.DoAs(t, alice.AccessToken, `query($id: ID!) { profile(id: $id) { following(where: {emailHasPrefix: "al"}) { totalCount } } }`, map[string]any{"id": eveProfile})
		if got := countsIn(decoded(t, r)); got != 1 {
			t.Errorf("alice filtering on her own email: totalCount %d, want 1: %s", got, r.Data)
		}
		// A comment filtered by its author through post.comments, nested.
		r = s.DoAs(t, "", `query($id: ID!) { post(id: $id) { comments(where: {hasAuthorWith: [{handle: "eve"}]}) { totalCount } } }`, map[string]any{"id": pub.CreatePost.ID})
		if got := countsIn(decoded(t, r)); got != 0 {
			t.Errorf("a visitor filtered comments by an author it may not read: totalCount %d: %s", got, r.Data)
		}
	})
}

func decoded(t *testing.T, r *kilntest.Response) any {
	t.Helper()
	var v any
	if len(r.Data) > 0 {
		if err := json.Unmarshal(r.Data, &v); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// countsIn sums every totalCount in a response's data.
func countsIn(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if f, ok := c.(float64); ok && k == "totalCount" {
				n += int(f)
				continue
			}
			n += countsIn(c)
		}
	case []any:
		for _, c := range x {
			n += countsIn(c)
		}
	}
	return n
}

// TestRelationExistsFilter: hasX: true/false works for every viewer,
// including those whose rule on the target needs no condition (it used to
// answer "where has an empty condition"), and only counts related records
// the viewer may read.
func TestRelationExistsFilter(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		var pp struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "hello"}) { id } }`, map[string]any{"a": ap.CreateProfile.ID}, &pp)
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "again"}) { id } }`, map[string]any{"a": ap.CreateProfile.ID}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!, $a: ID!) { createComment(input: {postID: $p, authorID: $a, body: "first"}) { id } }`,
			map[string]any{"p": pp.CreatePost.ID, "a": ap.CreateProfile.ID}, nil)
		bob := signUp(t, s, "bob@example.com")
		for _, c := range []struct {
			who, token, where string
			want              int
		}{
			{"bob", bob.AccessToken, "{hasAuthor: true}", 2},
			{"bob", bob.AccessToken, "{hasAuthor: false}", 0},
			{"bob", bob.AccessToken, "{hasComments: true}", 1},
			{"bob", bob.AccessToken, "{hasComments: false}", 1},
			{"a visitor", "", "{hasAuthor: true}", 2}, // profiles are public
			{"a visitor", "", "{hasAuthor: false}", 0},
			{"a visitor", "", "{hasComments: true}", 0}, // visitors may not read comments
			{"a visitor", "", "{hasComments: false}", 2},
		} {
			r := s.DoAs(t, c.token, `{ posts(where: `+c.where+`) { totalCount } }`, nil)
			if len(r.Errors) > 0 {
				t.Errorf("%s, posts(where: %s): %+v", c.who, c.where, r.Errors)
				continue
			}
			if got := countsIn(decoded(t, r)); got != c.want {
				t.Errorf("%s, posts(where: %s): totalCount %d, want %d", c.who, c.where, got, c.want)
			}
		}
	})
}

// TestRelationExistsFilterEveryKind: hasX: true/false answers for every
// kind of relation (belongsTo, hasOne, hasMany, manyToMany) and at every
// depth (inside hasXWith, and/or/not, nested connections), for a signed-in
// viewer whose rule on the target has no condition (Comment, Like, Profile:
// it used to answer "where has an empty condition"), one whose rule has a
// condition (Settings, Conversation: owner only), and a visitor; a related
// record the viewer may not read never counts.
func TestRelationExistsFilterEveryKind(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		a := ap.CreateProfile.ID
		s.MustDoAs(t, alice.AccessToken, `mutation { createSettings(input: {theme: "dark"}) { id } }`, nil, nil)
		var pp struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "with comments"}) { id } }`, nil, &pp)
		s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "alone"}) { id } }`, nil, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createComment(input: {postID: $p, body: "first"}) { id } }`, map[string]any{"p": pp.CreatePost.ID}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createLike(input: {postID: $p}) { id } }`, map[string]any{"p": pp.CreatePost.ID}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createConversation(input: {title: "notes", memberIDs: [$a]}) { id } }`, map[string]any{"a": a}, nil)
		bob := signUp(t, s, "bob@example.com")
		s.MustDoAs(t, bob.AccessToken, `mutation($a: ID!) { createProfile(input: {handle: "bob", displayName: "Bob", followingIDs: [$a]}) { id } }`, map[string]any{"a": a}, nil)

		for _, c := range []struct {
			who, token, query string
			want              int
		}{
			// belongsTo
			{"bob", bob.AccessToken, `{ posts(where: {hasAuthor: true}) { totalCount } }`, 2},
			{"bob", bob.AccessToken, `{ posts(where: {hasAuthor: false}) { totalCount } }`, 0},
			{"bob", bob.AccessToken, `{ comments(where: {hasPost: true}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ likes(where: {hasProfile: true, hasPost: true}) { totalCount } }`, 1},
			{"a visitor", "", `{ posts(where: {hasAuthor: true}) { totalCount } }`, 2},
			// hasOne (the target's rule has a condition: owner only)
			{"bob", bob.AccessToken, `{ profiles(where: {hasSettings: true}) { totalCount } }`, 0},
			{"bob", bob.AccessToken, `{ profiles(where: {hasSettings: false}) { totalCount } }`, 2},
			{"alice", alice.AccessToken, `{ profiles(where: {hasSettings: true}) { totalCount } }`, 1},
			{"a visitor", "", `{ profiles(where: {hasSettings: false}) { totalCount } }`, 2},
			// hasMany
			{"bob", bob.AccessToken, `{ posts(where: {hasComments: true}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ posts(where: {hasLikes: false}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {hasPosts: true}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {hasComments: true}) { totalCount } }`, 1},
			{"a visitor", "", `{ profiles(where: {hasComments: true}) { totalCount } }`, 0},
			// manyToMany
			{"bob", bob.AccessToken, `{ profiles(where: {hasFollowing: true}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {hasFollowers: false}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {hasConversations: true}) { totalCount } }`, 0},
			{"alice", alice.AccessToken, `{ profiles(where: {hasConversations: true}) { totalCount } }`, 1},
			{"alice", alice.AccessToken, `{ conversations(where: {hasMembers: true}) { totalCount } }`, 1},
			// nested in hasXWith, and/or/not
			{"bob", bob.AccessToken, `{ posts(where: {hasCommentsWith: [{hasAuthor: true}]}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ posts(where: {not: {hasAuthor: false}}) { totalCount } }`, 2},
			{"bob", bob.AccessToken, `{ posts(where: {or: [{hasComments: true}, {hasLikes: true}]}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ posts(where: {and: [{hasAuthor: true}, {not: {hasComments: true}}]}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {hasPostsWith: [{hasLikes: true, hasAuthor: true}]}) { totalCount } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {hasFollowingWith: [{hasSettings: true}]}) { totalCount } }`, 0},
			{"alice", alice.AccessToken, `{ profiles(where: {hasFollowingWith: [{hasSettings: true}]}) { totalCount } }`, 1},
			// nested connections, depth 2 and 3
			{"bob", bob.AccessToken, `{ profiles(where: {handle: "alice"}) { edges { node { posts(where: {hasComments: true}) { totalCount } } } } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(first: 1, where: {handle: "bob"}) { edges { node { following(first: 5) { edges { node { posts(where: {hasCommentsWith: [{hasAuthor: true}]}) { totalCount } } } } } } } }`, 1},
			{"bob", bob.AccessToken, `{ profiles(where: {handle: "bob"}) { edges { node { following(where: {hasSettings: true}) { totalCount } } } } }`, 0},
			{"alice", alice.AccessToken, `{ profiles(where: {handle: "bob"}) { edges { node { following(where: {hasSettings: true}) { totalCount } } } } }`, 1},
		} {
			r := s.DoAs(t, c.token, c.query, nil)
			if len(r.Errors) > 0 {
				t.Errorf("%s, %s: %+v", c.who, c.query, r.Errors)
				continue
			}
			if got := countsIn(decoded(t, r)); got != c.want {
				t.Errorf("%s, %s: totalCount %d, want %d", c.who, c.query, got, c.want)
			}
		}
	})
}
