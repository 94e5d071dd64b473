// Package ir is Kiln's intermediate representation of a schema: the one,
// validated model of types, fields, relations and constraints that every
// emitter reads. It holds no SDL and no positions beyond what error messages
// need, and has no behaviour besides small lookups and the names derived
// from the schema's (names.go).
package ir

import "sort"

// Schema is a validated Kiln schema.
type Schema struct {
	Models []*Model
	Enums  []*Enum
	// Extensions holds developer SDL (extend type Query/Mutation, extra types)
	// that is passed through to gqlgen unchanged, keyed by file name.
	Extensions []File
}

// File is a schema source file passed through as is.
type File struct {
	Name    string
	Content string
}

// Enum is a GraphQL enum.
type Enum struct {
	Name        string
	Description string
	Values      []string
}

// Model is a type marked @model.
type Model struct {
	Name        string // GraphQL type name, e.g. "Post"
	Description string
	Table       string   // SQL table name, e.g. "posts"
	PluralName  string   // @model(plural:), "" for the English plural of Name
	Fields      []*Field // declared scalar and enum fields, in declaration order
	Edges       []*Edge  // declared relation fields, in declaration order
	// Files are the fields of type File or [File!]!, in declaration order.
	Files   []*FileField
	Uniques [][]string
	Indexes [][]string
	// Rules from @auth; none means admins only.
	Rules []Rule
	// Realtime lists the events (created, updated, deleted) published for
	// subscriptions; empty without @realtime.
	Realtime []string
}

// Publishes reports whether the model publishes the event.
func (m *Model) Publishes(event string) bool {
	for _, e := range m.Realtime {
		if e == event {
			return true
		}
	}
	return false
}

// Kind is the storage kind of a field.
type Kind string

// Field kinds.
const (
	String  Kind = "String"
	Int     Kind = "Int"
	Float   Kind = "Float"
	Boolean Kind = "Boolean"
	ID      Kind = "ID"
	Time    Kind = "Time"
	JSON    Kind = "JSON"
	EnumK   Kind = "Enum"
)

// Field is a scalar or enum field (also a list of them).
type Field struct {
	Name        string // GraphQL name, camelCase
	Description string
	Kind        Kind
	Enum        string // enum type name when Kind == EnumK
	List        bool   // a list of Kind
	Nullable    bool
	Unique      bool
	Index       bool
	Readonly    bool
	Sortable    bool
	Default     *Value
	Validate    Validation
	// Edge is set for the foreign-key field that a @belongsTo edge owns.
	Edge *Edge
	// Rules from a field-level @auth: who may read the field.
	Rules []Rule
	// Owner marks a field added or used as the owner of an owner rule: set
	// from the viewer on create, changed by admins only.
	Owner bool
	// ServerOnly (@serverOnly) is set by the server alone: server code
	// (hooks, custom resolvers) and admins; clients may not set it.
	ServerOnly bool
}

// FileField is a field holding uploaded files: single (avatar: File, a
// foreign key to the built-in file table) or a list (attachments: [File!]!,
// a join table keeping the order).
type FileField struct {
	Name        string // GraphQL name, camelCase
	Description string
	List        bool
	Nullable    bool // single fields only; lists are never null
	Readonly    bool
	// Accept lists MIME patterns ("image/*", "video/mp4"); empty accepts
	// every type.
	Accept []string
	// MaxSize is the largest accepted file in bytes; 0 means the server's
	// global limit.
	MaxSize int64
	// Rules from a field-level @auth: who may read the field.
	Rules []Rule
}

// HasFiles reports whether any model has a file field.
func (s *Schema) HasFiles() bool {
	for _, m := range s.Models {
		if len(m.Files) > 0 {
			return true
		}
	}
	return false
}

// FileField returns the file field with the given name, or nil.
func (m *Model) FileField(name string) *FileField {
	for _, f := range m.Files {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Value is a literal default value.
type Value struct {
	Kind  Kind
	Raw   string // the literal as written (enum value, number, string content)
	Items []string
}

// Validation are the checks applied on create and update.
type Validation struct {
	MinLen, MaxLen *int
	Min, Max       *float64
	Pattern        string
	Email          bool
}

// Empty reports whether no validation applies.
func (v Validation) Empty() bool {
	return v.MinLen == nil && v.MaxLen == nil && v.Min == nil && v.Max == nil && v.Pattern == "" && !v.Email
}

// Relation is the kind of an edge.
type Relation string

// Relations. An edge of kind BelongsTo stores the foreign key; HasMany and
// HasOne are its inverses; ManyToMany uses a join table.
const (
	BelongsTo  Relation = "belongsTo"
	HasMany    Relation = "hasMany"
	HasOne     Relation = "hasOne"
	ManyToMany Relation = "manyToMany"
)

// Edge is a relation field.
type Edge struct {
	Name        string // GraphQL field name
	Description string
	Relation    Relation
	Target      string // target model name
	Nullable    bool   // for BelongsTo / HasOne
	Inverse     string // name of the edge on Target that pairs with this one
	// Owner reports, for ManyToMany, whether this side owns the join table.
	Owner bool
	// OnDelete applies to BelongsTo.
	OnDelete string
	// FK is the foreign-key field of a BelongsTo edge, e.g. "authorID".
	FK *Field
	// Unique is true for a BelongsTo edge whose inverse is HasOne.
	Unique bool
	// Actor (@actor, on BelongsTo and ManyToMany edges): the viewer acts
	// through this relation, so every record it is set to on create and
	// update must be one the viewer owns (admins excepted).
	Actor bool
}

// OwnerFields returns the fields of m that owner rules name.
func (m *Model) OwnerFields() []*Field {
	var out []*Field
	for _, f := range m.Fields {
		if f.Owner {
			out = append(out, f)
		}
	}
	return out
}

// PerUserOwner returns the owner field of a model that holds one record
// per user (an owner rule's field with a unique constraint of its own, like
// a profile), or nil. Such a model is linked from Viewer, and acting
// relations to it default to the viewer's record.
func (m *Model) PerUserOwner() *Field {
	owners := m.OwnerFields()
	if len(owners) != 1 {
		return nil
	}
	f := owners[0]
	if f.Unique {
		return f
	}
	for _, u := range m.Uniques {
		if len(u) == 1 && (u[0] == f.Name || u[0] == f.Column()) {
			return f
		}
	}
	return nil
}

// ActorDefault returns the model whose viewer's record an omitted create
// value of f defaults to: f is the required foreign key of an @actor
// relation to a model with one record per user (authorID -> the viewer's
// Profile). Nil otherwise.
func (s *Schema) ActorDefault(f *Field) *Model {
	if f.Edge == nil || !f.Edge.Actor || f.Nullable || f.List {
		return nil
	}
	if t := s.Model(f.Edge.Target); t != nil && t.PerUserOwner() != nil {
		return t
	}
	return nil
}

// CreateRequired reports whether a create input must carry f: not
// nullable, no default, not a list, not the owner (set from the viewer),
// and not an @actor id that defaults to the viewer's record.
func (s *Schema) CreateRequired(f *Field) bool {
	return !f.Nullable && f.Default == nil && !f.List && !f.Owner && s.ActorDefault(f) == nil
}

// PerUserModels are the models with one record per user, in order.
func (s *Schema) PerUserModels() []*Model {
	var out []*Model
	for _, m := range s.Models {
		if m.PerUserOwner() != nil {
			out = append(out, m)
		}
	}
	return out
}

// Model returns the model with the given name, or nil.
func (s *Schema) Model(name string) *Model {
	for _, m := range s.Models {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// EnumByName returns the enum with the given name, or nil.
func (s *Schema) EnumByName(name string) *Enum {
	for _, e := range s.Enums {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Edge returns the edge with the given name, or nil.
func (m *Model) Edge(name string) *Edge {
	for _, e := range m.Edges {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Field returns the field with the given name, or nil.
func (m *Model) Field(name string) *Field {
	for _, f := range m.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Sort orders models and enums by name so emitters are deterministic.
func (s *Schema) Sort() {
	sort.Slice(s.Models, func(i, j int) bool { return s.Models[i].Name < s.Models[j].Name })
	sort.Slice(s.Enums, func(i, j int) bool { return s.Enums[i].Name < s.Enums[j].Name })
}

// Operations a rule can grant.
const (
	OpCreate = "create"
	OpRead   = "read"
	OpUpdate = "update"
	OpDelete = "delete"
)

// AllOps lists every operation in a fixed order.
var AllOps = []string{OpCreate, OpRead, OpUpdate, OpDelete}

// Rule is one @auth rule. Rules are OR-ed; Owner, Roles and Where of one rule
// are AND-ed.
type Rule struct {
	Allow      string // "public", "authenticated", "owner" or "role"
	Operations []string
	OwnerField string // GraphQL name of the owner ID field, for "owner"
	Roles      []string
	Where      []Cond
	// AAL2: the rule grants only to viewers whose session passed a second
	// factor (access.Viewer.HasAAL2).
	AAL2 bool
}

// Grants reports whether the rule grants op.
func (r Rule) Grants(op string) bool {
	for _, o := range r.Operations {
		if o == op {
			return true
		}
	}
	return false
}

// Cond compares a record field with a literal or a viewer claim.
type Cond struct {
	Field string // GraphQL field name
	Op    string // eq, neq, in, notIn, gt, gte, lt, lte, isNil
	// Exactly one of the following is set.
	Literal *Value // Items holds in/notIn lists; Raw "true"/"false" for isNil
	Viewer  string // "id", "claims.<name>"
}
