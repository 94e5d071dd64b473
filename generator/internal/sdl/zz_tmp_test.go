package sdl

import "testing"

func TestZZ(t *testing.T) {
	for _, s := range []string{
		"type P @model @auth(rules: [{ allow: owner }]) { ownerID: String }",
		"type U @model { ps: [P!]! @hasMany } type P @model @auth(rules: [{ allow: owner }]) { owner: U @belongsTo }",
		"type P @model { post: P @belongsTo  postID: [P!]! @hasMany(field: \"post\") }",
		"type P @model { x: String @default(value: \"a\\nb\") }",
		"type P @model { x: Int @default(value: \"\"\"a\nb\"\"\") }",
		"type P @model @realtime(events: [\"a\\nb\"]) { x: Int }",
		"type P @model { x: String @pattern(regex: \"(\\n\") }",
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: PANIC %v", s, r)
				}
			}()
			sc, err := Load(fuzzFiles(s))
			if err != nil {
				t.Logf("%s:\n%q", s, err.Error())
			} else {
				t.Logf("%s: OK\n%s", s, schemaSummary(sc))
			}
		}()
	}
}
