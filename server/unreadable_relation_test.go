package server

import (
	"encoding/json"
	"testing"

	"kiln/server/kilntest"
)

// TestUnreadableRelation: a record the viewer may read comes back whole
// even when a record it relates to is one the viewer may not read, for
// every kind of relation. A required @belongsTo whose target has stricter
// read rules is nullable in the API and resolves to null without an error
// (it used to null the whole record, with NOT_FOUND per row); its foreign
// key stays set. A @hasOne is null, and lists (hasMany, manyToMany) leave
// out what the viewer may not read.
func TestUnreadableRelation(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", displayName: "Alice"}) { id } }`, nil, &ap)
		aliceProfile := ap.CreateProfile.ID
		s.MustDoAs(t, alice.AccessToken, `mutation { createSettings(input: {theme: "dark"}) { id } }`, nil, nil)
		var private, public struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "private", visibility: PRIVATE}) { id } }`, nil, &private)
		s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "public"}) { id } }`, nil, &public)
		var onPrivate struct{ CreateComment struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createComment(input: {postID: $p, body: "on private"}) { id } }`, map[string]any{"p": private.CreatePost.ID}, &onPrivate)
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createComment(input: {postID: $p, body: "on public"}) { id } }`, map[string]any{"p": public.CreatePost.ID}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { createLike(input: {postID: $p}) { id } }`, map[string]any{"p": private.CreatePost.ID}, nil)
		var conv struct{ CreateConversation struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createConversation(input: {title: "alice's", memberIDs: [$a]}) { id } }`, map[string]any{"a": aliceProfile}, &conv)
		bob := signUp(t, s, "bob@example.com")
		var bp struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation { createProfile(input: {handle: "bob", displayName: "Bob"}) { id } }`, nil, &bp)
		// A message of bob's in alice's conversation (an admin may link them).
		s.MustDo(t, `mutation($o: ID!, $c: ID!, $b: ID!) { createMessage(input: {ownerID: $o, conversationID: $c, senderID: $b, body: "bob's"}) { id } }`,
			map[string]any{"o": bob.User.ID, "c": conv.CreateConversation.ID, "b": bp.CreateProfile.ID}, nil)

		for _, c := range []struct {
			name, who, token, query string
			vars                    map[string]any
			want                    string // the data, as JSON
		}{
			{"belongsTo to a stricter model (list)", "bob", bob.AccessToken,
				`{ comments(orderBy: [{field: CREATED_AT}]) { edges { node { body post { body } } } } }`, nil,
				`{"comments":{"edges":[{"node":{"body":"on private","post":null}},{"node":{"body":"on public","post":{"body":"public"}}}]}}`},
			{"belongsTo to a stricter model (one record)", "bob", bob.AccessToken,
				`query($id: ID!) { comment(id: $id) { body post { body } } }`, map[string]any{"id": onPrivate.CreateComment.ID},
				`{"comment":{"body":"on private","post":null}}`},
			{"belongsTo to a stricter model (node)", "bob", bob.AccessToken,
				`query($id: ID!) { node(id: $id) { ... on Comment { body post { body } } } }`, map[string]any{"id": onPrivate.CreateComment.ID},
				`{"node":{"body":"on private","post":null}}`},
			{"belongsTo, the foreign key stays", "bob", bob.AccessToken,
				`{ likes { edges { node { postID post { body } } } } }`, nil,
				`{"likes":{"edges":[{"node":{"postID":"` + private.CreatePost.ID + `","post":null}}]}}`},
			{"belongsTo to an owner-only model", "bob", bob.AccessToken,
				`{ messages { edges { node { body conversation { title } } } } }`, nil,
				`{"messages":{"edges":[{"node":{"body":"bob's","conversation":null}}]}}`},
			{"belongsTo, readable", "alice", alice.AccessToken,
				`{ likes { edges { node { post { body } } } } }`, nil,
				`{"likes":{"edges":[{"node":{"post":{"body":"private"}}}]}}`},
			{"belongsTo to a public model, signed out", "a visitor", "",
				`{ posts { edges { node { body author { handle } } } } }`, nil,
				`{"posts":{"edges":[{"node":{"body":"public","author":{"handle":"alice"}}}]}}`},
			{"hasOne", "a visitor", "",
				`{ profiles(where: {handle: "alice"}) { edges { node { handle settings { theme } } } } }`, nil,
				`{"profiles":{"edges":[{"node":{"handle":"alice","settings":null}}]}}`},
			{"hasOne, readable", "alice", alice.AccessToken,
				`{ profiles(where: {handle: "alice"}) { edges { node { handle settings { theme } } } } }`, nil,
				`{"profiles":{"edges":[{"node":{"handle":"alice","settings":{"theme":"dark"}}}]}}`},
			{"hasMany", "a visitor", "",
				`query($id: ID!) { profile(id: $id) { handle posts { totalCount edges { node { body } } } } }`, map[string]any{"id": aliceProfile},
				`{"profile":{"handle":"alice","posts":{"totalCount":1,"edges":[{"node":{"body":"public"}}]}}}`},
			{"hasMany, nothing readable", "a visitor", "",
				`query($id: ID!) { post(id: $id) { body comments { totalCount } } }`, map[string]any{"id": public.CreatePost.ID},
				`{"post":{"body":"public","comments":{"totalCount":0}}}`},
			{"manyToMany", "bob", bob.AccessToken,
				`query($id: ID!) { profile(id: $id) { handle conversations { totalCount } } }`, map[string]any{"id": aliceProfile},
				`{"profile":{"handle":"alice","conversations":{"totalCount":0}}}`},
			{"manyToMany, readable", "alice", alice.AccessToken,
				`query($id: ID!) { profile(id: $id) { handle conversations { totalCount } } }`, map[string]any{"id": aliceProfile},
				`{"profile":{"handle":"alice","conversations":{"totalCount":1}}}`},
		} {
			r := s.DoAs(t, c.token, c.query, c.vars)
			if len(r.Errors) > 0 {
				t.Errorf("%s, as %s: errors %+v (data %s)", c.name, c.who, r.Errors, r.Data)
				continue
			}
			var got, want any
			if err := json.Unmarshal(r.Data, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(c.want), &want); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Errorf("%s, as %s:\n got %s\nwant %s", c.name, c.who, gb, wb)
			}
		}
	})
}
