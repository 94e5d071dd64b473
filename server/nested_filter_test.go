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
