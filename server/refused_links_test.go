package server

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"kiln/server/kilntest"
)

// TestRefusedLinksNameTheField: a write that links to a record the viewer
// may not read (or that does not exist) answers BAD_USER_INPUT naming the
// input field (extensions.field) and why, for every way of linking: a
// belongsTo id on create and on update, many-to-many ids on create and
// add on update; the answer is the same whether the record exists or not.
func TestRefusedLinksNameTheField(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		var private struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "private", visibility: PRIVATE}) { id } }`, nil, &private)
		var conv struct{ CreateConversation struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createConversation(input: {title: "alice's"}) { id } }`, nil, &conv)
		bob := signUp(t, s, "bob@example.com")
		var bp struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation { createProfile(input: {handle: "bob", displayName: "Bob"}) { id } }`, nil, &bp)
		var bconv struct{ CreateConversation struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation { createConversation(input: {title: "bob's"}) { id } }`, nil, &bconv)
		var bpost struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation { createPost(input: {body: "bob's"}) { id } }`, nil, &bpost)
		var bcomment struct{ CreateComment struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation($p: ID!) { createComment(input: {postID: $p, body: "mine"}) { id } }`, map[string]any{"p": bpost.CreatePost.ID}, &bcomment)

		missing := uuid.NewString()
		for _, target := range []struct{ what, post, conv string }{
			{"a record bob may not read", private.CreatePost.ID, conv.CreateConversation.ID},
			{"a record that does not exist", missing, missing},
		} {
			for _, c := range []struct {
				name, query, field string
				vars               map[string]any
			}{
				{"belongsTo on create", `mutation($p: ID!) { createComment(input: {postID: $p, body: "x"}) { id } }`, "postID", map[string]any{"p": target.post}},
				{"belongsTo on create (readonly)", `mutation($p: ID!, $me: ID!) { createLike(input: {postID: $p, profileID: $me}) { id } }`, "postID", map[string]any{"p": target.post, "me": bp.CreateProfile.ID}},
				{"belongsTo on update", `mutation($id: ID!, $p: ID!) { updateComment(id: $id, input: {postID: $p}) { id } }`, "postID", map[string]any{"id": bcomment.CreateComment.ID, "p": target.post}},
				{"belongsTo on create, in a conversation", `mutation($c: ID!) { createMessage(input: {conversationID: $c, body: "x"}) { id } }`, "conversationID", map[string]any{"c": target.conv}},
				{"manyToMany on create", `mutation($c: ID!) { createProfile(input: {handle: "bob2", displayName: "B", conversationIDs: [$c]}) { id } }`, "conversationIDs", map[string]any{"c": target.conv}},
				{"manyToMany on update", `mutation($id: ID!, $c: ID!) { updateProfile(id: $id, input: {addConversationIDs: [$c]}) { id } }`, "addConversationIDs", map[string]any{"id": bp.CreateProfile.ID, "c": target.conv}},
			} {
				r := s.DoAs(t, bob.AccessToken, c.query, c.vars)
				if target.post == missing {
					// Admins skip the rules, not the check that the record exists.
					checkRefused(t, s.Do(t, c.query, c.vars), "as an admin, "+c.name, target.what, c.field)
				}
				checkRefused(t, r, c.name, target.what, c.field)
			}
		}
	})
}

func checkRefused(t *testing.T, r *kilntest.Response, name, what, field string) {
	t.Helper()
	if r.Code() != "BAD_USER_INPUT" || len(r.Errors) == 0 {
		t.Errorf("%s, %s: want BAD_USER_INPUT, got %+v", name, what, r.Errors)
		return
	}
	e := r.Errors[0]
	if e.Extensions["field"] != field {
		t.Errorf("%s, %s: extensions.field = %v, want %s (%s)", name, what, e.Extensions["field"], field, e.Message)
	}
	if !strings.Contains(e.Message, field) || !strings.Contains(e.Message, "does not exist") {
		t.Errorf("%s, %s: the message does not say which field and why: %q", name, what, e.Message)
	}
}
