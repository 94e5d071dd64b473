package ir

import "testing"

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"authorID": "author_id", "Post": "post", "displayName": "display_name", "HTTPServer": "http_server", "lastMessageAt": "last_message_at"} {
		if got := Snake(in); got != want {
			t.Errorf("Snake(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPlural: the list fields and tables the example and tasks schemas
// already have keep their names.
func TestPlural(t *testing.T) {
	for in, want := range map[string]string{
		"Post": "Posts", "Settings": "Settingses", "Like": "Likes", "Box": "Boxes", "Match": "Matches",
		"Category": "Categories", "Day": "Days", "Key": "Keys", "profile_settings": "profile_settingses",
	} {
		if got := Plural(in); got != want {
			t.Errorf("Plural(%q) = %q, want %q", in, got, want)
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
		{m.ListField(), "settingses"}, {m.Var(), "settings"}, {m.Package(), "settings"}, {(&Model{Name: "PostTag"}).Snake(), "post_tag"},
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
