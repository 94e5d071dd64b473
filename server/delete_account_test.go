package server

import (
	"net/http"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// TestDeleteAccountCleanup: deleting an account deletes what the user owns,
// in one transaction with the account (the handle is free again), and their
// files' bytes are removed; with KILN_DELETE_ACCOUNT=anonymize the records
// stay, owned by nobody.
func TestDeleteAccountCleanup(t *testing.T) {
	const pw = "correct horse battery"
	fileBackendsOn(t, []string{"disk", "s3"}, []string{"KILN_FILES_JANITOR_INTERVAL=200ms"}, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		bob := signUp(t, s, "bob@example.com")
		a := myProfile(t, s, alice.AccessToken, "alice")
		b := myProfile(t, s, bob.AccessToken, "bob")
		var bp struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "bob's"}) { id } }`, map[string]any{"a": b}, &bp)
		avatar := randomBytes(1000)
		f := upload(t, s, alice.AccessToken, "me.png", "image/png", avatar)
		var n struct{ Node struct{ URL string } }
		s.MustDo(t, `query($id: ID!) { node(id: $id) { ... on File { url(expiresIn: 3600) } } }`, map[string]any{"id": f.ID}, &n)
		mustDownload(t, n.Node.URL, avatar)
		for _, m := range []struct {
			q    string
			vars map[string]any
		}{
			{`mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`, map[string]any{"p": a, "f": f.ID}},
			{`mutation($a: ID!) { createPost(input: {authorID: $a, body: "private", visibility: PRIVATE}) { id } }`, map[string]any{"a": a}},
			{`mutation($p: ID!, $a: ID!) { createComment(input: {postID: $p, authorID: $a, body: "hi bob"}) { id } }`, map[string]any{"p": bp.CreatePost.ID, "a": a}},
			{`mutation($p: ID!, $a: ID!) { createLike(input: {postID: $p, profileID: $a}) { id } }`, map[string]any{"p": bp.CreatePost.ID, "a": a}},
			{`mutation($a: ID!) { createSettings(input: {profileID: $a}) { id } }`, map[string]any{"a": a}},
			{`mutation { createConversation(input: {title: "notes"}) { id } }`, nil},
		} {
			s.MustDoAs(t, alice.AccessToken, m.q, m.vars, nil)
		}
		s.MustDoAs(t, alice.AccessToken, `mutation($pw: String!) { deleteAccount(password: $pw) }`, map[string]any{"pw": pw}, nil)

		var left struct {
			Profiles, Posts, Comments, Likes, Settingses, Conversations struct{ TotalCount int }
		}
		s.MustDo(t, `{ profiles { totalCount } posts { totalCount } comments { totalCount } likes { totalCount } settingsList { totalCount } conversations { totalCount } }`, nil, &left)
		if left.Profiles.TotalCount != 1 || left.Posts.TotalCount != 1 || left.Comments.TotalCount+left.Likes.TotalCount+left.Settingses.TotalCount+left.Conversations.TotalCount != 0 {
			t.Errorf("left behind after deleteAccount (bob's profile and post should stay): %+v", left)
		}
		// The handle is free for a new account.
		carol := signUp(t, s, "carol@example.com")
		myProfile(t, s, carol.AccessToken, "alice")
		// The file's bytes go with the next janitor run.
		for i := 0; ; i++ {
			if code, _ := download(t, n.Node.URL); code != http.StatusOK {
				break
			}
			if i == 200 {
				t.Fatal("the deleted account's file is still served")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("anonymize", func(t *testing.T) {
		s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret, "KILN_DELETE_ACCOUNT=anonymize")
		alice := signUp(t, s, "alice@example.com")
		a := myProfile(t, s, alice.AccessToken, "alice")
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "stays"}) { id } }`, map[string]any{"a": a}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($pw: String!) { deleteAccount(password: $pw) }`, map[string]any{"pw": pw}, nil)
		var left struct {
			Posts struct {
				TotalCount int
				Edges      []struct{ Node struct{ OwnerID string } }
			}
		}
		s.MustDo(t, `{ posts { totalCount edges { node { ownerID } } } }`, nil, &left)
		if left.Posts.TotalCount != 1 || left.Posts.Edges[0].Node.OwnerID == alice.User.ID {
			t.Errorf("anonymize: %+v", left)
		}
	})
}
