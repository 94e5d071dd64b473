// Package clientapi derives, from the IR, the GraphQL API shape that the
// client SDK emitters (swift, kotlin) target: per model the output fields,
// create and update input fields, filter predicates, order fields, and the
// operation documents each SDK call sends. It mirrors what the server's
// generated schema (entgql plus Kiln's SDL) exposes, so both SDKs send the
// same documents; tests validate every document against graph/*.graphql.
package clientapi

import (
	"fmt"
	"strings"

	"kiln/generator/internal/ir"
)

// API is everything the SDK emitters need.
type API struct {
	Models     []*Model
	Enums      []*ir.Enum
	Operations []*Operation // custom operations from schema/operations
}

// Model is one @model as the client sees it.
type Model struct {
	IR        *ir.Model
	Name      string // "Post"
	Single    string // query field for one record: "post"
	List      string // connection query field: "posts"
	Fields    []Field
	Create    []Field
	Update    []Field // every field optional; Patch marks absent-vs-null fields
	Filters   []Filter
	OrderBy   []string // PostOrderField values
	Events    []string // "created", "updated", "deleted"
	Selection string   // the selection set of one record, e.g. "{ id createdAt ... }"
}

// Type is a client-side type.
type Type struct {
	Kind ir.Kind // String, Int, Float, Boolean, ID, Time, JSON, Enum, FileKind
	Enum string
	List bool
}

// GraphQL is the GraphQL type name, without nullability of the outer value.
func (t Type) GraphQL() string { return ir.GraphQLType(t.Kind, t.Enum, t.List) }

// Field is an output or input field.
type Field struct {
	Name        string
	Description string
	Type        Type
	Nullable    bool // output: may be null; create input: optional
	Patch       bool // update input: null clears the field (absent vs null matters)
}

// Filter is one predicate of a WhereInput.
type Filter struct {
	Name string
	Type Type
	// Self is set for not/and/or (Type is then unused); Target for
	// has<Edge>With (a list of the target model's where input).
	Self   string // "not" (one), "and"/"or" (list)
	Target string
}

// Build derives the API from the IR.
func Build(s *ir.Schema, ops []*Operation) *API {
	api := &API{Enums: s.Enums, Operations: ops}
	for _, m := range s.Models {
		api.Models = append(api.Models, model(s, m))
	}
	return api
}

func model(s *ir.Schema, m *ir.Model) *Model {
	cm := &Model{IR: m, Name: m.Name, Single: LowerFirst(m.Name), List: m.ListField(), Events: m.Realtime}
	cm.Fields = []Field{
		{Name: "id", Type: Type{Kind: ir.ID}},
		{Name: "createdAt", Type: Type{Kind: ir.Time}},
		{Name: "updatedAt", Type: Type{Kind: ir.Time}},
		{Name: "version", Type: Type{Kind: ir.Int}, Description: "Incremented on every update; send it back in updates to detect conflicts."},
	}
	for _, f := range m.Fields {
		if len(f.Rules) > 0 {
			continue // field-level @auth: not in the default selection (read it with a custom operation)
		}
		cm.Fields = append(cm.Fields, Field{Name: f.Name, Description: f.Description, Type: fieldType(f), Nullable: f.Nullable})
	}
	cm.Fields = append(cm.Fields, fileOutputFields(m)...)
	cm.Create = []Field{{Name: "id", Type: Type{Kind: ir.ID}, Nullable: true, Description: "Optional client-chosen id (a UUID), so records created offline keep their id."}}
	for _, f := range m.Fields {
		desc := f.Description
		if t := s.ActorDefault(f); t != nil {
			desc = strings.TrimSpace(desc + " Defaults to the viewer's " + t.Name + ".")
		}
		cm.Create = append(cm.Create, Field{Name: f.Name, Description: desc, Type: fieldType(f), Nullable: !s.CreateRequired(f)})
	}
	cm.Update = []Field{{Name: "version", Type: Type{Kind: ir.Int}, Nullable: true, Description: "The version the client last saw; the update fails with CONFLICT if the record changed since."}}
	for _, f := range m.Fields {
		if f.Readonly {
			continue
		}
		cm.Update = append(cm.Update, Field{Name: f.Name, Description: f.Description, Type: fieldType(f), Nullable: true, Patch: f.Nullable})
	}
	for _, e := range m.Edges {
		if e.Relation != ir.ManyToMany {
			continue
		}
		ids := IDsName(e.Name)
		cm.Create = append(cm.Create, Field{Name: ids, Description: "Ids of " + e.Name + " to link.", Type: Type{Kind: ir.ID, List: true}, Nullable: true})
		cm.Update = append(cm.Update,
			Field{Name: "add" + UpperFirst(ids), Description: "Ids of " + e.Name + " to link.", Type: Type{Kind: ir.ID, List: true}, Nullable: true},
			Field{Name: "remove" + UpperFirst(ids), Description: "Ids of " + e.Name + " to unlink.", Type: Type{Kind: ir.ID, List: true}, Nullable: true})
	}
	cm.Create = append(cm.Create, fileInputFields(m, false)...)
	cm.Update = append(cm.Update, fileInputFields(m, true)...)
	cm.Filters = filters(m)
	cm.OrderBy = []string{"CREATED_AT", "UPDATED_AT"}
	for _, f := range m.Fields {
		if f.Sortable {
			cm.OrderBy = append(cm.OrderBy, UpperSnake(f.Name))
		}
	}
	var sel []string
	for _, f := range cm.Fields {
		sel = append(sel, f.Name+fileSelection(f))
	}
	cm.Selection = "{ " + strings.Join(sel, " ") + " }"
	return cm
}

func fieldType(f *ir.Field) Type { return Type{Kind: f.Kind, Enum: f.Enum, List: f.List} }

// filters mirrors entgql's WhereInput for a model: which predicates each
// field kind gets.
func filters(m *ir.Model) []Filter {
	out := []Filter{{Name: "not", Self: "not"}, {Name: "and", Self: "and"}, {Name: "or", Self: "or"}}
	add := func(name string, t Type, ops ...string) {
		for _, op := range ops {
			ft := t
			switch op {
			case "In", "NotIn":
				ft.List = true
			case "IsNil", "NotNil":
				ft = Type{Kind: ir.Boolean}
			}
			if op == "EQ" {
				op = ""
			}
			out = append(out, Filter{Name: name + op, Type: ft})
		}
	}
	ordered := []string{"EQ", "NEQ", "In", "NotIn", "GT", "GTE", "LT", "LTE"}
	add("id", Type{Kind: ir.ID}, ordered...)
	add("createdAt", Type{Kind: ir.Time}, ordered...)
	add("updatedAt", Type{Kind: ir.Time}, ordered...)
	add("version", Type{Kind: ir.Int}, ordered...)
	for _, f := range m.Fields {
		if f.List || f.Kind == ir.JSON {
			continue
		}
		t := Type{Kind: f.Kind, Enum: f.Enum}
		var ops []string
		switch {
		case f.Edge != nil, f.Kind == ir.EnumK:
			ops = []string{"EQ", "NEQ", "In", "NotIn"}
		case f.Kind == ir.Boolean:
			ops = []string{"EQ", "NEQ"}
		case f.Kind == ir.String || f.Kind == ir.ID:
			ops = append(append([]string{}, ordered...), "Contains", "HasPrefix", "HasSuffix")
		default:
			ops = ordered
		}
		if f.Nullable {
			ops = append(ops, "IsNil", "NotNil")
		}
		if f.Edge == nil && (f.Kind == ir.String || f.Kind == ir.ID) {
			ops = append(ops, "EqualFold", "ContainsFold")
		}
		add(f.Name, t, ops...)
	}
	for _, e := range m.Edges {
		out = append(out, Filter{Name: "has" + UpperFirst(e.Name), Type: Type{Kind: ir.Boolean}},
			Filter{Name: "has" + UpperFirst(e.Name) + "With", Target: e.Target})
	}
	return out
}

// Document is an operation document with its root field.
type Document struct {
	Name  string // operation name
	Field string // root field in data
	Text  string
}

// Get returns the document of a single-record query.
func (m *Model) Get() Document {
	return Document{Name: m.Name, Field: m.Single, Text: fmt.Sprintf("query %s($id: ID!) { %s(id: $id) %s }", m.Name, m.Single, m.Selection)}
}

// ListDoc returns the connection query.
func (m *Model) ListDoc() Document {
	return Document{Name: UpperFirst(m.List), Field: m.List, Text: fmt.Sprintf(
		"query %s($where: %sWhereInput, $orderBy: [%sOrder!], $first: Int, $after: Cursor, $last: Int, $before: Cursor) { %s(where: $where, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node %s } } }",
		UpperFirst(m.List), m.Name, m.Name, m.List, m.Selection)}
}

// CreateDoc returns the create mutation.
func (m *Model) CreateDoc() Document {
	return Document{Name: "Create" + m.Name, Field: "create" + m.Name, Text: fmt.Sprintf("mutation Create%[1]s($input: Create%[1]sInput!) { create%[1]s(input: $input) %[2]s }", m.Name, m.Selection)}
}

// UpdateDoc returns the update mutation.
func (m *Model) UpdateDoc() Document {
	return Document{Name: "Update" + m.Name, Field: "update" + m.Name, Text: fmt.Sprintf("mutation Update%[1]s($id: ID!, $input: Update%[1]sInput!) { update%[1]s(id: $id, input: $input) %[2]s }", m.Name, m.Selection)}
}

// DeleteDoc returns the delete mutation.
func (m *Model) DeleteDoc() Document {
	return Document{Name: "Delete" + m.Name, Field: "delete" + m.Name, Text: fmt.Sprintf("mutation Delete%[1]s($id: ID!) { delete%[1]s(id: $id) }", m.Name)}
}

// EventDoc returns the subscription for an event ("created", "updated",
// "deleted"); deleted events carry only the id.
func (m *Model) EventDoc(event string) Document {
	field := m.Single + UpperFirst(event)
	sel := " " + m.Selection
	if event == "deleted" {
		sel = ""
	}
	return Document{Name: m.Name + UpperFirst(event), Field: field, Text: fmt.Sprintf("subscription %s($where: %sWhereInput) { %s(where: $where)%s }", m.Name+UpperFirst(event), m.Name, field, sel)}
}

// Auth documents: the session mutations of graph/auth.graphql.
const authSelection = "{ accessToken refreshToken expiresAt user { id email anonymous roles createdAt } }"

// AuthDocs are the auth operations every SDK sends.
var AuthDocs = map[string]Document{
	"signUp":                   {Name: "SignUp", Field: "signUp", Text: "mutation SignUp($input: CredentialsInput!) { signUp(input: $input) " + authSelection + " }"},
	"signIn":                   {Name: "SignIn", Field: "signIn", Text: "mutation SignIn($input: CredentialsInput!) { signIn(input: $input) " + authSelection + " }"},
	"signInAnonymously":        {Name: "SignInAnonymously", Field: "signInAnonymously", Text: "mutation SignInAnonymously { signInAnonymously " + authSelection + " }"},
	"refreshSession":           {Name: "RefreshSession", Field: "refreshSession", Text: "mutation RefreshSession($refreshToken: String!) { refreshSession(refreshToken: $refreshToken) " + authSelection + " }"},
	"signOut":                  {Name: "SignOut", Field: "signOut", Text: "mutation SignOut($refreshToken: String!) { signOut(refreshToken: $refreshToken) }"},
	"signOutEverywhere":        {Name: "SignOutEverywhere", Field: "signOutEverywhere", Text: "mutation SignOutEverywhere { signOutEverywhere }"},
	"viewer":                   {Name: "Viewer", Field: "viewer", Text: "query Viewer { viewer { id email anonymous roles createdAt } }"},
	"changePassword":           {Name: "ChangePassword", Field: "changePassword", Text: "mutation ChangePassword($currentPassword: String!, $newPassword: String!) { changePassword(currentPassword: $currentPassword, newPassword: $newPassword) " + authSelection + " }"},
	"linkAccount":              {Name: "LinkAccount", Field: "linkAccount", Text: "mutation LinkAccount($input: CredentialsInput!) { linkAccount(input: $input) " + authSelection + " }"},
	"requestPasswordReset":     {Name: "RequestPasswordReset", Field: "requestPasswordReset", Text: "mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) }"},
	"signInWithIdToken":        {Name: "SignInWithIdToken", Field: "signInWithIdToken", Text: "mutation SignInWithIdToken($input: IdTokenInput!) { signInWithIdToken(input: $input) " + authSelection + " }"},
	"linkIdentity":             {Name: "LinkIdentity", Field: "linkIdentity", Text: "mutation LinkIdentity($input: IdTokenInput!) { linkIdentity(input: $input) " + authSelection + " }"},
	"requestEmailCode":         {Name: "RequestEmailCode", Field: "requestEmailCode", Text: "mutation RequestEmailCode($email: String!, $redirectTo: String) { requestEmailCode(email: $email, redirectTo: $redirectTo) }"},
	"signInWithEmailCode":      {Name: "SignInWithEmailCode", Field: "signInWithEmailCode", Text: "mutation SignInWithEmailCode($email: String!, $code: String!) { signInWithEmailCode(email: $email, code: $code) " + authSelection + " }"},
	"verifyEmail":              {Name: "VerifyEmail", Field: "verifyEmail", Text: "mutation VerifyEmail($code: String!) { verifyEmail(code: $code) " + authSelection + " }"},
	"startRedirectSignIn":      {Name: "StartRedirectSignIn", Field: "startRedirectSignIn", Text: "mutation StartRedirectSignIn($input: RedirectSignInInput!) { startRedirectSignIn(input: $input) }"},
	"signInWithRedirectCode":   {Name: "SignInWithRedirectCode", Field: "signInWithRedirectCode", Text: "mutation SignInWithRedirectCode($code: String!, $codeVerifier: String) { signInWithRedirectCode(code: $code, codeVerifier: $codeVerifier) " + authSelection + " }"},
	"unlinkIdentity":           {Name: "UnlinkIdentity", Field: "unlinkIdentity", Text: "mutation UnlinkIdentity($provider: String!) { unlinkIdentity(provider: $provider) }"},
	"identities":               {Name: "Identities", Field: "viewer", Text: "query Identities { viewer { identities { provider email emailVerified createdAt } } }"},
	"completeMfaSignIn":        {Name: "CompleteMfaSignIn", Field: "completeMfaSignIn", Text: "mutation CompleteMfaSignIn($mfaToken: String!, $code: String!) { completeMfaSignIn(mfaToken: $mfaToken, code: $code) " + authSelection + " }"},
	"enrollTotp":               {Name: "EnrollTotp", Field: "enrollTotp", Text: "mutation EnrollTotp { enrollTotp { secret uri } }"},
	"confirmTotp":              {Name: "ConfirmTotp", Field: "confirmTotp", Text: "mutation ConfirmTotp($code: String!) { confirmTotp(code: $code) { recoveryCodes session " + authSelection + " } }"},
	"disableTotp":              {Name: "DisableTotp", Field: "disableTotp", Text: "mutation DisableTotp { disableTotp }"},
	"requestEmailVerification": {Name: "RequestEmailVerification", Field: "requestEmailVerification", Text: "mutation RequestEmailVerification { requestEmailVerification }"},
	"registerDevice":           {Name: "RegisterDevice", Field: "registerDevice", Text: "mutation RegisterDevice($input: DeviceInput!) { registerDevice(input: $input) { id } }"},
	"unregisterDevice":         {Name: "UnregisterDevice", Field: "unregisterDevice", Text: "mutation UnregisterDevice($token: String!) { unregisterDevice(token: $token) }"},
	"subscribeToTopic":         {Name: "SubscribeToTopic", Field: "subscribeToTopic", Text: "mutation SubscribeToTopic($token: String!, $topic: String!) { subscribeToTopic(token: $token, topic: $topic) }"},
	"unsubscribeFromTopic":     {Name: "UnsubscribeFromTopic", Field: "unsubscribeFromTopic", Text: "mutation UnsubscribeFromTopic($token: String!, $topic: String!) { unsubscribeFromTopic(token: $token, topic: $topic) }"},
}

// AuthDocNames lists AuthDocs in a fixed order.
var AuthDocNames = []string{"signUp", "signIn", "signInAnonymously", "refreshSession", "signOut", "signOutEverywhere", "viewer", "changePassword", "linkAccount", "requestPasswordReset",
	"signInWithIdToken", "linkIdentity", "requestEmailCode", "signInWithEmailCode", "requestEmailVerification", "verifyEmail",
	"startRedirectSignIn", "signInWithRedirectCode", "unlinkIdentity", "identities", "completeMfaSignIn", "enrollTotp", "confirmTotp", "disableTotp",
	"registerDevice", "unregisterDevice", "subscribeToTopic", "unsubscribeFromTopic"}

// IDsName is the input field linking a many-to-many edge: "memberIDs".
func IDsName(edge string) string { return ir.IDsName(edge) }

// LowerFirst lower-cases the first letter.
func LowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }

// UpperFirst upper-cases the first letter.
func UpperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// UpperSnake is entgql's order field name: "likeCount" -> "LIKE_COUNT".
func UpperSnake(s string) string { return ir.OrderField(s) }
