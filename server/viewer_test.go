package server

import (
	"testing"

	"kiln/server/kilntest"
)

// TestActorDefaults: an @actor relation to a model with one record per user
// (Post.author, Comment.author, Like.profile, Settings.profile) defaults to
// the viewer's record when the id is omitted; without one the create says
// what to do; an explicit id must still be the viewer's own.
func TestActorDefaults(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		bob := signUp(t, s, "bob@example.com")
		r := s.DoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "before a profile"}) { id } }`, nil)
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "authorID" {
			t.Fatalf("a post without a profile: %s %+v", r.Data, r.Errors)
		}
		if r := s.Do(t, `mutation { createPost(input: {body: "admin", ownerID: "00000000-0000-4000-8000-0000000000aa"}) { id } }`, nil); r.Code() != "BAD_USER_INPUT" {
			t.Fatalf("an admin's post without authorID: %+v", r.Errors)
		}
		pid := myProfile(t, s, alice.AccessToken, "alice")
		bobProfile := myProfile(t, s, bob.AccessToken, "bob")
		var post struct {
			CreatePost struct {
				ID     string
				Author struct{ ID string }
			}
		}
		s.MustDoAs(t, alice.AccessToken, `mutation { createPost(input: {body: "hello"}) { id author { id } } }`, nil, &post)
		if post.CreatePost.Author.ID != pid {
			t.Fatalf("the post's author is %s, want alice's profile %s", post.CreatePost.Author.ID, pid)
		}
		var c struct {
			CreateComment struct{ Author struct{ ID string } }
		}
		s.MustDoAs(t, bob.AccessToken, `mutation($p: ID!) { createComment(input: {postID: $p, body: "hi"}) { author { id } } }`, map[string]any{"p": post.CreatePost.ID}, &c)
		if c.CreateComment.Author.ID != bobProfile {
			t.Fatalf("bob's comment's author is %s, want %s", c.CreateComment.Author.ID, bobProfile)
		}
		var st struct {
			CreateSettings struct{ Profile struct{ ID string } }
		}
		s.MustDoAs(t, alice.AccessToken, `mutation { createSettings(input: {theme: "dark"}) { profile { id } } }`, nil, &st)
		if st.CreateSettings.Profile.ID != pid {
			t.Fatalf("alice's settings belong to %s", st.CreateSettings.Profile.ID)
		}
		// Naming another user's profile is still refused.
		if r := s.DoAs(t, bob.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "as alice"}) { id } }`, map[string]any{"a": pid}); r.Code() != "FORBIDDEN" {
			t.Fatalf("bob posting as alice: %+v", r.Errors)
		}
	})
}

// TestViewerLinksAndPublicAuthors: viewer links to the viewer's own record
// of a model with one record per user (Viewer.profile: null before it is
// created, never someone else's), and a signed-out reader of public posts
// reads their authors' public fields but not the private ones.
func TestViewerLinksAndPublicAuthors(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		bob := signUp(t, s, "bob@example.com")
		var v struct {
			Viewer struct{ Profile *struct{ ID, Handle string } }
		}
		s.MustDoAs(t, alice.AccessToken, `{ viewer { profile { id handle } } }`, nil, &v)
		if v.Viewer.Profile != nil {
			t.Fatalf("viewer.profile before alice made one: %+v", v.Viewer.Profile)
		}
		pid := myProfile(t, s, alice.AccessToken, "alice")
		myProfile(t, s, bob.AccessToken, "bob")
		s.MustDoAs(t, alice.AccessToken, `{ viewer { profile { id handle } } }`, nil, &v)
		if v.Viewer.Profile == nil || v.Viewer.Profile.ID != pid || v.Viewer.Profile.Handle != "alice" {
			t.Fatalf("alice's viewer.profile = %+v, want her profile %s", v.Viewer.Profile, pid)
		}
		s.MustDoAs(t, bob.AccessToken, `{ viewer { profile { handle } } }`, nil, &v)
		if v.Viewer.Profile == nil || v.Viewer.Profile.Handle != "bob" {
			t.Fatalf("bob's viewer.profile = %+v", v.Viewer.Profile)
		}

		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "hello", visibility: PUBLIC}) { id } }`, map[string]any{"a": pid}, nil)
		var feed struct {
			Posts struct {
				Edges []struct {
					Node struct {
						Author struct{ Handle, DisplayName string }
					}
				}
			}
		}
		s.MustDoAs(t, "", `{ posts(first: 5) { edges { node { author { handle displayName } } } } }`, nil, &feed)
		if len(feed.Posts.Edges) != 1 || feed.Posts.Edges[0].Node.Author.Handle != "alice" {
			t.Fatalf("a signed-out reader's feed: %+v", feed)
		}
		r := s.DoAs(t, "", `{ posts(first: 5) { edges { node { author { email } } } } }`, nil)
		if string(r.Data) != `{"posts":{"edges":[{"node":{"author":{"email":null}}}]}}` {
			t.Fatalf("a signed-out reader reads the author's email: %s", r.Data)
		}
	})
}
