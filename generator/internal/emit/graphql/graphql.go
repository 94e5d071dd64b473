// Package graphql emits Kiln's GraphQL layer for an IR: SDL for single-record
// queries, mutations and their inputs, the gqlgen configuration, and the
// complete resolvers. It is pure: IR in, files out.
package graphql

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"entgo.io/ent/entc/gen"
	"github.com/99designs/gqlgen/codegen/templates"
	"github.com/vektah/gqlparser/v2/ast"

	"kiln/generator/internal/emit/entschema"
	"kiln/generator/internal/ir"
	"kiln/generator/internal/write"
)

// EntSchemaHook returns an entgql schema hook that adds what entgql leaves
// out: enums used only in lists, and the JSON scalar.
func EntSchemaHook(s *ir.Schema, module string) func(*gen.Graph, *ast.Schema) error {
	return func(_ *gen.Graph, as *ast.Schema) error {
		for _, e := range s.Enums {
			if _, ok := as.Types[e.Name]; ok {
				continue
			}
			def := &ast.Definition{Kind: ast.Enum, Name: e.Name, Description: e.Description,
				Directives: ast.DirectiveList{goModel(module + "/ent/schema/enum." + e.Name)}}
			for _, v := range e.Values {
				def.EnumValues = append(def.EnumValues, &ast.EnumValueDefinition{Name: v})
			}
			as.AddTypes(def)
		}
		// Fields with their own read rules resolve through @kilnFieldAuth.
		as.Directives["kilnFieldAuth"] = &ast.DirectiveDefinition{Name: "kilnFieldAuth",
			Description: "Applies a field's own @auth read rules (Kiln).",
			Locations:   []ast.DirectiveLocation{ast.LocationFieldDefinition}}
		for _, m := range s.Models {
			t := as.Types[m.Name]
			for _, f := range m.Fields {
				if len(f.Rules) == 0 || t == nil {
					continue
				}
				if fd := t.Fields.ForName(f.Name); fd != nil {
					fd.Directives = append(fd.Directives, &ast.Directive{Name: "kilnFieldAuth", Location: ast.LocationFieldDefinition})
				}
			}
		}
		// Where and order inputs that could reach what the viewer may not
		// read are secured by @kilnSecure as gqlgen decodes them.
		as.Directives["kilnSecure"] = &ast.DirectiveDefinition{Name: "kilnSecure",
			Description: "Restricts a filter or ordering to what the viewer may read (Kiln).",
			Locations:   []ast.DirectiveLocation{ast.LocationInputObject}}
		for _, m := range s.Models {
			for name, on := range map[string]bool{m.Name + "WhereInput": SecuresWhere(m), m.Name + "Order": SecuresOrder(m)} {
				if t := as.Types[name]; t != nil && on {
					t.Directives = append(t.Directives, &ast.Directive{Name: "kilnSecure", Location: ast.LocationInputObject})
				}
			}
		}
		// Let input fields choose their Go type (ID fields that are not UUIDs).
		if d := as.Directives["goField"]; d != nil && d.Arguments.ForName("type") == nil {
			d.Arguments = append(d.Arguments, &ast.ArgumentDefinition{Name: "type", Type: ast.NamedType("String", nil)})
		}
		filesHook(s, as)
		if _, ok := as.Types["JSON"]; !ok {
			as.AddTypes(&ast.Definition{Kind: ast.Scalar, Name: "JSON", Description: "Any JSON object.",
				Directives: ast.DirectiveList{goModel("github.com/99designs/gqlgen/graphql.Map")}})
		}
		return nil
	}
}

func goModel(model string) *ast.Directive {
	return &ast.Directive{Name: "goModel", Arguments: ast.ArgumentList{{
		Name: "model", Value: &ast.Value{Kind: ast.StringValue, Raw: model},
	}}}
}

// Files returns graph/kiln.graphql, gqlgen.yml, graph/resolver.go,
// graph/kiln.go, graph/<model>.resolvers.go and the developer's pass-through
// SDL.
func Files(s *ir.Schema, module string) []write.File {
	files := []write.File{
		{Path: "graph/kiln.graphql", Content: []byte(sdlFile(s))},
		{Path: "gqlgen.yml", Content: []byte(gqlgenConfig(module))},
		{Path: "graph/resolver.go", Content: []byte(resolverRoot(s, module))},
		{Path: "graph/kiln.go", Content: []byte(runtimeFile(s, module))},
		{Path: "graph/auth.graphql", Content: []byte(authSDL)},
		{Path: "graph/auth.resolvers.go", Content: []byte(render("auth.resolvers.go.tmpl", nil))},
		{Path: "graph/authz.go", Content: []byte(authzFile(s, module))},
		{Path: "graph/account.go", Content: []byte(accountFile(s, module))},
		{Path: "graph/app.go", Content: []byte(appFile(s, module))},
		{Path: "graph/policy.go", Content: []byte(policySource)},
		{Path: "graph/realtime.go", Content: []byte(realtimeFile(s, module))},
		{Path: "graph/authz_matrix_test.go", Content: []byte(matrixTest(s, module))},
		{Path: "graph/authz_policy.csv", Content: []byte(CasbinPolicy(s))},
		{Path: "graph/files.graphql", Content: []byte(filesSDL)},
		{Path: "graph/files.go", Content: []byte(filesFile(s, module))},
		{Path: "graph/files.resolvers.go", Content: []byte(filesResolvers(module))},
	}
	for _, m := range s.Models {
		files = append(files, write.File{
			Path:    "graph/" + entschema.Column(m.Name) + ".resolvers.go",
			Content: []byte(modelResolvers(s, m, module)),
		})
	}
	for _, x := range s.Extensions {
		name := x.Name[strings.LastIndex(x.Name, "/")+1:]
		files = append(files, write.File{
			Path:    "graph/ext_" + name,
			Content: []byte("# From " + x.Name + ". Resolvers for these fields are hand-written in graph/.\n\n" + x.Content),
		})
	}
	return files
}

func gqlgenConfig(module string) string {
	return fmt.Sprintf(`# gqlgen configuration written by kiln generate.
schema:
  - graph/*.graphql
# Hand-written resolvers for extend type fields may not exist yet while
# generating; the build reports them.
skip_validation: true
exec:
  filename: graph/generated.go
  package: graph
model:
  filename: graph/model/models_gen.go
  package: model
autobind:
  - %[1]s/ent
  - %[1]s/ent/schema/enum
models:
  ID:
    model:
      - kiln/runtime/validate.UUID
      - github.com/99designs/gqlgen/graphql.ID
  Node:
    model:
      - %[1]s/ent.Noder
  Time:
    model:
      - github.com/99designs/gqlgen/graphql.Time
  AuthPayload:
    model:
      - kiln/runtime/accounts.Payload
  Viewer:
    model:
      - kiln/runtime/accounts.User
  CredentialsInput:
    model:
      - kiln/runtime/accounts.Credentials
  CreateUploadInput:
    model:
      - kiln/runtime/files.UploadInput
  UploadTicket:
    model:
      - kiln/runtime/files.Ticket
  UploadHeader:
    model:
      - kiln/runtime/files.Header
`, module)
}

// IDsName is the input field name for a to-many edge's ids
// ("followers" -> "followerIDs").
func IDsName(edge string) string { return singular(edge) + "IDs" }

// singular is ent's singular form, so names match ent's AddXIDs methods.
func singular(s string) string { return gen.Funcs["singular"].(func(string) string)(s) }

func lowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }
func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func gqlType(f *ir.Field) string {
	n := string(f.Kind)
	if f.Kind == ir.EnumK {
		n = f.Enum
	}
	if f.List {
		return "[" + n + "!]"
	}
	return n
}

func describe(b *strings.Builder, indent, d string) {
	if d == "" {
		return
	}
	fmt.Fprintf(b, "%s\"\"\"\n%s%s\n%s\"\"\"\n", indent, indent, strings.ReplaceAll(d, "\n", "\n"+indent), indent)
}

func sdlFile(s *ir.Schema) string {
	var b strings.Builder
	b.WriteString("extend type Query {\n")
	for _, m := range s.Models {
		describe(&b, "  ", fmt.Sprintf("Fetches one %s by id; null when it does not exist.", m.Name))
		fmt.Fprintf(&b, "  %s(id: ID!): %s\n", lowerFirst(m.Name), m.Name)
	}
	b.WriteString("}\n\ntype Mutation {\n")
	for _, m := range s.Models {
		describe(&b, "  ", fmt.Sprintf("Creates a %s. Runs in one transaction.", m.Name))
		fmt.Fprintf(&b, "  create%[1]s(input: Create%[1]sInput!): %[1]s!\n", m.Name)
		describe(&b, "  ", fmt.Sprintf("Updates a %s. With input.version set, fails with CONFLICT unless it is the current version.", m.Name))
		fmt.Fprintf(&b, "  update%[1]s(id: ID!, input: Update%[1]sInput!): %[1]s!\n", m.Name)
		describe(&b, "  ", fmt.Sprintf("Deletes a %s and returns its id.", m.Name))
		fmt.Fprintf(&b, "  delete%[1]s(id: ID!): ID!\n", m.Name)
	}
	b.WriteString("}\n")
	b.WriteString(subscriptionSDL(s))
	for _, m := range s.Models {
		fmt.Fprintf(&b, "\n\"\"\"\nInput for create%s.\n\"\"\"\ninput Create%sInput {\n", m.Name, m.Name)
		b.WriteString("  \"Optional client-chosen id (a UUID), so records created offline keep their id.\"\n  id: ID\n")
		for _, f := range m.Fields {
			describe(&b, "  ", f.Description)
			t := gqlType(f)
			goType := ""
			if !f.Nullable && f.Default == nil && !f.List && !f.Owner {
				t += "!"
				if f.Kind == ir.ID && f.Edge == nil {
					goType = ` @goField(type: "string")`
				}
			} else if f.Kind == ir.ID && f.Edge == nil {
				goType = ` @goField(type: "*string")`
			}
			fmt.Fprintf(&b, "  %s: %s%s\n", f.Name, t, goType)
		}
		for _, e := range m.Edges {
			if e.Relation == ir.ManyToMany {
				fmt.Fprintf(&b, "  \"Ids of %s to link.\"\n  %s: [ID!]\n", e.Name, IDsName(e.Name))
			}
		}
		for _, f := range m.Files {
			switch {
			case f.List:
				fmt.Fprintf(&b, "  \"Completed uploads for %s, in order.\"\n  %s: [ID!]\n", f.Name, fileInput(f))
			case f.Nullable:
				fmt.Fprintf(&b, "  \"A completed upload for %s.\"\n  %s: ID\n", f.Name, fileInput(f))
			default:
				fmt.Fprintf(&b, "  \"A completed upload for %s.\"\n  %s: ID!\n", f.Name, fileInput(f))
			}
		}
		b.WriteString("}\n")
		fmt.Fprintf(&b, "\n\"\"\"\nInput for update%s. Absent fields are left unchanged; null clears a nullable field.\n\"\"\"\ninput Update%sInput {\n", m.Name, m.Name)
		b.WriteString("  \"The version the client last saw; the update fails with CONFLICT if the record changed since.\"\n  version: Int\n")
		for _, f := range updatable(m) {
			describe(&b, "  ", f.Description)
			omit := ""
			switch {
			case f.Kind == ir.ID && f.Edge == nil && f.Nullable:
				omit = ` @goField(omittable: true, type: "*string")`
			case f.Kind == ir.ID && f.Edge == nil:
				omit = ` @goField(type: "*string")`
			case f.Nullable:
				omit = " @goField(omittable: true)"
			}
			fmt.Fprintf(&b, "  %s: %s%s\n", f.Name, gqlType(f), omit)
		}
		for _, e := range m.Edges {
			if e.Relation == ir.ManyToMany {
				fmt.Fprintf(&b, "  add%s: [ID!]\n  remove%s: [ID!]\n", upperFirst(IDsName(e.Name)), upperFirst(IDsName(e.Name)))
			}
		}
		for _, f := range m.Files {
			switch {
			case f.Readonly:
			case f.List:
				fmt.Fprintf(&b, "  \"Replaces the files of %s (in this order).\"\n  %s: [ID!]\n", f.Name, fileInput(f))
			case f.Nullable:
				fmt.Fprintf(&b, "  \"A completed upload for %s; null detaches the file.\"\n  %s: ID @goField(omittable: true)\n", f.Name, fileInput(f))
			default:
				fmt.Fprintf(&b, "  \"A completed upload for %s.\"\n  %s: ID\n", f.Name, fileInput(f))
			}
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func updatable(m *ir.Model) []*ir.Field {
	var out []*ir.Field
	for _, f := range m.Fields {
		if !f.Readonly {
			out = append(out, f)
		}
	}
	return out
}

// entName is the Go name ent derives for a field or edge (SetXxx, AddXxxIDs).
func entName(name string) string {
	return gen.Funcs["pascal"].(func(string) string)(entschema.Column(name))
}

// goName is the Go struct field name gqlgen derives for an input field.
func goName(name string) string { return templates.ToGo(name) }

func resolverRoot(s *ir.Schema, module string) string {
	return fmt.Sprintf(`// Package graph is the GraphQL layer generated from the schema: gqlgen's
// executable schema and Kiln's resolvers. Hand-written resolvers for fields
// added with extend type Query/Mutation live in their own files here.
package graph

import (
	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/accounts"
	"kiln/runtime/apierror"
	"kiln/runtime/files"
	"kiln/runtime/realtime"
)

// Resolver is the root resolver. Fields are the dependencies resolvers use;
// the server sets them.
type Resolver struct {
	Client   *ent.Client
	Accounts accounts.Service
	// Events is the pub/sub for subscriptions (nil: subscriptions fail).
	Events realtime.Events
	// Dialect is the SQL dialect of Client ("sqlite3" or "postgres").
	Dialect string
	// Files is the file runtime (uploads, attachments, download URLs).
	Files *files.Service
}

// NewSchema returns the executable schema.
func NewSchema(r *Resolver) graphql.ExecutableSchema {
	return NewExecutableSchema(Config{Resolvers: r, Directives: DirectiveRoot{KilnFieldAuth: access.FieldAuth(fieldAllowed), KilnSecure: SecureInput}})
}

// Transactioner runs every mutation operation in one transaction (see
// entgql), except the account and file fields, which manage their own.
func (r *Resolver) Transactioner() entgql.Transactioner {
	return entgql.Transactioner{TxOpener: r.Client, SkipTxFunc: entgql.SkipIfHasFields(append(append([]string{}, accounts.Fields...), files.Mutations...)...)}
}

// Query returns the query resolver.
func (r *Resolver) Query() QueryResolver { return &queryResolver{r} }

// Mutation returns the mutation resolver.
func (r *Resolver) Mutation() MutationResolver { return &mutationResolver{r} }

type queryResolver struct{ *Resolver }

type mutationResolver struct{ *Resolver }
`, module)
}

func runtimeFile(s *ir.Schema, module string) string {
	var tables []string
	for _, m := range s.Models {
		tables = append(tables, m.Table)
	}
	tables = append(tables, entschema.FilesTable)
	sort.Strings(tables)
	var quoted []string
	for _, t := range tables {
		quoted = append(quoted, strconv.Quote(t))
	}
	var loads strings.Builder
	load := func(typ, pkg string) {
		fmt.Fprintf(&loads, `	case %[2]s.Table:
		q, err := r.Client.%[1]s.Query().Where(%[2]s.IDIn(ids...)).CollectFields(ctx, %[1]q, "Node")
		if err != nil {
			return err
		}
		ns, err := q.All(ctx)
		if err != nil {
			return err
		}
		for _, n := range ns {
			found[n.ID] = n
		}
`, typ, pkg)
	}
	for _, m := range s.Models {
		load(m.Name, strings.ToLower(m.Name))
	}
	load("File", "file")
	var listChecks []string
	for _, m := range s.Models {
		for _, f := range m.Fields {
			if f.List && !f.Validate.Empty() {
				listChecks = append(listChecks, fmt.Sprintf("%q: {%d, %d},", m.Name+"."+f.Name, intOr(f.Validate.MinLen), intOr(f.Validate.MaxLen)))
			}
		}
	}
	return fmt.Sprintf(`package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"%[1]s/ent/file"
%[3]s	"kiln/runtime/validate"
)

// Setup registers on a client what every path needs: the read rules of each
// model as query interceptors, and the version of a record increasing by one
// on every update.
func Setup(client *ent.Client) {
	interceptors(client)
	client.Use(func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			if m.Op().Is(ent.OpUpdate | ent.OpUpdateOne) {
				if vm, ok := m.(interface{ AddVersion(int) }); ok {
					vm.AddVersion(1)
				}
			}
			return next.Mutate(ctx, m)
		})
	})
}

// nodeTables are the tables of the records node() resolves.
var nodeTables = []string{%[2]s}

// nodeTypes returns the table of the record of each id it finds, in one
// statement. Ids are unique across tables (createChecksID); an id held by
// several tables (data from before that check) resolves to its oldest
// record, never to one created later under the same id.
func nodeTypes(ctx context.Context, client *ent.Client, dialect string, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = fmt.Sprintf("?%%d", i+1)
		if dialect == "postgres" {
			ph[i] = fmt.Sprintf("$%%d", i+1)
		}
		args[i] = id
	}
	in := strings.Join(ph, ", ")
	parts := make([]string, len(nodeTables))
	for i, t := range nodeTables {
		parts[i] = fmt.Sprintf("SELECT id, '%%s', created_at FROM %%s WHERE id IN (%%s)", t, t, in)
	}
	rows, err := client.QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[uuid.UUID]string, len(ids))
	oldest := make(map[uuid.UUID]time.Time, len(ids))
	for rows.Next() {
		var (
			id    uuid.UUID
			table string
			at    time.Time
		)
		if err := rows.Scan(&id, &table, &at); err != nil {
			return nil, err
		}
		if t, seen := oldest[id]; !seen || at.Before(t) {
			out[id], oldest[id] = table, at
		}
	}
	return out, rows.Err()
}

// createChecksID refuses a client-chosen id that any record already has, in
// any table, so that node(id) always names one record. The answer is the
// same whether the viewer may read that record or not.
func createChecksID(ctx context.Context, client *ent.Client, dialect string, id uuid.UUID) error {
	types, err := nodeTypes(ctx, client, dialect, []uuid.UUID{id})
	if err != nil {
		return err
	}
	if len(types) > 0 {
		return &validate.Error{Field: "id", Rule: "cannot be used: send a new random UUID, or none"}
	}
	return nil
}

// client is the mutation's transaction client when there is one.
func (r *Resolver) client(ctx context.Context) *ent.Client { return clientFor(ctx, r.Client) }

// clientFor is the transaction's client of ctx, or client.
func clientFor(ctx context.Context, client *ent.Client) *ent.Client {
	if c := ent.FromContext(ctx); c != nil {
		return c
	}
	return client
}

// listBounds are the @length bounds of list fields.
var listBounds = map[string][2]int{
	%[4]s
}

func checkList(key, field string, n int) error {
	b, ok := listBounds[key]
	if !ok {
		return nil
	}
	return validate.ListLength(field, n, b[0], b[1])
}

// Node resolves a global id.
func (r *queryResolver) Node(ctx context.Context, id uuid.UUID) (ent.Noder, error) {
	ns, err := r.Nodes(ctx, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	return ns[0], nil
}

// Nodes resolves global ids in one statement per type found (plus one to
// find the types); unknown and unreadable ids resolve to null.
func (r *queryResolver) Nodes(ctx context.Context, ids []uuid.UUID) ([]ent.Noder, error) {
	types, err := nodeTypes(ctx, r.Client, r.Dialect, ids)
	if err != nil {
		return nil, err
	}
	byTable := map[string][]uuid.UUID{}
	for _, id := range ids {
		if t, ok := types[id]; ok {
			byTable[t] = append(byTable[t], id)
		}
	}
	found := make(map[uuid.UUID]ent.Noder, len(ids))
	for table, tids := range byTable {
		if err := r.loadNodes(ctx, table, tids, found); err != nil {
			return nil, err
		}
	}
	out := make([]ent.Noder, len(ids))
	for i, id := range ids {
		n := found[id]
		if f, ok := n.(*ent.File); ok {
			// Files follow the records that reference them.
			visible, err := r.Files.Visible(ctx, r.storeFor(r.client(ctx)), storeFile(f))
			if err != nil {
				return nil, err
			}
			if !visible {
				n = nil
			}
		}
		out[i] = n
	}
	return out, nil
}

// loadNodes loads the records of one table that the viewer may read.
func (r *queryResolver) loadNodes(ctx context.Context, table string, ids []uuid.UUID, found map[uuid.UUID]ent.Noder) error {
	switch table {
%[5]s	}
	return nil
}
`, module, strings.Join(quoted, ", "), modelImports(s, module), strings.Join(listChecks, "\n\t"), loads.String())
}

func intOr(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func modelResolvers(s *ir.Schema, m *ir.Model, module string) string {
	var b strings.Builder
	pkg := strings.ToLower(m.Name)
	plural := entschema.Plural(m.Name)
	fmt.Fprintf(&b, `package graph

import (
	"context"

	"github.com/google/uuid"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"%[1]s/ent/%[2]s"
	"%[1]s/graph/model"
)

var _ = model.Create%[3]sInput{}

// %[3]s fetches one %[3]s; null when it does not exist.
func (r *queryResolver) %[3]s(ctx context.Context, id uuid.UUID) (*ent.%[3]s, error) {
	q, err := r.Client.%[3]s.Query().Where(%[2]s.ID(id)).CollectFields(ctx)
	if err != nil {
		return nil, err
	}
	n, err := q.Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	return n, err
}

// %[4]s lists %[3]s records with filters, ordering and cursor pagination.
func (r *queryResolver) %[4]s(ctx context.Context, after *ent.Cursor, first *int, before *ent.Cursor, last *int, orderBy []*ent.%[3]sOrder, where *ent.%[3]sWhereInput) (*ent.%[3]sConnection, error) {
	return r.Client.%[3]s.Query().Paginate(ctx, after, first, before, last,
		ent.With%[3]sOrder(orderBy), ent.With%[3]sFilter(where.Filter))
}

// Create%[3]s creates a %[3]s in the mutation's transaction, if the rules
// allow the viewer to create the resulting record.
func (r *mutationResolver) Create%[3]s(ctx context.Context, input model.Create%[3]sInput) (*ent.%[3]s, error) {
	client := r.client(ctx)
	v, skip := access.Bypass(ctx)
	c := client.%[3]s.Create()
	if input.ID != nil {
		if err := createChecksID(ctx, client, r.Dialect, *input.ID); err != nil {
			return nil, err
		}
		c.SetID(*input.ID)
	}
`, module, pkg, m.Name, plural)
	// Owner fields first: who creates decides before anything is looked up.
	ordered := append([]*ir.Field{}, m.Fields...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].Owner && !ordered[j].Owner })
	for _, f := range ordered {
		gn := goName(f.Name)
		setter := "Set" + entName(f.Name)
		if f.Owner {
			fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tif !skip && (v == nil || *input.%[1]s != v.ID.String()) {\n\t\t\treturn nil, &access.ForbiddenError{Reason: \"only admins may set %[3]s\"}\n\t\t}\n\t\tc.%[2]s(*input.%[1]s)\n\t} else if v != nil {\n\t\tc.%[2]s(v.ID.String())\n\t}", gn, setter, f.Name)
			if !f.Nullable {
				fmt.Fprintf(&b, " else {\n\t\treturn nil, &access.UnauthenticatedError{Reason: \"sign in to create a %s\"}\n\t}", m.Name)
			}
			b.WriteString("\n")
			continue
		}
		if f.ServerOnly {
			fmt.Fprintf(&b, "\tif input.%s != nil && !skip {\n\t\treturn nil, &access.ForbiddenError{Reason: \"only the server sets %s\"}\n\t}\n", gn, f.Name)
		}
		if f.Edge != nil {
			if f.Nullable {
				fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tif err := checkRefs%[2]s(ctx, client, %[3]q, *input.%[1]s); err != nil {\n\t\t\treturn nil, err\n\t\t}\n", gn, f.Edge.Target, f.Name)
				if f.Edge.Actor {
					fmt.Fprintf(&b, "\t\tif err := checkActor%[2]s(ctx, client, v, skip, %[3]q, *input.%[1]s); err != nil {\n\t\t\treturn nil, err\n\t\t}\n", gn, f.Edge.Target, f.Name)
				}
				b.WriteString("\t}\n")
			} else {
				fmt.Fprintf(&b, "\tif err := checkRefs%[2]s(ctx, client, %[3]q, input.%[1]s); err != nil {\n\t\treturn nil, err\n\t}\n", gn, f.Edge.Target, f.Name)
				if f.Edge.Actor {
					fmt.Fprintf(&b, "\tif err := checkActor%[2]s(ctx, client, v, skip, %[3]q, input.%[1]s); err != nil {\n\t\treturn nil, err\n\t}\n", gn, f.Edge.Target, f.Name)
				}
			}
		}
		if f.List && !f.Validate.Empty() {
			fmt.Fprintf(&b, "\tif err := checkList(%q, %q, len(input.%s)); err != nil {\n\t\treturn nil, err\n\t}\n", m.Name+"."+f.Name, f.Name, gn)
		}
		switch {
		case f.List:
			fmt.Fprintf(&b, "\tif input.%s != nil {\n\t\tc.%s(input.%s)\n\t}\n", gn, setter, gn)
		case f.Kind == ir.JSON:
			fmt.Fprintf(&b, "\tif input.%s != nil {\n\t\tc.%s(input.%s)\n\t}\n", gn, setter, gn)
		case f.Nullable || f.Default != nil:
			fmt.Fprintf(&b, "\tif input.%s != nil {\n\t\tc.%s(*input.%s)\n\t}\n", gn, setter, gn)
		default:
			fmt.Fprintf(&b, "\tc.%s(input.%s)\n", setter, gn)
		}
	}
	for _, e := range m.Edges {
		if e.Relation == ir.ManyToMany {
			ids := goName(IDsName(e.Name))
			fmt.Fprintf(&b, "\tif err := checkRefs%s(ctx, client, %q, input.%s...); err != nil {\n\t\treturn nil, err\n\t}\n", e.Target, IDsName(e.Name), ids)
			if e.Actor {
				fmt.Fprintf(&b, "\tif err := checkActor%s(ctx, client, v, skip, %q, input.%s...); err != nil {\n\t\treturn nil, err\n\t}\n", e.Target, IDsName(e.Name), ids)
			}
			fmt.Fprintf(&b, "\tif len(input.%s) > 0 {\n\t\tc.Add%sIDs(input.%s...)\n\t}\n", ids, entName(singular(e.Name)), ids)
		}
	}
	for _, f := range m.Files {
		gn, key := goName(fileInput(f)), m.Name+"."+f.Name
		switch {
		case f.List:
			fmt.Fprintf(&b, "\tif err := r.Files.Attach(ctx, r.storeFor(client), %q, nil, input.%s...); err != nil {\n\t\treturn nil, err\n\t}\n", key, gn)
		case f.Nullable:
			fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tif err := r.Files.Attach(ctx, r.storeFor(client), %[2]q, nil, *input.%[1]s); err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t\tc.Set%[3]s(*input.%[1]s)\n\t}\n", gn, key, entName(entschema.FileColumn(f)))
		default:
			fmt.Fprintf(&b, "\tif err := r.Files.Attach(ctx, r.storeFor(client), %[2]q, nil, input.%[1]s); err != nil {\n\t\treturn nil, err\n\t}\n\tc.Set%[3]s(input.%[1]s)\n", gn, key, entName(entschema.FileColumn(f)))
		}
	}
	b.WriteString("\tn, err := c.Save(ctx)\n\tif err != nil {\n\t\treturn nil, err\n\t}\n")
	for _, f := range m.Files {
		if f.List {
			fmt.Fprintf(&b, "\tif err := set%s%s(ctx, client, n.ID, input.%s, false); err != nil {\n\t\treturn nil, err\n\t}\n", m.Name, upperFirst(f.Name), goName(fileInput(f)))
		}
	}
	fmt.Fprintf(&b, `	if !skip && !%[3]sAllows(v, access.OpCreate, n) {
		return nil, access.Denied(v, access.OpCreate, %[1]q)
	}
	return n, nil
}

// Update%[1]s updates a %[1]s the viewer may update; with input.Version set
// it fails with a apierror.ConflictError unless that is the current version. The
// updated record must still be one the viewer may update.
func (r *mutationResolver) Update%[1]s(ctx context.Context, id uuid.UUID, input model.Update%[1]sInput) (*ent.%[1]s, error) {
	client := r.client(ctx)
	v, skip := access.Bypass(ctx)
	cur, err := client.%[1]s.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, &apierror.NotFoundError{Type: %[1]q, ID: id}
	}
	if err != nil {
		return nil, err
	}
	if !skip && !%[3]sAllows(v, access.OpUpdate, cur) {
		return nil, access.Denied(v, access.OpUpdate, %[1]q)
	}
	u := client.%[1]s.UpdateOneID(id)
	if input.Version != nil {
		if *input.Version != cur.Version {
			return nil, &apierror.ConflictError{Type: %[1]q, ID: id, Current: cur.Version}
		}
		u.Where(%[2]s.Version(*input.Version))
	}
`, m.Name, pkg, lowerFirst(m.Name))
	for _, f := range updatable(m) {
		gn := goName(f.Name)
		en := entName(f.Name)
		if f.Owner {
			if f.Nullable {
				fmt.Fprintf(&b, "\tif _, ok := input.%s.ValueOK(); ok && !skip {\n\t\treturn nil, &access.ForbiddenError{Reason: \"only admins may change %s\"}\n\t}\n", gn, f.Name)
			} else {
				fmt.Fprintf(&b, "\tif input.%s != nil && !skip {\n\t\treturn nil, &access.ForbiddenError{Reason: \"only admins may change %s\"}\n\t}\n", gn, f.Name)
			}
		}
		if f.ServerOnly {
			if f.Nullable {
				fmt.Fprintf(&b, "\tif _, ok := input.%s.ValueOK(); ok && !skip {\n\t\treturn nil, &access.ForbiddenError{Reason: \"only the server sets %s\"}\n\t}\n", gn, f.Name)
			} else {
				fmt.Fprintf(&b, "\tif input.%s != nil && !skip {\n\t\treturn nil, &access.ForbiddenError{Reason: \"only the server sets %s\"}\n\t}\n", gn, f.Name)
			}
		}
		if f.Edge != nil {
			actor := ""
			if f.Edge.Actor {
				actor = fmt.Sprintf("\t\tif err := checkActor%s(ctx, client, v, skip, %q, *ref); err != nil {\n\t\t\treturn nil, err\n\t\t}\n", f.Edge.Target, f.Name)
			}
			if f.Nullable {
				fmt.Fprintf(&b, "\tif ref, ok := input.%[1]s.ValueOK(); ok && ref != nil {\n\t\tif err := checkRefs%[2]s(ctx, client, %[3]q, *ref); err != nil {\n\t\t\treturn nil, err\n\t\t}\n%[4]s\t}\n", gn, f.Edge.Target, f.Name, actor)
			} else {
				fmt.Fprintf(&b, "\tif ref := input.%[1]s; ref != nil {\n\t\tif err := checkRefs%[2]s(ctx, client, %[3]q, *ref); err != nil {\n\t\t\treturn nil, err\n\t\t}\n%[4]s\t}\n", gn, f.Edge.Target, f.Name, actor)
			}
		}
		if f.List && !f.Validate.Empty() {
			fmt.Fprintf(&b, "\tif input.%s != nil {\n\t\tif err := checkList(%q, %q, len(input.%s)); err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t}\n", gn, m.Name+"."+f.Name, f.Name, gn)
		}
		switch {
		case f.Nullable && (f.List || f.Kind == ir.JSON):
			fmt.Fprintf(&b, "\tif v, ok := input.%[1]s.ValueOK(); ok {\n\t\tif v == nil {\n\t\t\tu.Clear%[2]s()\n\t\t} else {\n\t\t\tu.Set%[2]s(v)\n\t\t}\n\t}\n", gn, en)
		case f.Nullable:
			fmt.Fprintf(&b, "\tif v, ok := input.%[1]s.ValueOK(); ok {\n\t\tif v == nil {\n\t\t\tu.Clear%[2]s()\n\t\t} else {\n\t\t\tu.Set%[2]s(*v)\n\t\t}\n\t}\n", gn, en)
		case f.List || f.Kind == ir.JSON:
			fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tu.Set%[2]s(input.%[1]s)\n\t}\n", gn, en)
		default:
			fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tu.Set%[2]s(*input.%[1]s)\n\t}\n", gn, en)
		}
	}
	for _, e := range m.Edges {
		if e.Relation == ir.ManyToMany {
			ids := goName(IDsName(e.Name))
			sing := entName(singular(e.Name))
			fmt.Fprintf(&b, "\tif err := checkRefs%s(ctx, client, %q, input.Add%s...); err != nil {\n\t\treturn nil, err\n\t}\n", e.Target, "add"+upperFirst(IDsName(e.Name)), ids)
			if e.Actor {
				fmt.Fprintf(&b, "\tif err := checkActor%s(ctx, client, v, skip, %q, input.Add%s...); err != nil {\n\t\treturn nil, err\n\t}\n", e.Target, "add"+upperFirst(IDsName(e.Name)), ids)
			}
			fmt.Fprintf(&b, "\tif len(input.Add%[1]s) > 0 {\n\t\tu.Add%[2]sIDs(input.Add%[1]s...)\n\t}\n", ids, sing)
			fmt.Fprintf(&b, "\tif len(input.Remove%[1]s) > 0 {\n\t\tu.Remove%[2]sIDs(input.Remove%[1]s...)\n\t}\n", ids, sing)
		}
	}
	for _, f := range m.Files {
		if f.Readonly {
			continue
		}
		gn, key := goName(fileInput(f)), m.Name+"."+f.Name
		col := entName(entschema.FileColumn(f))
		switch {
		case f.List:
			fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tkeep, err := ids%[3]s%[4]s(ctx, client, id)\n\t\tif err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t\tif err := r.Files.Attach(ctx, r.storeFor(client), %[2]q, keep, input.%[1]s...); err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t}\n", gn, key, m.Name, upperFirst(f.Name))
		case f.Nullable:
			fmt.Fprintf(&b, "\tif ref, ok := input.%[1]s.ValueOK(); ok {\n\t\tif ref == nil {\n\t\t\tu.Clear%[4]s()\n\t\t} else {\n\t\t\tif err := r.Files.Attach(ctx, r.storeFor(client), %[2]q, fileIDsOf(cur.%[3]s), *ref); err != nil {\n\t\t\t\treturn nil, err\n\t\t\t}\n\t\t\tu.Set%[3]s(*ref)\n\t\t}\n\t}\n", gn, key, col, entName(f.Name))
		default:
			fmt.Fprintf(&b, "\tif input.%[1]s != nil {\n\t\tif err := r.Files.Attach(ctx, r.storeFor(client), %[2]q, []uuid.UUID{cur.%[3]s}, *input.%[1]s); err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t\tu.Set%[3]s(*input.%[1]s)\n\t}\n", gn, key, col)
		}
	}
	b.WriteString("\tn, err := u.Save(ctx)\n\tif ent.IsNotFound(err) {\n\t\t// Changed or deleted between the read and the write.\n\t\treturn nil, &apierror.ConflictError{Type: " + fmt.Sprintf("%q", m.Name) + ", ID: id, Current: -1}\n\t}\n\tif err != nil {\n\t\treturn nil, err\n\t}\n")
	for _, f := range m.Files {
		if f.List && !f.Readonly {
			fmt.Fprintf(&b, "\tif input.%[3]s != nil {\n\t\tif err := set%[1]s%[2]s(ctx, client, id, input.%[3]s, true); err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t}\n", m.Name, upperFirst(f.Name), goName(fileInput(f)))
		}
	}
	fmt.Fprintf(&b, `	if !skip && !%[2]sAllows(v, access.OpUpdate, n) {
		return nil, &access.ForbiddenError{Reason: "the update would take this %[1]s out of your reach"}
	}
	return n, nil
}

// Delete%[1]s deletes a %[1]s the viewer may delete.
func (r *mutationResolver) Delete%[1]s(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	client := r.client(ctx)
	v, skip := access.Bypass(ctx)
	cur, err := client.%[1]s.Get(ctx, id)
	if ent.IsNotFound(err) {
		return uuid.Nil, &apierror.NotFoundError{Type: %[1]q, ID: id}
	}
	if err != nil {
		return uuid.Nil, err
	}
	if !skip && !%[2]sAllows(v, access.OpDelete, cur) {
		return uuid.Nil, access.Denied(v, access.OpDelete, %[1]q)
	}
	if err := client.%[1]s.DeleteOneID(id).Exec(ctx); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}
`, m.Name, lowerFirst(m.Name))
	var lists []*ir.FileField
	for _, f := range m.Files {
		if f.List {
			lists = append(lists, f)
		}
	}
	if len(lists) > 0 {
		fmt.Fprintf(&b, "\n// %[1]s returns the %[1]s field resolver (file lists).\nfunc (r *Resolver) %[1]s() %[1]sResolver { return &%[2]sResolver{r} }\n\ntype %[2]sResolver struct{ *Resolver }\n", m.Name, lowerFirst(m.Name))
		for _, f := range lists {
			fmt.Fprintf(&b, "\n// %[3]s resolves %[1]s.%[4]s, in order.\nfunc (r *%[2]sResolver) %[3]s(ctx context.Context, obj *ent.%[1]s) ([]*ent.File, error) {\n\treturn files%[1]s%[5]s.Load(ctx, r.client(ctx), obj.ID)\n}\n",
				m.Name, lowerFirst(m.Name), goName(f.Name), f.Name, upperFirst(f.Name))
		}
	}
	return b.String()
}

// appFile emits graph/app.go: App, this app for Kiln's server
// (templates/app.go.tmpl).
func appFile(s *ir.Schema, module string) string {
	type field struct{ Column, Name string }
	d := struct {
		Module string
		Models []*ir.Model
		Fields []field
	}{Module: module, Models: s.Models}
	seen := map[string]bool{}
	for _, m := range s.Models {
		for _, f := range m.Fields {
			if c := entschema.Column(f.Name); !seen[c] {
				seen[c] = true
				d.Fields = append(d.Fields, field{c, f.Name})
			}
		}
	}
	sort.Slice(d.Fields, func(i, j int) bool { return d.Fields[i].Column < d.Fields[j].Column })
	return render("app.go.tmpl", d)
}
