package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

type session struct {
	AccessToken, RefreshToken string
	User                      struct {
		ID    string
		Email *string
		Roles []string
	}
}

const authFields = `accessToken refreshToken expiresAt user { id email anonymous roles }`

func signUp(t *testing.T, s *kilntest.Server, email string) session {
	t.Helper()
	var out struct{ SignUp session }
	s.MustDoAs(t, "", `mutation($e: String!) { signUp(input: {email: $e, password: "correct horse battery"}) { `+authFields+` } }`, map[string]any{"e": email}, &out)
	return out.SignUp
}

func signIn(t *testing.T, s *kilntest.Server, email string) session {
	t.Helper()
	var out struct{ SignIn session }
	s.MustDoAs(t, "", `mutation($e: String!) { signIn(input: {email: $e, password: "correct horse battery"}) { `+authFields+` } }`, map[string]any{"e": email}, &out)
	return out.SignIn
}

func total(t *testing.T, s *kilntest.Server, token, query string, vars map[string]any) int {
	t.Helper()
	var out map[string]struct{ TotalCount int }
	s.MustDoAs(t, token, query, vars, &out)
	for _, v := range out {
		return v.TotalCount
	}
	t.Fatalf("no connection in %s", query)
	return 0
}

// TestRulesOnEveryPath checks the example schema's rules for each kind of
// viewer on lists, counts, get, node, nested edges, relation filters,
// protected fields and writes.
func TestRulesOnEveryPath(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@example.com")
		bob := signUp(t, s, "bob@example.com")

		var ap struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation { createProfile(input: {handle: "alice", email: "alice@example.com", displayName: "Alice"}) { id } }`, nil, &ap)
		var bp struct{ CreateProfile struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation { createProfile(input: {handle: "bob", email: "bob@example.com", displayName: "Bob"}) { id } }`, nil, &bp)
		post := func(tok, author, vis string) string {
			var out struct{ CreatePost struct{ ID string } }
			s.MustDoAs(t, tok, `mutation($a: ID!, $v: Visibility!) { createPost(input: {authorID: $a, body: "hi", visibility: $v}) { id } }`, map[string]any{"a": author, "v": vis}, &out)
			return out.CreatePost.ID
		}
		alicePublic := post(alice.AccessToken, ap.CreateProfile.ID, "PUBLIC")
		alicePrivate := post(alice.AccessToken, ap.CreateProfile.ID, "PRIVATE")
		post(alice.AccessToken, ap.CreateProfile.ID, "FOLLOWERS")
		post(bob.AccessToken, bp.CreateProfile.ID, "PRIVATE")

		// Lists and counts.
		for _, c := range []struct {
			who   string
			token string
			want  int
		}{{"anonymous", "", 1}, {"bob", bob.AccessToken, 2}, {"alice", alice.AccessToken, 3}} {
			if n := total(t, s, c.token, `{ posts { totalCount } }`, nil); n != c.want {
				t.Errorf("%s sees %d posts, want %d", c.who, n, c.want)
			}
			var list struct {
				Posts struct {
					Edges []struct{ Node struct{ ID string } }
				}
			}
			s.MustDoAs(t, c.token, `{ posts(first: 10) { edges { node { id } } } }`, nil, &list)
			if len(list.Posts.Edges) != c.want {
				t.Errorf("%s lists %d posts, want %d", c.who, len(list.Posts.Edges), c.want)
			}
			for _, e := range list.Posts.Edges {
				if c.who != "alice" && e.Node.ID == alicePrivate {
					t.Errorf("%s listed alice's private post", c.who)
				}
			}
		}
		// Profiles are public, their private fields are not.
		if n := total(t, s, "", `{ profiles { totalCount } }`, nil); n != 2 {
			t.Errorf("anonymous sees %d profiles, want 2", n)
		}
		anonRead := s.DoAs(t, "", `{ profiles { edges { node { handle email birthYear } } } }`, nil)
		var anon struct {
			Profiles struct {
				Edges []struct{ Node map[string]any }
			}
		}
		if err := json.Unmarshal(anonRead.Data, &anon); err != nil {
			t.Fatal(err)
		}
		for _, e := range anon.Profiles.Edges {
			if e.Node["handle"] == nil || e.Node["email"] != nil || e.Node["birthYear"] != nil {
				t.Errorf("anonymous reads a profile as %v: want the handle, no email, no birth year", e.Node)
			}
		}
		// Get, node, nodes.
		var one struct {
			Post  *struct{ ID string }
			Node  map[string]any
			Nodes []map[string]any
		}
		s.MustDoAs(t, bob.AccessToken, `query($id: ID!, $pub: ID!) { post(id: $id) { id } node(id: $id) { id } nodes(ids: [$id, $pub]) { id } }`,
			map[string]any{"id": alicePrivate, "pub": alicePublic}, &one)
		if one.Post != nil || one.Node != nil || one.Nodes[0] != nil || one.Nodes[1] == nil {
			t.Errorf("bob reached alice's private post: %+v", one)
		}
		// Nested edges.
		var nested struct {
			Profile struct {
				Posts    struct{ TotalCount int }
				Settings *struct{ Theme string }
			}
		}
		s.MustDoAs(t, alice.AccessToken, `mutation { createSettings(input: {profileID: "`+ap.CreateProfile.ID+`"}) { id } }`, nil, nil)
		s.MustDoAs(t, bob.AccessToken, `query($id: ID!) { profile(id: $id) { posts { totalCount } settings { theme } } }`, map[string]any{"id": ap.CreateProfile.ID}, &nested)
		if nested.Profile.Posts.TotalCount != 1 || nested.Profile.Settings != nil {
			t.Errorf("nested edges leak to bob: %+v", nested)
		}
		// Relation filters cannot reveal rows.
		if n := total(t, s, bob.AccessToken, `{ profiles(where: {hasPostsWith: [{visibility: PRIVATE}]}) { totalCount } }`, nil); n != 1 {
			t.Errorf("bob found %d profiles with private posts, want 1 (his own)", n)
		}
		if n := total(t, s, bob.AccessToken, `{ profiles(where: {hasSettings: true}) { totalCount } }`, nil); n != 0 {
			t.Errorf("bob found %d profiles with settings, want 0", n)
		}
		if n := total(t, s, alice.AccessToken, `{ profiles(where: {hasSettings: true}) { totalCount } }`, nil); n != 1 {
			t.Errorf("alice found %d profiles with settings, want 1", n)
		}
		// A protected field reads as null with an error, and cannot be filtered on.
		r := s.DoAs(t, bob.AccessToken, `query($id: ID!) { profile(id: $id) { handle email } }`, map[string]any{"id": ap.CreateProfile.ID})
		var pf struct {
			Profile struct {
				Handle string
				Email  *string
			}
		}
		r.Decode(t, &pf)
		if pf.Profile.Email != nil || r.Code() != "FORBIDDEN" || pf.Profile.Handle != "alice" {
			t.Errorf("protected field: %+v %+v", pf, r.Errors)
		}
		if n := total(t, s, bob.AccessToken, `{ profiles(where: {email: "alice@example.com"}) { totalCount } }`, nil); n != 0 {
			t.Errorf("bob probed alice's email: %d", n)
		}
		if n := total(t, s, alice.AccessToken, `{ profiles(where: {email: "alice@example.com"}) { totalCount } }`, nil); n != 1 {
			t.Errorf("alice cannot filter on her own email: %d", n)
		}
		// Writes.
		for _, c := range []struct {
			name, token, query string
			vars               map[string]any
			code               string
		}{
			{"update public post of another", bob.AccessToken, `mutation($id: ID!) { updatePost(id: $id, input: {body: "x"}) { id } }`, map[string]any{"id": alicePublic}, "FORBIDDEN"},
			{"update private post of another", bob.AccessToken, `mutation($id: ID!) { updatePost(id: $id, input: {body: "x"}) { id } }`, map[string]any{"id": alicePrivate}, "NOT_FOUND"},
			{"delete public post of another", bob.AccessToken, `mutation($id: ID!) { deletePost(id: $id) }`, map[string]any{"id": alicePublic}, "FORBIDDEN"},
			{"create as someone else", bob.AccessToken, `mutation($a: ID!, $o: ID!) { createPost(input: {authorID: $a, body: "x", ownerID: $o}) { id } }`, map[string]any{"a": bp.CreateProfile.ID, "o": alice.User.ID}, "FORBIDDEN"},
			{"create signed out", "", `mutation($a: ID!) { createPost(input: {authorID: $a, body: "x"}) { id } }`, map[string]any{"a": bp.CreateProfile.ID}, "UNAUTHENTICATED"},
			{"change owner", alice.AccessToken, `mutation($id: ID!, $o: ID!) { updatePost(id: $id, input: {ownerID: $o}) { id } }`, map[string]any{"id": alicePublic, "o": bob.User.ID}, "FORBIDDEN"},
			{"link to an unreadable record", bob.AccessToken, `mutation($p: ID!) { createLike(input: {profileID: "` + bp.CreateProfile.ID + `", postID: $p}) { id } }`, map[string]any{"p": alicePrivate}, "BAD_USER_INPUT"},
		} {
			r := s.DoAs(t, c.token, c.query, c.vars)
			if r.Code() != c.code {
				t.Errorf("%s: want %s, got %+v", c.name, c.code, r.Errors)
			}
		}
		var still struct {
			Post struct {
				Body    string
				OwnerID string
			}
		}
		s.MustDoAs(t, alice.AccessToken, `query($id: ID!) { post(id: $id) { body ownerID } }`, map[string]any{"id": alicePublic}, &still)
		if still.Post.Body != "hi" || still.Post.OwnerID != alice.User.ID {
			t.Errorf("a refused write changed the post: %+v", still)
		}
		// Roles: a moderator can read and update any post.
		s.MustDo(t, `mutation($u: ID!) { assignRole(userID: $u, role: "moderator") }`, map[string]any{"u": bob.User.ID}, nil)
		mod := signIn(t, s, "bob@example.com")
		if n := total(t, s, mod.AccessToken, `{ posts { totalCount } }`, nil); n != 4 {
			t.Errorf("moderator sees %d posts, want 4", n)
		}
		s.MustDoAs(t, mod.AccessToken, `mutation($id: ID!) { updatePost(id: $id, input: {body: "moderated"}) { id } }`, map[string]any{"id": alicePrivate}, nil)
		r = s.DoAs(t, alice.AccessToken, `mutation($u: ID!) { assignRole(userID: $u, role: "moderator") }`, map[string]any{"u": alice.User.ID})
		if r.Code() != "FORBIDDEN" {
			t.Errorf("non-admin assigned a role: %+v", r.Errors)
		}
	})
}

// TestAccountsOverGraphQL covers sessions end to end: sign-up/sign-in
// enumeration resistance, refresh rotation and reuse, sign-out everywhere,
// alias-based brute force, and the JWKS endpoint.
func TestAccountsOverGraphQL(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	a := signUp(t, s, "Dana@Example.com")
	if a.User.Email == nil || *a.User.Email != "dana@example.com" || a.AccessToken == "" || a.RefreshToken == "" {
		t.Fatalf("sign up: %+v", a)
	}
	var v struct {
		Viewer *struct {
			ID    string
			Email string
		}
	}
	s.MustDoAs(t, a.AccessToken, `{ viewer { id email } }`, nil, &v)
	if v.Viewer == nil || v.Viewer.ID != a.User.ID {
		t.Fatalf("viewer: %+v", v)
	}
	s.MustDoAs(t, "", `{ viewer { id } }`, nil, &v)
	if v.Viewer != nil {
		t.Fatalf("viewer without a token: %+v", v)
	}
	// Same answer for a wrong password and an unknown email.
	wrong := s.DoAs(t, "", `mutation { signIn(input: {email: "dana@example.com", password: "wrong password!"}) { accessToken } }`, nil)
	unknown := s.DoAs(t, "", `mutation { signIn(input: {email: "nobody@example.com", password: "wrong password!"}) { accessToken } }`, nil)
	if wrong.Code() != "UNAUTHENTICATED" || unknown.Code() != "UNAUTHENTICATED" || wrong.Errors[0].Message != unknown.Errors[0].Message || wrong.Status != unknown.Status {
		t.Fatalf("sign-in errors differ: %+v vs %+v", wrong.Errors, unknown.Errors)
	}
	// Sign-up with a taken email behaves as sign-in.
	again := signUp(t, s, "dana@example.com")
	if again.User.ID != a.User.ID {
		t.Fatalf("sign-up with an existing email made a new account")
	}
	// Refresh rotates; replaying the old token after use ends the family.
	var r1 struct{ RefreshSession session }
	s.MustDoAs(t, "", `mutation($t: String!) { refreshSession(refreshToken: $t) { `+authFields+` } }`, map[string]any{"t": a.RefreshToken}, &r1)
	if r1.RefreshSession.RefreshToken == a.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	// A bad bearer token is refused before any resolver runs.
	bad := s.DoAs(t, "not-a-jwt", `{ viewer { id } }`, nil)
	if bad.Status != http.StatusUnauthorized || bad.Code() != "UNAUTHENTICATED" {
		t.Fatalf("bad token: %d %+v", bad.Status, bad.Errors)
	}
	// Sign out everywhere: the access token stops working within seconds.
	s.MustDoAs(t, r1.RefreshSession.AccessToken, `mutation { signOutEverywhere }`, nil, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.DoAs(t, r1.RefreshSession.AccessToken, `{ viewer { id } }`, nil)
		if r.Status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("access token still accepted 10s after signOutEverywhere")
		}
		time.Sleep(200 * time.Millisecond)
	}
	ref := s.DoAs(t, "", `mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }`, map[string]any{"t": r1.RefreshSession.RefreshToken})
	if ref.Code() != "UNAUTHENTICATED" {
		t.Fatalf("refresh after sign-out everywhere: %+v", ref.Errors)
	}
	// Aliases do not multiply attempts: 18 aliased sign-ins hit the limit.
	var q strings.Builder
	q.WriteString("mutation {")
	for i := 0; i < 18; i++ {
		fmt.Fprintf(&q, ` a%d: signIn(input: {email: "victim@example.com", password: "guess-%d-xx"}) { accessToken }`, i, i)
	}
	q.WriteString(" }")
	brute := s.DoAs(t, "", q.String(), nil)
	limited := 0
	for _, e := range brute.Errors {
		if e.Extensions["code"] == "RATE_LIMITED" {
			limited++
			if e.Extensions["retryAfter"] == nil {
				t.Errorf("RATE_LIMITED without retryAfter: %+v", e)
			}
		}
	}
	if limited < 8 {
		t.Fatalf("only %d of 18 aliased attempts were rate limited", limited)
	}
	// JWKS.
	res, err := http.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var jwks struct{ Keys []map[string]string }
	if err := json.Unmarshal(b, &jwks); err != nil || len(jwks.Keys) == 0 || jwks.Keys[0]["kty"] != "OKP" || jwks.Keys[0]["kid"] == "" {
		t.Fatalf("jwks: %s", b)
	}
}
