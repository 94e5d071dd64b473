package server

import (
	"fmt"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestGlobalIDs: a client-chosen id that any record already has, in any
// table, is refused with the same answer whether the viewer may read that
// record or not, so node() cannot be hijacked and ids reveal nothing; and
// nodes(ids:) costs one statement per type, not one per id.
func TestGlobalIDs(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		post := func(vis string) string {
			var out struct{ CreatePost struct{ ID string } }
			s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!, $v: Visibility!) { createPost(input: {authorID: $a, body: "hi", visibility: $v}) { id } }`,
				map[string]any{"a": ap.CreateProfile.ID, "v": vis}, &out)
			return out.CreatePost.ID
		}
		public, private := post("PUBLIC"), post("PRIVATE")

		eve := signUp(t, s, "eve@example.com")
		var ep struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, eve.AccessToken, `mutation { createProfile(input: {handle: "eve", displayName: "Eve"}) { id } }`, nil, &ep)
		answers := map[string]string{}
		for name, id := range map[string]string{"a readable post": public, "a hidden post": private, "a profile": ap.CreateProfile.ID} {
			r := s.DoAs(t, eve.AccessToken, `mutation($id: ID!, $p: ID!, $a: ID!) { createComment(input: {id: $id, postID: $p, authorID: $a, body: "mine"}) { id } }`,
				map[string]any{"id": id, "p": public, "a": ep.CreateProfile.ID})
			if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "id" {
				t.Errorf("a comment with the id of %s: want BAD_USER_INPUT on id, got %+v", name, r.Errors)
				continue
			}
			answers[name] = r.Errors[0].Message
		}
		if answers["a readable post"] != answers["a hidden post"] {
			t.Errorf("the answer tells a hidden record from a readable one: %q vs %q", answers["a hidden post"], answers["a readable post"])
		}
		// The same table: also the same answer, not CONFLICT.
		r := s.DoAs(t, eve.AccessToken, `mutation($id: ID!, $a: ID!) { createPost(input: {id: $id, authorID: $a, body: "mine"}) { id } }`,
			map[string]any{"id": private, "a": ep.CreateProfile.ID})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message != answers["a hidden post"] {
			t.Errorf("a post with the id of a hidden post: %+v", r.Errors)
		}
		var n struct {
			Node struct {
				Typename string `json:"__typename"`
				Body     string
			}
		}
		s.MustDoAs(t, "", `query($id: ID!) { node(id: $id) { __typename ... on Post { body } } }`, map[string]any{"id": public}, &n)
		if n.Node.Typename != "Post" || n.Node.Body != "hi" {
			t.Errorf("node(post id) = %+v", n.Node)
		}

		// nodes(ids:): a fixed number of statements for 40 ids of two types.
		var ids []string
		for i := 0; i < 20; i++ {
			ids = append(ids, fmt.Sprintf("%q", post("PUBLIC")))
			var c struct{ CreateComment struct{ ID string } }
			s.MustDoAs(t, eve.AccessToken, `mutation($p: ID!, $a: ID!) { createComment(input: {postID: $p, authorID: $a, body: "c"}) { id } }`,
				map[string]any{"p": public, "a": ep.CreateProfile.ID}, &c)
			ids = append(ids, fmt.Sprintf("%q", c.CreateComment.ID))
		}
		before := s.Metric(t, "kiln_sql_statements_total")
		var ns struct{ Nodes []*struct{ ID string } }
		s.MustDoAs(t, eve.AccessToken, `{ nodes(ids: [`+strings.Join(ids, ",")+`]) { id } }`, nil, &ns)
		statements := s.Metric(t, "kiln_sql_statements_total") - before
		if len(ns.Nodes) != 40 {
			t.Fatalf("%d nodes", len(ns.Nodes))
		}
		for i, n := range ns.Nodes {
			if n == nil || fmt.Sprintf("%q", n.ID) != ids[i] {
				t.Errorf("nodes[%d] = %+v, want %s", i, n, ids[i])
			}
		}
		if statements > 4 {
			t.Errorf("nodes(ids:) with 40 ids of 2 types ran %v SQL statements", statements)
		}
	})
}
