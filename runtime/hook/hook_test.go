package hook

import (
	"maps"
	"testing"
)

func TestReach(t *testing.T) {
	cascades := map[string][]string{
		"Profile": {"Post", "Like"},
		"Post":    {"Comment", "Like"},
		"Node":    {"Node"}, // a self-reference does not loop
	}
	for _, c := range []struct {
		name    string
		deletes map[string]bool
		reach   map[string]bool
	}{
		{"nothing hooked", map[string]bool{"Profile": false, "Post": false, "Like": false, "Comment": false, "Node": false},
			map[string]bool{"Profile": false, "Post": false, "Like": false, "Comment": false, "Node": false}},
		{"likes hooked", map[string]bool{"Profile": false, "Post": false, "Like": true, "Comment": false, "Node": false},
			map[string]bool{"Profile": true, "Post": true, "Like": true, "Comment": false, "Node": false}},
		{"comments hooked, two levels down", map[string]bool{"Profile": false, "Post": false, "Like": false, "Comment": true, "Node": false},
			map[string]bool{"Profile": true, "Post": true, "Like": false, "Comment": true, "Node": false}},
	} {
		got := Reach(cascades, c.deletes)
		if !maps.Equal(got, c.reach) {
			t.Errorf("%s: Reach = %v, want %v", c.name, got, c.reach)
		}
	}
	reach := Reach(cascades, map[string]bool{"Profile": false, "Post": false, "Like": true, "Comment": false})
	if !Cascades("Post", cascades, reach) || Cascades("Comment", cascades, reach) {
		t.Error("Cascades: a Post delete must go through its likes, a Comment delete has nothing to cascade")
	}
}
