package ir

import (
	"strings"
	"testing"
)

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"authorID": "author_id", "Post": "post", "displayName": "display_name", "HTTPServer": "http_server", "lastMessageAt": "last_message_at"} {
		if got := Snake(in); got != want {
			t.Errorf("Snake(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPlural: English plurals for API names, uncountable words kept.
func TestPlural(t *testing.T) {
	for in, want := range map[string]string{
		"Post": "Posts", "Settings": "Settings", "Like": "Likes", "Box": "Boxes", "Match": "Matches", "Person": "People",
		"Category": "Categories", "Day": "Days", "Key": "Keys", "Status": "Statuses", "Child": "Children", "Data": "Data",
	} {
		if got := Plural(in); got != want {
			t.Errorf("Plural(%q) = %q, want %q", in, got, want)
		}
	}
}

// A model's list field differs from its single-record field, and
// @model(plural:) names it.
func TestListField(t *testing.T) {
	for _, c := range []struct {
		m    Model
		want string
	}{
		{Model{Name: "Post"}, "posts"}, {Model{Name: "Person"}, "people"}, {Model{Name: "Settings"}, "settingsList"},
		{Model{Name: "Data"}, "dataList"}, {Model{Name: "Settings", PluralName: "AllSettings"}, "allSettings"},
	} {
		if got := c.m.ListField(); got != c.want || got == c.m.Var() {
			t.Errorf("%s: ListField() = %q, want %q", c.m.Name, got, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	m := &Model{Name: "Settings"}
	f := &Field{Name: "externalID", Kind: String}
	e := &Edge{Name: "followers"}
	list := &FileField{Name: "attachments", List: true}
	one := &FileField{Name: "avatar"}
	for _, c := range [][2]string{
		{m.ListField(), "settingsList"}, {m.Var(), "settings"}, {m.Package(), "settings"}, {(&Model{Name: "PostTag"}).Snake(), "post_tag"},
		{f.Column(), "external_id"}, {f.EntName(), "ExternalID"}, {f.GoName(), "ExternalID"}, {f.OrderField(), "EXTERNAL_ID"},
		{e.IDsName(), "followerIDs"}, {e.SingularEntName(), "Follower"}, {e.EntName(), "Followers"},
		{list.Input(), "attachmentIDs"}, {one.Input(), "avatarID"}, {one.FKColumn(), "avatar_id"}, {one.FKEntName(), "AvatarID"},
		{(&Enum{Name: "Color"}).ValueName("LIGHT_BLUE"), "ColorLightBlue"},
		{(&Field{Kind: EnumK, Enum: "Role", List: true}).GraphQLType(), "[Role!]"}, {f.GraphQLType(), "String"},
	} {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
}

// TestIdent: SQL identifiers up to 63 bytes stay; longer ones (64 to 120
// bytes here) become 63 bytes, deterministic, and two names sharing their
// first 63 bytes stay apart.
func TestIdent(t *testing.T) {
	if got := Ident("posts"); got != "posts" {
		t.Errorf("Ident(posts) = %q", got)
	}
	prefix := strings.Repeat("a", 63)
	if got := Ident(prefix); got != prefix {
		t.Errorf("a 63-byte name changed: %q", got)
	}
	seen := map[string]string{}
	for n := 64; n <= 120; n++ {
		for _, tail := range []string{"x", "y"} {
			name := prefix + strings.Repeat(tail, n-63)
			id := Ident(name)
			if len(id) != MaxIdent || id != Ident(name) || !strings.HasPrefix(id, name[:54]+"_") {
				t.Fatalf("Ident(%d bytes) = %q", n, id)
			}
			if prev, dup := seen[id]; dup {
				t.Fatalf("%s and %s both shorten to %s", prev, name, id)
			}
			seen[id] = name
		}
	}
}

// TestJoinTable: ent's defaults stay for short names; a long model or edge
// name gets an explicit join table and columns of at most 63 bytes, the
// two columns distinct even for a self-reference.
func TestJoinTable(t *testing.T) {
	m := &Model{Name: "Post"}
	if jt := m.JoinTable(&Edge{Name: "tags", Target: "Tag"}); jt != nil {
		t.Errorf("short names: %v, want ent's defaults", jt)
	}
	long := "A" + strings.Repeat("VeryLongModelName", 5)
	self := &Model{Name: long}
	jt := self.JoinTable(&Edge{Name: "followers", Target: long, Inverse: "following"})
	if len(jt) != 3 || jt[1] == jt[2] {
		t.Fatalf("self reference: %v", jt)
	}
	for _, id := range jt {
		if len(id) > MaxIdent {
			t.Errorf("%s is longer than %d bytes", id, MaxIdent)
		}
	}
}
