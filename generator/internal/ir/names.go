package ir

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"

	"github.com/gertd/go-pluralize"

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
func (m *Model) ListMethod() string { return GoName(m.ListField()) }

// GetMethod is the Go method gqlgen expects for the single-record query
// field: gqlgen's own name for Var ("URL" for a model URL, whose field is
// "uRL").
func (m *Model) GetMethod() string { return GoName(m.Var()) }

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

// Column is the field's ent field name, and its SQL column unless that is
// too long (StorageKey) ("authorID" -> "author_id").
func (f *Field) Column() string { return Snake(f.Name) }

// StorageKey is the field's SQL column when it differs from its ent field
// name (Column): a name longer than MaxIdent, shortened by Ident; "" if the
// column is the ent name.
func (f *Field) StorageKey() string { return storageKey(f.Column()) }

// storageKey is Ident(name) when it differs from name, else "".
func storageKey(name string) string {
	if id := Ident(name); id != name {
		return id
	}
	return ""
}

// MaxIdent is the longest SQL identifier Kiln emits: PostgreSQL silently
// truncates identifiers to 63 bytes, so two long names sharing a 63-byte
// prefix would become one.
const MaxIdent = 63

// Ident is name as an SQL identifier (table, column, join table): name
// itself up to MaxIdent bytes; a longer name keeps its first 54 bytes and
// ends in "_" and 8 hex digits of its SHA-256, so the result is the same
// on every run and on both dialects, and two long names with a common
// prefix stay apart. (Index and foreign-key names are shortened the way
// ent does, by the migration planner.)
func Ident(name string) string {
	if len(name) <= MaxIdent {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:MaxIdent-9] + "_" + hex.EncodeToString(sum[:4])
}

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
// ("kiln_posts_attachments"), shortened by Ident.
func (m *Model) LinkTable(f *FileField) string { return Ident("kiln_" + m.Table + "_" + f.Column()) }

// FileBackEdge is the ent edge from File to the records (single fields) or
// join rows (list fields) that reference it: profile_avatar,
// post_attachments. ent names an edge's methods from its singular, so a
// list whose singular is the name of a single file field of the same
// model (a single "file" and a list "files" would both give
// AddSampleFileIDs) ends in "_links" instead; other names stay as they
// were, so existing apps keep their constraint names.
func (m *Model) FileBackEdge(f *FileField) string {
	name := m.Snake() + "_" + f.Column()
	if !f.List {
		return name
	}
	for _, g := range m.Files {
		if !g.List && Singular(name) == Singular(m.Snake()+"_"+g.Column()) {
			return name + "_links"
		}
	}
	return name
}

// FKStorageKey is the SQL column of a single file field's foreign key when
// it differs from FKColumn (too long), else "".
func (f *FileField) FKStorageKey() string { return storageKey(f.FKColumn()) }

// JoinTable is the join table and its two columns of a many-to-many edge,
// set on its owner when ent's default names (<model>_<edge>,
// <model>_id, <target>_id) would be longer than MaxIdent; nil when they
// fit (ent's defaults stay, so existing apps keep their tables).
func (m *Model) JoinTable(e *Edge) []string {
	table := m.Snake() + "_" + e.Column()
	c1, c2 := m.Snake()+"_id", Snake(e.Target)+"_id"
	if e.Target == m.Name {
		c2 = Singular(Snake(e.Inverse)) + "_id"
	}
	if Ident(table) == table && Ident(c1) == c1 && Ident(c2) == c2 {
		return nil
	}
	c1, c2 = Ident(c1), Ident(c2)
	if c1 == c2 { // a self-reference whose names only differ past the prefix
		c2 = Ident("inverse_" + c2)
	}
	return []string{Ident(table), c1, c2}
}

// LinkEdge is the ent edge from a model to the join rows of a list file
// field, kept out of GraphQL ("kiln_attachments").
func (f *FileField) LinkEdge() string { return "kiln_" + f.Column() }

// GoName is the Go name gqlgen derives for the file field ("Attachments").
func (f *FileField) GoName() string { return GoName(f.Name) }

// InputGoName is the Go name of the file field's input in gqlgen's input
// structs ("AvatarID", "AttachmentIDs").
func (f *FileField) InputGoName() string { return GoName(f.Input()) }

// The names the tools derive from the schema's names, for the schema
// checker: two names of one schema that would derive the same identifier
// are refused before any code is generated, at the schema's position.
//
// The sets are what ent (v0.14), entgql and gqlgen declare per model, field
// and edge; a name is in a set only when it really is declared, so a
// schema is not refused for a clash the generated code does not have.

// entTypeSuffixes are the Go types ent and entgql declare in package ent
// for every model (Post: PostQuery, PostCreate, ...), and the GraphQL types
// entgql declares (PostConnection, PostWhereInput, PostOrder).
var entTypeSuffixes = []string{
	"Client", "Query", "Create", "CreateBulk", "Update", "UpdateOne", "Delete", "DeleteOne",
	"Mutation", "Select", "GroupBy", "Edges", "Connection", "Edge", "WhereInput", "Order",
	"OrderField", "PaginateOption", "Filter", "Upsert", "UpsertOne", "UpsertBulk",
}

// TypeNames are the Go types in package ent and the GraphQL types
// generated for the model: its own, ent's builders, entgql's connection,
// filter and order types, the create and update inputs, ent's slice type
// (Posts) and the join types of its file lists.
func (m *Model) TypeNames() []string {
	names := []string{m.Name, gen.Funcs["plural"].(func(string) string)(m.Name), "Create" + m.Name + "Input", "Update" + m.Name + "Input",
		"Type" + m.Name, "New" + m.Name + "Client", "With" + m.Name + "Filter", "With" + m.Name + "Order"}
	for _, s := range entTypeSuffixes {
		names = append(names, m.Name+s)
	}
	for _, f := range m.Files {
		if f.List {
			names = append(names, m.LinkType(f))
			for _, s := range entTypeSuffixes {
				names = append(names, m.LinkType(f)+s)
			}
		}
	}
	return names
}

// Packages are the Go packages generated for the model: ent/<lower name>
// and those of its file lists' join types.
func (m *Model) Packages() []string {
	pkgs := []string{m.Package()}
	for _, f := range m.Files {
		if f.List {
			pkgs = append(pkgs, strings.ToLower(m.LinkType(f)))
		}
	}
	return pkgs
}

// KilnEntities are the ent types of Kiln's own tables
// (kiln/runtime/store/schema), which an app's ent schema embeds: no model
// may have their names or packages. A test keeps the list in step with the
// store's schema.
var KilnEntities = []string{
	"File", "AuthUser", "AuthSession", "AuthRole", "AuthToken", "AuthIdentity", "AuthFactor",
	"AuthDevice", "AuthEmailCode", "AuthFlow", "IdempotencyKey",
}

// EntPackages are the packages ent generates next to the models' packages
// (ent/hook, ent/predicate, ...), Kiln's ent/schema and the packages of
// Kiln's own tables (ent/file, ent/authuser, ...): no model's package may
// be one of them.
var EntPackages = append([]string{
	"enttest", "hook", "intercept", "internal", "migrate", "predicate", "privacy", "runtime", "schema",
}, kilnPackages()...)

func kilnPackages() []string {
	var out []string
	for _, e := range KilnEntities {
		out = append(out, strings.ToLower(e))
	}
	return out
}

// EntModelFixed are model names ent declares itself in package ent, besides
// those gen.ValidSchemaName refuses (Client, Log, ...): its types and
// functions (Tx, Noder, NotFoundError, ...), and Hooks and Interceptors
// (ent declares with<Model> for each model, and withHooks and
// withInterceptors for itself).
var EntModelFixed = []string{
	"Hooks", "Interceptors", "Tx", "ConstraintError", "FromContext", "InterceptFunc", "IsConstraintError",
	"IsNotFound", "IsNotLoaded", "IsNotSingular", "IsValidationError", "MaskNotFound", "NewContext",
	"NewTxContext", "NodeOption", "Noder", "NotFoundError", "NotLoadedError", "NotSingularError", "Open",
	"OpenTxFromContext", "OrderDirection", "PageInfo", "Querier", "QuerierFunc", "QueryContext",
	"TraverseFunc", "Traverser", "TxFromContext", "ValidationError", "OpCreate", "OpDelete",
	"OpDeleteOne", "OpUpdate", "OpUpdateOne", "WithFixedNodeType", "WithNodeType",
	// gqlgen's resolver types embed *Resolver, so a query field Resolver
	// would clash with it.
	"Resolver",
}

// GeneratedLocals are names the generated code gives its variables,
// parameters and builder fields where it also uses the models' packages
// (ent's ctx, err, id, where, values, selector, ...; Kiln's resolvers' cur
// and input): a model's package of
// the same name would be hidden there. Found by generating a model of
// every such name and compiling it; one-letter names are all taken.
var GeneratedLocals = []string{
	"ctx", "cur", "err", "found", "hooks", "id", "ids", "input", "inters", "name", "ok", "old", "path", "predicates", "selector", "skip", "sources",
	"table", "values", "where",
}

// GeneratedImports are the names of the packages the generated code (ent,
// entgql, gqlgen, Kiln's templates) imports, outside ent/schema (which
// never imports a model's package): a model's package of the same
// name would clash with the import in the files that use both (ent's own
// aliasing does not reach entgql's and gqlgen's files).
// TestGeneratedImports keeps the list in step with the example app.
var GeneratedImports = []string{
	"access", "accounts", "apierror", "app", "ast", "atomic", "bytes", "context", "dialect", "driver",
	"embed", "ent", "entgql", "entsql", "enum", "errcode", "errors", "field", "files", "fmt",
	"gqlerror", "gqlparser", "graphql", "handler", "http", "httptest", "introspection", "io",
	"job", "json", "kilntest", "log", "math", "migrations", "model", "multierror", "paging", "push", "rand", "realtime", "reflect",
	"regexp", "schema", "slices", "sql", "sqlgraph", "sqljson", "stdsql", "store", "storefile",
	"strconv", "strings", "sync", "syntax", "testing", "time", "transport", "uuid",
	"validate",
}

// RootFields are the model's Query, Mutation and Subscription fields.
func (m *Model) RootFields() (query, mutation, subscription []string) {
	query = []string{m.Var(), m.ListField()}
	mutation = []string{"create" + m.Name, "update" + m.Name, "delete" + m.Name}
	for _, ev := range m.Realtime {
		subscription = append(subscription, m.Var()+UpperFirst(ev))
	}
	return query, mutation, subscription
}

// whereOps are the suffixes of entgql's filter fields (titleNEQ, titleIn,
// ...) and of ent's predicates (TitleNEQ, TitleIn, ...).
var whereOps = []string{"", "NEQ", "In", "NotIn", "GT", "GTE", "LT", "LTE", "Contains", "HasPrefix", "HasSuffix", "IsNil", "NotNil", "EqualFold", "ContainsFold"}

// WhereInputFixed are the fields of every WhereInput besides the fields'
// own: a field cannot have these names.
var WhereInputFixed = []string{"not", "and", "or"}

// EntFixed are the Go names ent declares for every model that a field's
// own Go name would clash with: in the model's package the column list
// (Columns, ValidColumn; ent leaves out the predicates of its other names,
// such as Label and Table), on the entity the edges and methods (Edges,
// Update, Unwrap, String, and entgql's IsNode and ToEdge), on the mutation
// the methods of ent.Mutation that ent does not rename for a field
// (FieldCleared for a nullable field named field, AddedFields for a
// number named fields, ...). Found by
// generating a model with a field of every such name and compiling it.
var EntFixed = []string{
	"Columns", "ValidColumn",
	"Edges", "Update", "Unwrap", "String", "IsNode", "ToEdge",
	"Field", "Fields", "Edge", "OldField", "AddField", "AddedField", "ClearField", "FieldCleared", "EdgeCleared", "WhereP",
}

// FilterNames are the names a field (or edge, with edge set) declares in
// the model's WhereInput (GraphQL) and, as Go identifiers, in the model's
// ent package (predicates, the field constant, order options, defaults).
func FilterNames(name string, edge bool) (graphql, goIdents []string) {
	p := EntName(name)
	if edge {
		graphql = []string{"has" + UpperFirst(name), "has" + UpperFirst(name) + "With"}
		goIdents = []string{p, "Query" + p, "Named" + p, "Has" + p, "Has" + p + "With", "By" + p, "By" + p + "Count", "By" + p + "Field", "Edge" + p, p + "Table", p + "Column", p + "InverseTable", p + "PrimaryKey"}
		return graphql, goIdents
	}
	for _, op := range whereOps {
		graphql = append(graphql, name+op)
		goIdents = append(goIdents, p+op)
	}
	goIdents = append(goIdents, "Field"+p, "By"+p, "Default"+p, "UpdateDefault"+p, p+"Validator")
	return graphql, goIdents
}
