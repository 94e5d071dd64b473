package graphql

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"kiln/generator/internal/emit/entschema"
	"kiln/generator/internal/ir"
)

func enumImport(s *ir.Schema, module string) string {
	if len(s.Enums) == 0 {
		return ""
	}
	return fmt.Sprintf("\t%q\n", module+"/ent/schema/enum")
}

// matrixTest emits graph/authz_matrix_test.go: for every model, it seeds
// random valid records, then for every viewer kind (anonymous, users with
// and without roles and claims, admin) checks lists, counts, get, nested
// edges and relation filters against the in-memory rules, and runs update
// and delete through the generated resolvers, expecting exactly the
// outcomes the rules give.
func matrixTest(s *ir.Schema, module string) string {
	var b strings.Builder
	order := seedOrder(s)
	roles, claims := rolesAndClaims(s)
	fmt.Fprintf(&b, `package graph

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
%[5]s	"%[1]s/graph/model"
	"kiln/server/kilntest"
%[2]s)

var _ = time.Now

// matrixRoles and matrixClaims are the roles and claim names the rules use.
var (
	matrixRoles  = []string{%[3]s}
	matrixClaims = []string{%[4]s}
)

// TestAuthorizationMatrix runs the matrix on SQLite, and on PostgreSQL when
// KILN_TEST_POSTGRES_URL is set.
func TestAuthorizationMatrix(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/matrix.db?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		authorizationMatrix(t, entsql.OpenDB(dialect.SQLite, db), "sqlite3")
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := sql.Open("pgx", kilntest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		authorizationMatrix(t, entsql.OpenDB(dialect.Postgres, db), "postgres")
	})
}

func authorizationMatrix(t *testing.T, drv *entsql.Driver, dialectName string) {
	client := ent.NewClient(ent.Driver(drv))
	defer client.Close()
	sys := access.System(context.Background())
	if err := client.Schema.Create(sys); err != nil {
		t.Fatal(err)
	}
	Setup(client)
	rng := rand.New(rand.NewPCG(7, 11))
	m := &matrix{t: t, client: client, sys: sys, rng: rng, ids: map[string][]uuid.UUID{}}
	for i := 0; i < 5; i++ {
		m.users = append(m.users, uuid.New())
	}
	m.pool = append([]string{}, userStrings(m.users)...)
	m.pool = append(m.pool, uuid.NewString(), uuid.NewString())
	m.seed()
	viewers := []*access.Viewer{nil, {Admin: true}}
	for i := 0; i < 24; i++ {
		v := &access.Viewer{ID: m.users[rng.IntN(len(m.users))], Claims: map[string]any{}}
		if i%%6 == 5 {
			v.ID = uuid.New() // owns nothing
		}
		for _, r := range matrixRoles {
			if rng.IntN(2) == 0 {
				v.Roles = append(v.Roles, r)
			}
		}
		for _, c := range matrixClaims {
			if rng.IntN(4) != 0 {
				v.Claims[c] = m.pool[rng.IntN(len(m.pool))]
			}
		}
		viewers = append(viewers, v)
	}
	r := &Resolver{Client: client, Dialect: dialectName}
	srv := handler.New(NewSchema(r))
	srv.AddTransport(transport.POST{})
	m.srv = srv
	for _, v := range viewers {
		ctx := context.Background()
		if v != nil {
			ctx = access.With(ctx, v)
		}
`, module, "", quoteList(roles), quoteList(claims), enumImport(s, module))
	for _, m := range s.Models {
		matrixChecks(&b, s, m)
	}
	b.WriteString("\t}\n\tif m.checks < 100 {\n\t\tt.Fatalf(\"only %d checks ran\", m.checks)\n\t}\n\tt.Logf(\"%d checks\", m.checks)\n}\n")
	// Seeding.
	b.WriteString("\nfunc (m *matrix) seed() {\n")
	for _, mod := range order {
		fmt.Fprintf(&b, "\tm.seed%s()\n", mod.Name)
	}
	for _, mod := range s.Models {
		for _, e := range mod.Edges {
			if e.Relation == ir.ManyToMany && e.Owner {
				fmt.Fprintf(&b, `	for _, id := range m.ids[%[1]q] {
		if targets := m.some(%[2]q, 3); len(targets) > 0 {
			m.client.%[1]s.UpdateOneID(id).Add%[3]sIDs(targets...).ExecX(m.sys)
		}
	}
`, mod.Name, e.Target, entName(singular(e.Name)))
			}
		}
	}
	b.WriteString("}\n")
	for _, mod := range order {
		seedFunc(&b, s, mod)
	}
	expectFuncs(&b, s)
	b.WriteString(matrixRuntime)
	return b.String()
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

func rolesAndClaims(s *ir.Schema) (roles, claims []string) {
	rs, cs := map[string]bool{}, map[string]bool{}
	collect := func(rules []ir.Rule) {
		for _, r := range rules {
			for _, role := range r.Roles {
				rs[role] = true
			}
			for _, c := range r.Where {
				if name, ok := strings.CutPrefix(c.Viewer, "claims."); ok {
					cs[name] = true
				}
			}
		}
	}
	for _, m := range s.Models {
		collect(m.Rules)
		for _, f := range m.Fields {
			collect(f.Rules)
		}
	}
	for r := range rs {
		roles = append(roles, r)
	}
	for c := range cs {
		claims = append(claims, c)
	}
	sort.Strings(roles)
	sort.Strings(claims)
	return roles, claims
}

// seedOrder sorts models so that targets of required references come first.
func seedOrder(s *ir.Schema) []*ir.Model {
	done := map[string]bool{}
	var out []*ir.Model
	for len(out) < len(s.Models) {
		progress := false
		for _, m := range s.Models {
			if done[m.Name] {
				continue
			}
			ready := true
			for _, e := range m.Edges {
				if e.Relation == ir.BelongsTo && !e.Nullable && e.Target != m.Name && !done[e.Target] {
					ready = false
				}
			}
			if ready {
				done[m.Name] = true
				out = append(out, m)
				progress = true
			}
		}
		if !progress { // a cycle of required references: seed the rest anyway
			for _, m := range s.Models {
				if !done[m.Name] {
					done[m.Name] = true
					out = append(out, m)
				}
			}
		}
	}
	return out
}

func seedFunc(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	fmt.Fprintf(b, "\nfunc (m *matrix) seed%[1]s() {\n\tfor i := 0; i < 24; i++ {\n\t\tvar err error\n\t\tfor try := 0; try < 40; try++ {\n\t\t\tc := m.client.%[1]s.Create()\n", m.Name)
	for _, f := range m.Fields {
		set := "c.Set" + entName(f.Name)
		val := ""
		switch {
		case f.Owner:
			val = "m.pool[m.rng.IntN(len(m.pool))]"
		case f.Edge != nil:
			if f.Edge.Target == m.Name || f.Nullable {
				fmt.Fprintf(b, "\t\t\tif ids := m.ids[%q]; len(ids) > 0 && m.rng.IntN(2) == 0 {\n\t\t\t\t%s(ids[m.rng.IntN(len(ids))])\n\t\t\t}\n", f.Edge.Target, set)
				continue
			}
			fmt.Fprintf(b, "\t\t\tif ids := m.ids[%q]; len(ids) > 0 {\n\t\t\t\t%s(ids[m.rng.IntN(len(ids))])\n\t\t\t}\n", f.Edge.Target, set)
			continue
		case f.List:
			n := 3
			if f.Validate.MaxLen != nil && *f.Validate.MaxLen < n {
				n = *f.Validate.MaxLen
			}
			switch f.Kind {
			case ir.String:
				val = fmt.Sprintf("m.strings(%d)", n)
			case ir.Int:
				val = fmt.Sprintf("m.ints(%d)", n)
			case ir.Float:
				val = fmt.Sprintf("m.floats(%d)", n)
			case ir.EnumK:
				val = fmt.Sprintf("pickN(m.rng, %d, %s)", n, enumValues(s, f.Enum))
			}
		case f.Kind == ir.String:
			switch {
			case f.Validate.Email:
				val = "m.email()"
			default:
				val = fmt.Sprintf("m.str(%q, %d, %d)", f.Validate.Pattern, intOr(f.Validate.MinLen), intOr(f.Validate.MaxLen))
			}
		case f.Kind == ir.ID:
			val = "m.pool[m.rng.IntN(len(m.pool))]"
		case f.Kind == ir.Int:
			val = fmt.Sprintf("int(m.num(%s, %s))", floatOr(f.Validate.Min, "0"), floatOr(f.Validate.Max, "10"))
		case f.Kind == ir.Float:
			val = fmt.Sprintf("m.num(%s, %s)", floatOr(f.Validate.Min, "0"), floatOr(f.Validate.Max, "10"))
		case f.Kind == ir.Boolean:
			val = "m.rng.IntN(2) == 0"
		case f.Kind == ir.Time:
			val = "time.Now().Add(time.Duration(m.rng.IntN(1000)) * time.Hour)"
		case f.Kind == ir.JSON:
			val = `map[string]any{"n": m.rng.IntN(3)}`
		case f.Kind == ir.EnumK:
			val = fmt.Sprintf("pick(m.rng, %s)", enumValues(s, f.Enum))
		}
		if f.Nullable {
			fmt.Fprintf(b, "\t\t\tif m.rng.IntN(4) != 0 {\n\t\t\t\t%s(%s)\n\t\t\t}\n", set, val)
		} else {
			fmt.Fprintf(b, "\t\t\t%s(%s)\n", set, val)
		}
	}
	fmt.Fprintf(b, "\t\t\tvar n *ent.%[1]s\n\t\t\tif n, err = c.Save(m.sys); err == nil {\n\t\t\t\tm.ids[%[1]q] = append(m.ids[%[1]q], n.ID)\n\t\t\t\tbreak\n\t\t\t}\n\t\t}\n\t\tif err != nil {\n\t\t\tif len(m.ids[%[1]q]) > 0 {\n\t\t\t\tbreak // unique constraints leave no room for more\n\t\t\t}\n\t\t\tm.t.Fatalf(\"seed %[1]s: %%v\", err)\n\t\t}\n\t}\n}\n", m.Name)
}

func enumValues(s *ir.Schema, name string) string {
	e := s.EnumByName(name)
	var vals []string
	for _, v := range e.Values {
		vals = append(vals, "enum."+name+entschema.PascalValue(v))
	}
	return strings.Join(vals, ", ")
}

func floatOr(p *float64, d string) string {
	if p == nil {
		return d
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

func matrixChecks(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	lf := lowerFirst(m.Name)
	fmt.Fprintf(b, `		{ // %[1]s
			all := client.%[1]s.Query().AllX(sys)
			var want []uuid.UUID
			for _, n := range all {
				if v != nil && v.Admin || %[2]sAllows(v, access.OpRead, n) {
					want = append(want, n.ID)
				}
			}
			m.same("%[1]s list", v, want, client.%[1]s.Query().IDsX(ctx))
			m.check("%[1]s count", v, client.%[1]s.Query().CountX(ctx) == len(want))
			for _, n := range all[:min(len(all), 6)] {
				_, err := client.%[1]s.Get(ctx, n.ID)
				m.check("%[1]s get", v, (err == nil) == slices.Contains(want, n.ID))
			}
`, m.Name, lf)
	for _, e := range m.Edges {
		tl := lowerFirst(e.Target)
		en := entName(e.Name)
		unique := e.Relation == ir.BelongsTo || e.Relation == ir.HasOne
		loaded := "x.Edges." + en
		if unique {
			loaded = "one(x.Edges." + en + ")"
		}
		fmt.Fprintf(b, `			{ // nested edge and relation filter %[1]s.%[2]s
				for _, x := range client.%[1]s.Query().With%[3]s().AllX(ctx) {
					var exp []uuid.UUID
					for _, y := range client.%[1]s.Query%[3]s(x).AllX(sys) {
						if v != nil && v.Admin || %[4]sAllows(v, access.OpRead, y) {
							exp = append(exp, y.ID)
						}
					}
					m.same("%[1]s.%[2]s nested", v, exp, idsOf(%[5]s))
				}
				res := m.query(ctx, v, `+"`"+`{ l: %[7]s(first: 1000, where: {has%[3]sWith: [`+nilID+`]}) { totalCount edges { node { id } } } }`+"`"+`)
				var exp []uuid.UUID
				for _, x := range all {
					if !slices.Contains(want, x.ID) {
						continue
					}
					for _, y := range client.%[1]s.Query%[3]s(x).AllX(sys) {
						if v != nil && v.Admin || %[4]sAllows(v, access.OpRead, y) {
							exp = append(exp, x.ID)
							break
						}
					}
				}
				m.conn("%[1]s has%[3]sWith", v, exp, res, "l")
			}
`, m.Name, e.Name, en, tl, loaded, e.Target, listField(m.Name))
	}
	nestedChecks(b, s, m)
	fmt.Fprintf(b, `			for _, n := range all[:min(len(all), 6)] {
				readable := slices.Contains(want, n.ID)
				admin := v != nil && v.Admin
				m.write("%[1]s update", v, readable, admin || %[2]sAllows(v, access.OpUpdate, n), func(ctx context.Context) error {
					_, err := (&mutationResolver{r}).Update%[1]s(ctx, n.ID, model.Update%[1]sInput{})
					return err
				}, ctx)
				m.write("%[1]s delete", v, readable, admin || %[2]sAllows(v, access.OpDelete, n), func(ctx context.Context) error {
					_, err := (&mutationResolver{r}).Delete%[1]s(ctx, n.ID)
					return err
				}, ctx)
			}
		}
`, m.Name, lf)
}

// listField is the connection query field of a model ("posts").
func listField(name string) string { return lowerFirst(entschema.Plural(name)) }

// toMany reports whether an edge resolves to a connection.
func toMany(e *ir.Edge) bool { return e.Relation == ir.HasMany || e.Relation == ir.ManyToMany }

// nilID is the filter every record passes: the relation filters of the
// nested checks only test that a readable neighbour exists.
const nilID = `{idNEQ: "00000000-0000-0000-0000-000000000000"}`

// nestedChecks emits the checks of filters and orderings sent on nested
// connections, through the GraphQL executor as clients send them (entgql
// eager-loads these edges, counts included, from the raw arguments): at
// depth 2 for every to-many edge and every relation of its target, also
// through node(); at depth 3 for one chain per to-many edge; and filters and
// orderings on fields with their own read rules one level down.
func nestedChecks(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	for i, e := range m.Edges {
		if !toMany(e) {
			continue
		}
		t := s.Model(e.Target)
		en := entName(e.Name)
		for _, e2 := range t.Edges {
			cond := fmt.Sprintf("{has%sWith: [%s]}", entName(e2.Name), nilID)
			sel := fmt.Sprintf("x: %[1]s(first: 1000, where: %[2]s) { totalCount edges { node { id } } } c: %[1]s(where: %[2]s) { totalCount }", e.Name, cond)
			fmt.Fprintf(b, `			{ // depth 2: %[1]s.%[2]s(where: has%[4]sWith)
				res := m.query(ctx, v, `+"`"+`{ l: %[6]s(first: 1000) { edges { node { id %[7]s } } } }`+"`"+`)
				for i, x := range res.nodes("l") {
					exp := m.expect%[8]s%[4]s(v, client.%[9]s.Query%[3]s(client.%[9]s.GetX(sys, x.id())).AllX(sys))
					m.conn("%[1]s.%[2]s(where: has%[4]sWith)", v, exp, x, "x")
					m.check("%[1]s.%[2]s(where: has%[4]sWith) count", v, x.total("c") == len(exp))
					if i == 0 { // the same through node()
						n := m.query(ctx, v, `+"`"+`query($id: ID!) { n: node(id: $id) { ... on %[1]s { %[7]s } } }`+"`"+`, "id", x.id().String()).child("n")
						m.conn("node %[1]s.%[2]s(where: has%[4]sWith)", v, exp, n, "x")
					}
				}
			}
`, m.Name, e.Name, en, entName(e2.Name), e2.Target, listField(m.Name), sel, e.Target, m.Name)
		}
		// Depth 3: one chain per to-many edge, rotating through the targets' edges.
		var e2s []*ir.Edge
		for _, x := range t.Edges {
			if toMany(x) {
				e2s = append(e2s, x)
			}
		}
		if len(e2s) > 0 {
			e2 := e2s[i%len(e2s)]
			u := s.Model(e2.Target)
			e3 := u.Edges[i%len(u.Edges)]
			cond := fmt.Sprintf("{has%sWith: [%s]}", entName(e3.Name), nilID)
			fmt.Fprintf(b, `			{ // depth 3: %[1]s.%[2]s.%[3]s(where: has%[5]sWith)
				res := m.query(ctx, v, `+"`"+`{ l: %[6]s(first: 1000) { edges { node { id x: %[2]s(first: 1000) { edges { node { id x: %[3]s(first: 1000, where: %[7]s) { totalCount edges { node { id } } } } } } } } } }`+"`"+`)
				for _, x := range res.nodes("l") {
					for _, y := range x.nodes("x") {
						exp := m.expect%[8]s%[5]s(v, client.%[9]s.Query%[4]s(client.%[9]s.GetX(sys, y.id())).AllX(sys))
						m.conn("%[1]s.%[2]s.%[3]s(where: has%[5]sWith)", v, exp, y, "x")
					}
				}
			}
`, m.Name, e.Name, e2.Name, entName(e2.Name), entName(e3.Name), listField(m.Name), cond, e2.Target, e.Target)
		}
		// Fields of the target with their own read rules, filtered and ordered one level down.
		for _, f := range t.Fields {
			if len(f.Rules) == 0 {
				continue
			}
			pred, goCond := protectedPredicate(f, "y")
			if pred == "" {
				continue
			}
			fmt.Fprintf(b, `			{ // depth 2: %[1]s.%[2]s(where: %[3]s) on a field with its own rules
				res := m.query(ctx, v, `+"`"+`{ l: %[4]s(first: 1000) { edges { node { id x: %[2]s(first: 1000, where: {%[3]s}) { totalCount edges { node { id } } } } } } }`+"`"+`)
				for _, x := range res.nodes("l") {
					var exp []uuid.UUID
					for _, y := range client.%[1]s.Query%[5]s(client.%[1]s.GetX(sys, x.id())).AllX(sys) {
						if (v != nil && v.Admin || %[6]sAllows(v, access.OpRead, y)) && fieldAllowed(ctx, y, %[7]q) && %[8]s {
							exp = append(exp, y.ID)
						}
					}
					m.conn("%[1]s.%[2]s(where: %[3]s)", v, exp, x, "x")
				}
			}
`, m.Name, e.Name, pred, listField(m.Name), en, lowerFirst(t.Name), f.Name, goCond)
			if f.Sortable {
				fmt.Fprintf(b, `			{ // depth 2: %[1]s.%[2]s(orderBy: %[3]s) on a field with its own rules
				errs := m.queryErrors(ctx, v, `+"`"+`{ l: %[4]s(first: 1000) { edges { node { id x: %[2]s(first: 1000, orderBy: [{field: %[3]s}]) { totalCount } } } } }`+"`"+`)
				m.check("%[1]s.%[2]s(orderBy: %[3]s)", v, (len(errs) > 0) == !(v != nil && v.Admin))
			}
`, m.Name, e.Name, entschema.OrderField(f.Name), listField(m.Name))
			}
		}
	}
}

// expectFuncs emits, for every edge T.e (T -> U), the expected result of a
// connection of T records filtered by has<E>With: the records the viewer may
// read that have at least one readable neighbour through e.
func expectFuncs(b *strings.Builder, s *ir.Schema) {
	for _, t := range s.Models {
		for _, e := range t.Edges {
			fmt.Fprintf(b, `
func (m *matrix) expect%[1]s%[2]s(v *access.Viewer, ys []*ent.%[1]s) []uuid.UUID {
	var exp []uuid.UUID
	admin := v != nil && v.Admin
	for _, y := range ys {
		if !admin && !%[3]sAllows(v, access.OpRead, y) {
			continue
		}
		for _, z := range m.client.%[1]s.Query%[2]s(y).AllX(m.sys) {
			if admin || %[4]sAllows(v, access.OpRead, z) {
				exp = append(exp, y.ID)
				break
			}
		}
	}
	return exp
}
`, t.Name, entName(e.Name), lowerFirst(t.Name), lowerFirst(e.Target))
		}
	}
}

// protectedPredicate returns a where predicate on f that every non-null
// value passes (GraphQL), and the Go condition of the same on record y.
func protectedPredicate(f *ir.Field, y string) (string, string) {
	fe := y + "." + entName(f.Name)
	if f.List || f.Kind == ir.JSON {
		return "", ""
	}
	if f.Nullable {
		return lowerFirst(f.Name) + "NotNil: true", fe + " != nil"
	}
	switch f.Kind {
	case ir.String, ir.ID:
		return lowerFirst(f.Name) + `NEQ: "\u0000"`, "true"
	case ir.Int, ir.Float:
		return lowerFirst(f.Name) + "NEQ: -987654321", fe + " != -987654321"
	case ir.Boolean:
		return lowerFirst(f.Name) + "NEQ: true", "!" + fe
	}
	return "", ""
}

const matrixRuntime = `
type matrix struct {
	t      *testing.T
	client *ent.Client
	srv    http.Handler
	sys    context.Context
	rng    *rand.Rand
	users  []uuid.UUID
	pool   []string
	ids    map[string][]uuid.UUID
	n      int
	checks int
}

func userStrings(us []uuid.UUID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

func (m *matrix) some(typ string, n int) []uuid.UUID {
	ids := m.ids[typ]
	var out []uuid.UUID
	for i := 0; i < n && len(ids) > 0; i++ {
		id := ids[m.rng.IntN(len(ids))]
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// gqlNode is an object of a GraphQL response.
type gqlNode map[string]any

func (n gqlNode) child(alias string) gqlNode {
	c, _ := n[alias].(map[string]any)
	return c
}

func (n gqlNode) id() uuid.UUID { return uuid.MustParse(n["id"].(string)) }

// nodes returns the nodes of the connection at alias.
func (n gqlNode) nodes(alias string) []gqlNode {
	var out []gqlNode
	edges, _ := n.child(alias)["edges"].([]any)
	for _, e := range edges {
		if node, ok := e.(map[string]any)["node"].(map[string]any); ok {
			out = append(out, node)
		}
	}
	return out
}

func (n gqlNode) total(alias string) int {
	f, _ := n.child(alias)["totalCount"].(float64)
	return int(f)
}

// query runs a GraphQL query as the viewer through the generated schema (as
// the server does) and returns its data; errors fail the test.
func (m *matrix) query(ctx context.Context, v *access.Viewer, q string, vars ...string) gqlNode {
	m.t.Helper()
	data, errs := m.exec(ctx, q, vars...)
	if len(errs) > 0 {
		m.t.Fatalf("%s as %s: %v", q, describeViewer(v), errs)
	}
	return data
}

// queryErrors runs a GraphQL query and returns its errors.
func (m *matrix) queryErrors(ctx context.Context, v *access.Viewer, q string) []any {
	m.t.Helper()
	_, errs := m.exec(ctx, q)
	return errs
}

func (m *matrix) exec(ctx context.Context, q string, vars ...string) (gqlNode, []any) {
	m.t.Helper()
	vm := map[string]any{}
	for i := 0; i+1 < len(vars); i += 2 {
		vm[vars[i]] = vars[i+1]
	}
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vm})
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	m.srv.ServeHTTP(rec, req)
	var out struct {
		Data   gqlNode
		Errors []any
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		m.t.Fatalf("%s: %v: %s", q, err, rec.Body.String())
	}
	return out.Data, out.Errors
}

// conn checks the ids and the totalCount of the connection at alias.
func (m *matrix) conn(what string, v *access.Viewer, want []uuid.UUID, n gqlNode, alias string) {
	m.t.Helper()
	var got []uuid.UUID
	for _, x := range n.nodes(alias) {
		got = append(got, x.id())
	}
	m.same(what, v, want, got)
	m.check(what+" totalCount", v, n.total(alias) == len(want))
}

func (m *matrix) check(what string, v *access.Viewer, ok bool) {
	m.t.Helper()
	m.checks++
	if !ok {
		m.t.Errorf("%s as %s: rules not enforced", what, describeViewer(v))
	}
}

func (m *matrix) same(what string, v *access.Viewer, want, got []uuid.UUID) {
	m.t.Helper()
	m.checks++
	less := func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) }
	want, got = slices.Clone(want), slices.Clone(got)
	slices.SortFunc(want, less)
	slices.SortFunc(got, less)
	want, got = slices.Compact(want), slices.Compact(got)
	if !slices.Equal(want, got) {
		m.t.Errorf("%s as %s: got %d rows, rules allow %d", what, describeViewer(v), len(got), len(want))
	}
}

// write runs fn in a transaction that is rolled back, and checks the
// outcome: NOT_FOUND when the record is not readable, refused when it is
// readable but the operation is not allowed, success otherwise.
func (m *matrix) write(what string, v *access.Viewer, readable, allowed bool, fn func(context.Context) error, ctx context.Context) {
	m.t.Helper()
	m.checks++
	tx, err := m.client.Tx(m.sys)
	if err != nil {
		m.t.Fatal(err)
	}
	defer tx.Rollback()
	err = fn(ent.NewContext(ctx, tx.Client()))
	var nf *apierror.NotFoundError
	var forb *access.ForbiddenError
	var unauth *access.UnauthenticatedError
	switch {
	case !readable:
		if !errors.As(err, &nf) {
			m.t.Errorf("%s as %s on an unreadable record: want apierror.NotFoundError, got %v", what, describeViewer(v), err)
		}
	case !allowed:
		if !errors.As(err, &forb) && !errors.As(err, &unauth) {
			m.t.Errorf("%s as %s: want a refusal, got %v", what, describeViewer(v), err)
		}
	default:
		if err != nil && !errors.As(err, &forb) && !ent.IsConstraintError(err) {
			// A forbidden outcome is right when the update would move the
			// record out of reach; anything else is a failure.
			m.t.Errorf("%s as %s: want success, got %v", what, describeViewer(v), err)
		}
	}
}

func describeViewer(v *access.Viewer) string {
	switch {
	case v == nil:
		return "anonymous"
	case v.Admin:
		return "admin"
	}
	return fmt.Sprintf("user %s roles %v claims %v", v.ID.String()[:8], v.Roles, v.Claims)
}

func idsOf[T any](xs []*T) []uuid.UUID {
	var out []uuid.UUID
	for _, x := range xs {
		if x != nil {
			out = append(out, reflect.ValueOf(x).Elem().FieldByName("ID").Interface().(uuid.UUID))
		}
	}
	return out
}

func one[T any](x *T) []*T {
	if x == nil {
		return nil
	}
	return []*T{x}
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func pickN[T any](rng *rand.Rand, n int, xs ...T) []T {
	out := []T{}
	for i := 0; i < rng.IntN(n+1); i++ {
		out = append(out, xs[rng.IntN(len(xs))])
	}
	return out
}

func (m *matrix) strings(n int) []string {
	out := []string{}
	for i := 0; i < m.rng.IntN(n+1); i++ {
		out = append(out, fmt.Sprintf("s%d", m.rng.IntN(100)))
	}
	return out
}

func (m *matrix) ints(n int) []int {
	out := []int{}
	for i := 0; i < m.rng.IntN(n+1); i++ {
		out = append(out, m.rng.IntN(100))
	}
	return out
}

func (m *matrix) floats(n int) []float64 {
	out := []float64{}
	for i := 0; i < m.rng.IntN(n+1); i++ {
		out = append(out, m.rng.Float64())
	}
	return out
}

func (m *matrix) num(lo, hi float64) float64 {
	if hi < lo {
		hi = lo
	}
	return lo + float64(m.rng.IntN(int(hi-lo)+1))
}

func (m *matrix) email() string {
	m.n++
	return fmt.Sprintf("user%d@example.com", m.n)
}

// str returns a string matching pattern (if any) within the length bounds
// (-1: none), unique enough for unique columns.
func (m *matrix) str(pattern string, minLen, maxLen int) string {
	if minLen < 1 {
		minLen = 1
	}
	if maxLen < 0 {
		maxLen = minLen + 12
	}
	if pattern == "" {
		m.n++
		s := fmt.Sprintf("v%dx", m.n)
		for len(s) < minLen {
			s += "x"
		}
		if len(s) > maxLen {
			s = s[len(s)-maxLen:]
		}
		return s
	}
	re := regexp.MustCompile(pattern)
	re0, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		m.t.Fatal(err)
	}
	re0 = re0.Simplify()
	for i := 0; i < 200; i++ {
		var b strings.Builder
		m.gen(&b, re0)
		s := b.String()
		if n := len([]rune(s)); n >= minLen && n <= maxLen && re.MatchString(s) {
			return s
		}
	}
	m.t.Fatalf("cannot generate a string for %q within %d..%d", pattern, minLen, maxLen)
	return ""
}

func (m *matrix) gen(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		var rs []rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo > 200 {
				hi = lo + 200
			}
			for r := lo; r <= hi; r++ {
				if r >= 0x20 && r < 0x7f {
					rs = append(rs, r)
				}
			}
		}
		if len(rs) > 0 {
			b.WriteRune(rs[m.rng.IntN(len(rs))])
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteRune(rune('a' + m.rng.IntN(26)))
	case syntax.OpCapture:
		m.gen(b, re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 4
		switch re.Op {
		case syntax.OpPlus:
			lo = 1
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+6 {
				hi = lo + 6
			}
		}
		for i := lo + m.rng.IntN(hi-lo+1); i > 0; i-- {
			m.gen(b, re.Sub[0])
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			m.gen(b, s)
		}
	case syntax.OpAlternate:
		m.gen(b, re.Sub[m.rng.IntN(len(re.Sub))])
	}
}
`
