package ir

import (
	"github.com/gertd/go-pluralize"
	"strings"
	"unicode"

	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/codegen/templates"
)

// The names Kiln, ent, entgql and gqlgen derive from the schema's names,
// in one place: every emitter calls these, so a table, a Go identifier and
// a GraphQL field agree wherever they are named.

// Plural is the English plural of a name ("Person" -> "People",
// "Category" -> "Categories"), from go-pluralize's rules; uncountable
// words stay as they are ("Settings", "Data").
func Plural(s string) string { return plurals.Plural(s) }

var plurals = pluralize.NewClient()

// Singular is ent's singular form of an edge name, so names match ent's
// AddXIDs methods ("followers" -> "follower").
func Singular(s string) string { return gen.Funcs["singular"].(func(string) string)(s) }

// Snake converts camelCase or PascalCase to snake_case ("authorID" ->
// "author_id"): ent field names and SQL columns.
func Snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			prevUpper := i > 0 && unicode.IsUpper(rs[i-1])
			if i > 0 && (prevLower || (prevUpper && nextLower)) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// LowerFirst lower-cases the first letter ("Post" -> "post").
func LowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// UpperFirst upper-cases the first letter ("attachments" -> "Attachments").
func UpperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// EntName is the Go name ent derives for a field or edge named name in
// GraphQL: SetXxx, ClearXxx, HasXxxWith, AddXxxIDs ("authorID" ->
// "AuthorID", "externalID" -> "ExternalID").
func EntName(name string) string { return gen.Funcs["pascal"].(func(string) string)(Snake(name)) }

// GoName is the Go struct field name gqlgen derives for a GraphQL input
// field ("avatarID" -> "AvatarID").
func GoName(name string) string { return templates.ToGo(name) }

// OrderField is the entgql order field of a sortable field ("likeCount" ->
// "LIKE_COUNT").
func OrderField(name string) string { return strings.ToUpper(Snake(name)) }

// IDsName is the input field with the ids of a to-many relation or file
// list ("followers" -> "followerIDs").
func IDsName(name string) string { return Singular(name) + "IDs" }

// GraphQLType is the one GraphQL type printer: the named type of a kind
// (the enum's name for enums), as a list of non-null items when list is
// set, without the outer non-null ("String", "[Visibility!]").
func GraphQLType(kind Kind, enum string, list bool) string {
	n := string(kind)
	if kind == EnumK {
		n = enum
	}
	if list {
		return "[" + n + "!]"
	}
	return n
}

// Plural is the plural of the model's name ("Posts").
func (m *Model) Plural() string {
	if m.PluralName != "" {
		return m.PluralName
	}
	return Plural(m.Name)
}

// ListField is the model's connection query field ("posts"), as entgql
// names it from the ent schema's QueryField annotation.
// A model whose plural is its name (Settings, Data) gets "List" added, so
// the list and the single-record field differ ("settingsList").
func (m *Model) ListField() string {
	if f := LowerFirst(m.Plural()); f != m.Var() {
		return f
	}
	return m.Var() + "List"
}

// ListMethod is the Go name of the list field's resolver ("Posts",
// "SettingsList").
func (m *Model) ListMethod() string { return UpperFirst(m.ListField()) }

// Var is the model's name with a lower-case first letter: its single-record
// query field ("post") and the prefix of its generated Go helpers
// (postRule, postAllows).
func (m *Model) Var() string { return LowerFirst(m.Name) }

// EntName is the Go type ent generates for the model (ent.Post); it is the
// GraphQL type name.
func (m *Model) EntName() string { return m.Name }

// Package is the model's ent package ("post" for ent/post).
func (m *Model) Package() string { return strings.ToLower(m.Name) }

// Snake is the model's name in snake_case, for file names
// (ent/schema/post.go, graph/post.resolvers.go).
func (m *Model) Snake() string { return Snake(m.Name) }

// Column is the field's ent field name and SQL column ("authorID" ->
// "author_id").
func (f *Field) Column() string { return Snake(f.Name) }

// EntName is the Go name ent derives for the field (SetAuthorID).
func (f *Field) EntName() string { return EntName(f.Name) }

// GoName is the field's Go name in gqlgen's input structs.
func (f *Field) GoName() string { return GoName(f.Name) }

// OrderField is the field's entgql order field ("LIKE_COUNT").
func (f *Field) OrderField() string { return OrderField(f.Name) }

// GraphQLType is the field's GraphQL type without the outer non-null.
func (f *Field) GraphQLType() string { return GraphQLType(f.Kind, f.Enum, f.List) }

// Column is the edge's ent edge name ("author", "members").
func (e *Edge) Column() string { return Snake(e.Name) }

// EntName is the Go name ent derives for the edge (WithAuthor,
// HasAuthorWith, QueryAuthor).
func (e *Edge) EntName() string { return EntName(e.Name) }

// IDsName is the create input field linking a many-to-many edge
// ("followers" -> "followerIDs").
func (e *Edge) IDsName() string { return IDsName(e.Name) }

// SingularEntName is the ent name of one item of a to-many edge, as in
// AddFollowerIDs and RemoveFollowerIDs.
func (e *Edge) SingularEntName() string { return EntName(Singular(e.Name)) }

// Input is the create and update input field of a file field: "avatarID",
// "attachmentIDs".
func (f *FileField) Input() string {
	if f.List {
		return IDsName(f.Name)
	}
	return f.Name + "ID"
}

// Column is the ent edge name of a file field ("avatar").
func (f *FileField) Column() string { return Snake(f.Name) }

// FKColumn is the foreign-key column of a single file field ("avatar_id").
func (f *FileField) FKColumn() string { return f.Column() + "_id" }

// EntName is the Go name ent derives for the file field's edge (ClearAvatar).
func (f *FileField) EntName() string { return EntName(f.Name) }

// FKEntName is the Go name ent derives for the foreign key of a single
// file field (SetAvatarID).
func (f *FileField) FKEntName() string { return EntName(f.FKColumn()) }

// ValueName is the Go constant of one of the enum's values
// ("LIGHT_BLUE" of Color -> "ColorLightBlue").
func (e *Enum) ValueName(v string) string { return e.Name + PascalValue(v) }

// PascalValue turns an enum value (UPPER_SNAKE) into a Go identifier
// suffix ("LIGHT_BLUE" -> "LightBlue").
func PascalValue(v string) string {
	parts := strings.Split(strings.ToLower(v), "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// FilesTable is the table of the built-in File model.
const FilesTable = "kiln_files"

// LinkType is the ent type of the join table of a list file field
// (Post.attachments -> PostAttachmentsLink).
func (m *Model) LinkType(f *FileField) string { return m.Name + UpperFirst(f.Name) + "Link" }

// LinkTable is the SQL table of a list file field's join table
// ("kiln_posts_attachments").
func (m *Model) LinkTable(f *FileField) string { return "kiln_" + m.Table + "_" + f.Column() }

// FileBackEdge is the ent edge from File to the records (single fields) or
// join rows (list fields) that reference it: profile_avatar, post_attachments.
func (m *Model) FileBackEdge(f *FileField) string { return m.Snake() + "_" + f.Column() }

// LinkEdge is the ent edge from a model to the join rows of a list file
// field, kept out of GraphQL ("kiln_attachments").
func (f *FileField) LinkEdge() string { return "kiln_" + f.Column() }

// GoName is the Go name gqlgen derives for the file field ("Attachments").
func (f *FileField) GoName() string { return GoName(f.Name) }

// InputGoName is the Go name of the file field's input in gqlgen's input
// structs ("AvatarID", "AttachmentIDs").
func (f *FileField) InputGoName() string { return GoName(f.Input()) }
