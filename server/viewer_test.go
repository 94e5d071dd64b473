package server

import (
	"testing"

	"kiln/server/kilntest"
)

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
