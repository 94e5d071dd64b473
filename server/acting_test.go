package server

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestActingAsSomeoneElse: @actor relations (author, sender, profile,
// follower) must point at a record the viewer owns on every create and
// update path, and @serverOnly fields are refused from clients; admins may
// do both.
func TestActingAsSomeoneElse(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		a := ap.CreateProfile.ID
		var apost struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "hello"}) { id } }`, map[string]any{"a": a}, &apost)

		eve := signUp(t, s, "eve@example.com")
		var ep struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, eve.AccessToken, `mutation { createProfile(input: {handle: "eve", displayName: "Eve"}) { id } }`, nil, &ep)
		e := ep.CreateProfile.ID
		var econv struct{ CreateConversation struct{ ID string } }
		s.MustDoAs(t, eve.AccessToken, `mutation { createConversation(input: {title: "mine"}) { id } }`, nil, &econv)
		var epost struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, eve.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "mine"}) { id } }`, map[string]any{"a": e}, &epost)

		var msg struct{ CreateMessage struct{ ID string } }
		s.MustDoAs(t, eve.AccessToken, `mutation($c: ID!, $e: ID!) { createMessage(input: {conversationID: $c, senderID: $e, body: "hi"}) { id } }`,
			map[string]any{"c": econv.CreateConversation.ID, "e": e}, &msg)
		vars := map[string]any{"alice": a, "eve": e, "post": apost.CreatePost.ID, "mypost": epost.CreatePost.ID,
			"conv": econv.CreateConversation.ID, "msg": msg.CreateMessage.ID}
		refused := []struct{ name, mutation, field string }{
			{"a post as alice", `createPost(input: {authorID: $alice, body: "x"}) { id }`, "authorID"},
			{"a comment as alice", `createComment(input: {postID: $post, authorID: $alice, body: "x"}) { id }`, "authorID"},
			{"a like as alice", `createLike(input: {postID: $post, profileID: $alice}) { id }`, "profileID"},
			{"alice's settings (squatting)", `createSettings(input: {profileID: $alice}) { id }`, "profileID"},
			{"a message as alice", `createMessage(input: {conversationID: $conv, senderID: $alice, body: "x"}) { id }`, "senderID"},
			{"a message moved to alice", `updateMessage(id: $msg, input: {senderID: $alice}) { id }`, "senderID"},
			{"alice follows eve (update)", `updateProfile(id: $eve, input: {addFollowerIDs: [$alice]}) { id }`, "addFollowerIDs"},
			{"alice follows eve (create)", `createProfile(input: {handle: "eve2", displayName: "E", followerIDs: [$alice]}) { id }`, "followerIDs"},
		}
		for _, c := range refused {
			r := mutate(t, s, eve.AccessToken, c.mutation, vars)
			if r.Code() != "FORBIDDEN" || r.Errors[0].Extensions["field"] != c.field {
				t.Errorf("eve creating %s: want FORBIDDEN on %s, got %+v", c.name, c.field, r.Errors)
			}
		}
		// Nothing was stored under alice's name.
		var counts struct {
			Posts, Comments, Likes, Messages struct{ TotalCount int }
		}
		s.MustDo(t, `query($a: ID!) { posts(where: {authorID: $a}) { totalCount } comments(where: {authorID: $a}) { totalCount } likes(where: {profileID: $a}) { totalCount } messages(where: {senderID: $a}) { totalCount } }`, map[string]any{"a": a}, &counts)
		if counts.Posts.TotalCount != 1 || counts.Comments.TotalCount+counts.Likes.TotalCount+counts.Messages.TotalCount != 0 {
			t.Errorf("records stored under alice's name: %+v", counts)
		}
		// Acting as oneself works, and following someone is not acting as them.
		for _, m := range []string{
			`createComment(input: {postID: $post, authorID: $eve, body: "nice"}) { id }`,
			`createLike(input: {postID: $post, profileID: $eve}) { id }`,
			`createSettings(input: {profileID: $eve}) { id }`,
			`updateProfile(id: $eve, input: {addFollowingIDs: [$alice]}) { id }`,
		} {
			if r := mutate(t, s, eve.AccessToken, m, vars); len(r.Errors) > 0 {
				t.Errorf("%s: %+v", m, r.Errors)
			}
		}
		// Admins may act for anyone.
		if r := s.Do(t, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "by an admin", ownerID: "`+alice.User.ID+`"}) { id } }`, map[string]any{"a": a}); len(r.Errors) > 0 {
			t.Errorf("admin: %+v", r.Errors)
		}

		// Fields only the server sets.
		for _, m := range []string{
			`updateProfile(id: $eve, input: {verified: true}) { id }`,
			`createPost(input: {authorID: $eve, body: "x", likeCount: 5}) { id }`,
			`createPost(input: {authorID: $eve, body: "x", score: 1e300}) { id }`,
			`updatePost(id: $mypost, input: {score: 1e300}) { id }`,
		} {
			if r := mutate(t, s, eve.AccessToken, m, vars); r.Code() != "FORBIDDEN" {
				t.Errorf("%s: want FORBIDDEN, got %+v", m, r.Errors)
			}
		}
		var top struct {
			Posts struct {
				Edges []struct{ Node struct{ Score float64 } }
			}
		}
		s.MustDoAs(t, eve.AccessToken, `{ posts(first: 1, orderBy: [{field: SCORE, direction: DESC}]) { edges { node { score } } } }`, nil, &top)
		if len(top.Posts.Edges) == 0 || top.Posts.Edges[0].Node.Score != 0 {
			t.Errorf("a client set a score: %+v", top)
		}
		var verified struct{ UpdateProfile struct{ Verified bool } }
		s.MustDo(t, `mutation($e: ID!) { updateProfile(id: $e, input: {verified: true}) { verified } }`, map[string]any{"e": e}, &verified)
		if !verified.UpdateProfile.Verified {
			t.Error("an admin could not set verified")
		}
	})
}

// mutate runs one mutation field as token, declaring as ID! the variables
// of vars that it uses.
func mutate(t *testing.T, s *kilntest.Server, token, field string, vars map[string]any) *kilntest.Response {
	t.Helper()
	var decl []string
	used := map[string]any{}
	for k, v := range vars {
		if regexp.MustCompile(`\$` + k + `\b`).MatchString(field) {
			decl = append(decl, "$"+k+": ID!")
			used[k] = v
		}
	}
	sort.Strings(decl)
	d := ""
	if len(decl) > 0 {
		d = "(" + strings.Join(decl, ", ") + ")"
	}
	return s.DoAs(t, token, "mutation"+d+" { "+field+" }", used)
}
