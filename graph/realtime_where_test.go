package graph

// Hand-written (not generated): whereNeedsSQL on the example schema.

import (
	"testing"

	"kiln/ent"
	"kiln/ent/post"
	"kiln/ent/predicate"
)

func TestWhereNeedsSQL(t *testing.T) {
	s, yes := "x", true
	cases := []struct {
		name  string
		where *ent.PostWhereInput
		want  bool
	}{
		{"nil", nil, false},
		{"empty", &ent.PostWhereInput{}, false},
		{"own fields", &ent.PostWhereInput{BodyNEQ: &s, TitleHasPrefix: &s}, false},
		{"relation", &ent.PostWhereInput{HasAuthor: &yes}, true},
		{"relation with", &ent.PostWhereInput{HasAuthorWith: []*ent.ProfileWhereInput{{HandleNEQ: &s}}}, true},
		{"under not", &ent.PostWhereInput{Not: &ent.PostWhereInput{HasComments: &yes}}, true},
		{"under or", &ent.PostWhereInput{Or: []*ent.PostWhereInput{{Body: &s}, {HasLikes: &yes}}}, true},
		{"and of own fields", &ent.PostWhereInput{And: []*ent.PostWhereInput{{Body: &s}, nil}}, false},
		{"extra predicates", &ent.PostWhereInput{Predicates: []predicate.Post{post.BodyEQ(s)}}, true},
	}
	for _, c := range cases {
		var where any = c.where
		if got := whereNeedsSQL[ent.Post](where); got != c.want {
			t.Errorf("%s: whereNeedsSQL = %v, want %v", c.name, got, c.want)
		}
	}
}
