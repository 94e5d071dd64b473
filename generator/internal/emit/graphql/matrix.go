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
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"%[1]s/ent"
%[5]s	"%[1]s/graph/model"
%[2]s)

var _ = time.Now

// matrixRoles and matrixClaims are the roles and claim names the rules use.
var (
	matrixRoles  = []string{%[3]s}
	matrixClaims = []string{%[4]s}
)

func TestAuthorizationMatrix(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/matrix.db?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, db)))
	defer client.Close()
	sys := SystemContext(context.Background())
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
	viewers := []*Viewer{nil, {Admin: true}}
	for i := 0; i < 24; i++ {
		v := &Viewer{ID: m.users[rng.IntN(len(m.users))], Claims: map[string]any{}}
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
	r := &Resolver{Client: client, Dialect: "sqlite3"}
	for _, v := range viewers {
		ctx := context.Background()
		if v != nil {
			ctx = WithViewer(ctx, v)
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
				if v != nil && v.Admin || %[2]sAllows(v, OpRead, n) {
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
						if v != nil && v.Admin || %[4]sAllows(v, OpRead, y) {
							exp = append(exp, y.ID)
						}
					}
					m.same("%[1]s.%[2]s nested", v, exp, idsOf(%[5]s))
				}
				w := &ent.%[1]sWhereInput{Has%[3]sWith: []*ent.%[6]sWhereInput{{IDNEQ: &uuid.Nil}}}
				if err := secureWhere(ctx, w); err != nil {
					t.Fatal(err)
				}
				p, err := w.P()
				if err != nil {
					t.Fatal(err)
				}
				var exp []uuid.UUID
				for _, x := range all {
					if !slices.Contains(want, x.ID) {
						continue
					}
					for _, y := range client.%[1]s.Query%[3]s(x).AllX(sys) {
						if v != nil && v.Admin || %[4]sAllows(v, OpRead, y) {
							exp = append(exp, x.ID)
							break
						}
					}
				}
				m.same("%[1]s has%[3]sWith", v, exp, client.%[1]s.Query().Where(p).IDsX(ctx))
			}
`, m.Name, e.Name, en, tl, loaded, e.Target)
	}
	fmt.Fprintf(b, `			for _, n := range all[:min(len(all), 6)] {
				readable := slices.Contains(want, n.ID)
				admin := v != nil && v.Admin
				m.write("%[1]s update", v, readable, admin || %[2]sAllows(v, OpUpdate, n), func(ctx context.Context) error {
					_, err := (&mutationResolver{r}).Update%[1]s(ctx, n.ID, model.Update%[1]sInput{})
					return err
				}, ctx)
				m.write("%[1]s delete", v, readable, admin || %[2]sAllows(v, OpDelete, n), func(ctx context.Context) error {
					_, err := (&mutationResolver{r}).Delete%[1]s(ctx, n.ID)
					return err
				}, ctx)
			}
		}
`, m.Name, lf)
}

const matrixRuntime = `
type matrix struct {
	t      *testing.T
	client *ent.Client
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

func (m *matrix) check(what string, v *Viewer, ok bool) {
	m.t.Helper()
	m.checks++
	if !ok {
		m.t.Errorf("%s as %s: rules not enforced", what, describeViewer(v))
	}
}

func (m *matrix) same(what string, v *Viewer, want, got []uuid.UUID) {
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
func (m *matrix) write(what string, v *Viewer, readable, allowed bool, fn func(context.Context) error, ctx context.Context) {
	m.t.Helper()
	m.checks++
	tx, err := m.client.Tx(m.sys)
	if err != nil {
		m.t.Fatal(err)
	}
	defer tx.Rollback()
	err = fn(ent.NewContext(ctx, tx.Client()))
	var nf *NotFoundError
	var forb *ForbiddenError
	var unauth *UnauthenticatedError
	switch {
	case !readable:
		if !errors.As(err, &nf) {
			m.t.Errorf("%s as %s on an unreadable record: want NotFoundError, got %v", what, describeViewer(v), err)
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

func describeViewer(v *Viewer) string {
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
