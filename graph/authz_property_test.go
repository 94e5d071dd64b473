package graph

// Hand-written (not generated): holds the SQL form of the example schema's
// rules against their in-memory form on random records and viewers.

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"kiln/ent"
	"kiln/ent/predicate"
	"kiln/ent/schema/enum"
	"kiln/runtime/access"
)

func openTestClient(t *testing.T) *ent.Client {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/p.db?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, db)))
	if err := client.Schema.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	Setup(client)
	t.Cleanup(func() { client.Close() })
	return client
}

func TestRulesSQLMatchesInMemory(t *testing.T) {
	client := openTestClient(t)
	sys := access.System(context.Background())
	rng := rand.New(rand.NewPCG(1, 2))

	users := make([]uuid.UUID, 6)
	for i := range users {
		users[i] = uuid.New()
	}
	var profiles []*ent.Profile
	for i, u := range users {
		p := client.Profile.Create().SetOwnerID(u.String()).SetHandle(fmt.Sprintf("user_%d", i)).
			SetDisplayName("U").SetEmail(fmt.Sprintf("u%d@example.com", i)).SaveX(sys)
		profiles = append(profiles, p)
	}
	vis := []enum.Visibility{enum.VisibilityPublic, enum.VisibilityFollowers, enum.VisibilityPrivate}
	var posts []*ent.Post
	for i := 0; i < 300; i++ {
		author := profiles[rng.IntN(len(profiles))]
		owner := users[rng.IntN(len(users))] // owners need not match authors
		p := client.Post.Create().SetAuthorID(author.ID).SetOwnerID(owner.String()).SetBody("b").
			SetVisibility(vis[rng.IntN(len(vis))]).SaveX(sys)
		posts = append(posts, p)
		if rng.IntN(2) == 0 {
			client.Comment.Create().SetPostID(p.ID).SetAuthorID(author.ID).SetOwnerID(users[rng.IntN(len(users))].String()).SetBody("c").SaveX(sys)
		}
	}
	roleSets := [][]string{nil, {"moderator"}, {"other"}, {"moderator", "other"}}
	var viewers []*access.Viewer
	viewers = append(viewers, nil)
	for i := 0; i < 40; i++ {
		u := users[rng.IntN(len(users))]
		if rng.IntN(5) == 0 {
			u = uuid.New() // owns nothing
		}
		viewers = append(viewers, &access.Viewer{ID: u, Roles: roleSets[rng.IntN(len(roleSets))]})
	}

	allPosts := client.Post.Query().AllX(sys)
	allProfiles := client.Profile.Query().AllX(sys)
	allComments := client.Comment.Query().AllX(sys)
	for _, v := range viewers {
		for _, op := range []string{access.OpCreate, access.OpRead, access.OpUpdate, access.OpDelete} {
			// Post
			var want []uuid.UUID
			for _, n := range allPosts {
				if postAllows(v, op, n) {
					want = append(want, n.ID)
				}
			}
			q := client.Post.Query()
			if p, all := postRule(v, op); !all {
				q.Where(predicate.Post(p))
			}
			compareIDs(t, fmt.Sprintf("Post %s %+v", op, v), want, q.IDsX(sys))
			// Profile
			want = nil
			for _, n := range allProfiles {
				if profileAllows(v, op, n) {
					want = append(want, n.ID)
				}
			}
			pq := client.Profile.Query()
			if p, all := profileRule(v, op); !all {
				pq.Where(predicate.Profile(p))
			}
			compareIDs(t, fmt.Sprintf("Profile %s %+v", op, v), want, pq.IDsX(sys))
			// Comment
			want = nil
			for _, n := range allComments {
				if commentAllows(v, op, n) {
					want = append(want, n.ID)
				}
			}
			cq := client.Comment.Query()
			if p, all := commentRule(v, op); !all {
				cq.Where(predicate.Comment(p))
			}
			compareIDs(t, fmt.Sprintf("Comment %s %+v", op, v), want, cq.IDsX(sys))
		}
		// Field rule: Profile.email.
		var want []uuid.UUID
		for _, n := range allProfiles {
			if fieldAllowed(access.With(context.Background(), v), n, "email") {
				want = append(want, n.ID)
			}
		}
		got := client.Profile.Query().Where(predicate.Profile(fieldRuleProfileEmail(v))).IDsX(sys)
		compareIDs(t, fmt.Sprintf("Profile.email %+v", v), want, got)
		// The interceptor applies the read rule to queries made as the viewer.
		if v != nil {
			ctx := access.With(context.Background(), v)
			var read []uuid.UUID
			for _, n := range allPosts {
				if postAllows(v, access.OpRead, n) {
					read = append(read, n.ID)
				}
			}
			compareIDs(t, fmt.Sprintf("Post interceptor %+v", v), read, client.Post.Query().IDsX(ctx))
			if n := client.Post.Query().CountX(ctx); n != len(read) {
				t.Errorf("count as %+v = %d, want %d", v, n, len(read))
			}
		}
	}
}

// TestAllowsAnyoneImpliesAllows: when the rules that name no viewer allow
// an operation on a record (<model>AllowsAnyone, which lets a shared
// subscription skip the per-subscriber check), every viewer's full rules
// allow it too, on random records and viewers.
func TestAllowsAnyoneImpliesAllows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	users := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	viewers := []*access.Viewer{nil, {ID: users[0]}, {ID: users[1], Anonymous: true}, {ID: uuid.New(), Roles: []string{"moderator"}}, {ID: users[2], Roles: []string{"other"}}}
	vis := []enum.Visibility{enum.VisibilityPublic, enum.VisibilityFollowers, enum.VisibilityPrivate}
	anyone := 0
	for range 300 {
		post := &ent.Post{ID: uuid.New(), OwnerID: users[rng.IntN(len(users))].String(), Visibility: vis[rng.IntN(len(vis))]}
		profile := &ent.Profile{ID: uuid.New(), OwnerID: users[rng.IntN(len(users))].String()}
		comment := &ent.Comment{ID: uuid.New(), OwnerID: users[rng.IntN(len(users))].String()}
		for _, op := range []string{access.OpCreate, access.OpRead, access.OpUpdate, access.OpDelete} {
			for _, v := range viewers {
				if postAllowsAnyone(op, post) && !postAllows(v, op, post) ||
					profileAllowsAnyone(op, profile) && !profileAllows(v, op, profile) ||
					commentAllowsAnyone(op, comment) && !commentAllows(v, op, comment) {
					t.Fatalf("%s allowed to anyone but not to %+v (post %+v)", op, v, post)
				}
			}
			if postAllowsAnyone(op, post) {
				anyone++
			}
		}
	}
	if anyone == 0 {
		t.Fatal("no public post was allowed to anyone: the test checks nothing")
	}
	if postAllowsAnyone(access.OpRead, &ent.Post{Visibility: enum.VisibilityPrivate}) || postAllowsAnyone(access.OpUpdate, &ent.Post{Visibility: enum.VisibilityPublic}) {
		t.Fatal("a private post, or an update, allowed to anyone")
	}
}

func compareIDs(t *testing.T, what string, want, got []uuid.UUID) {
	t.Helper()
	sortIDs := func(x []uuid.UUID) {
		slices.SortFunc(x, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	}
	sortIDs(want)
	sortIDs(got)
	if !slices.Equal(want, got) {
		t.Errorf("%s: SQL gives %d rows, in-memory %d", what, len(got), len(want))
	}
}
