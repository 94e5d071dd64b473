package paging

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"
)

// row is one record: a nullable text, a nullable integer, an integer.
type row struct {
	id int
	a  *string
	b  *int64
	c  int64
}

func str(s string) *string { return &s }
func num(n int64) *int64   { return &n }

// rows holds ties, NULLs in one key and in both, at both ends of the ids.
var rows = []row{
	{1, str("b"), num(2), 1}, {2, nil, num(1), 2}, {3, str("a"), nil, 1}, {4, nil, nil, 2},
	{5, str("b"), nil, 1}, {6, str("c"), num(1), 2}, {7, nil, num(2), 1}, {8, str("a"), num(1), 2},
	{9, nil, nil, 1}, {10, str("b"), num(2), 2},
}

// TestPredicates: for every order over nullable and non-null keys, in
// both directions, and every row as the cursor, the after predicate keeps
// exactly the rows after it and the before predicate exactly the rows
// before it, with ORDER BY from Terms giving the same order on SQLite and
// PostgreSQL (NULL greater than every value).
func TestPredicates(t *testing.T) {
	for _, db := range databases(t) {
		t.Run(db.dialect, func(t *testing.T) {
			type key struct {
				col      string
				nullable bool
			}
			cols := []key{{"a", true}, {"b", true}, {"c", false}}
			var orders [][]Key
			for _, k1 := range cols {
				for _, d1 := range []entgql.OrderDirection{entgql.OrderDirectionAsc, entgql.OrderDirectionDesc} {
					orders = append(orders, []Key{{k1.col, d1, k1.nullable}})
					for _, k2 := range cols {
						if k2 == k1 {
							continue
						}
						for _, d2 := range []entgql.OrderDirection{entgql.OrderDirectionAsc, entgql.OrderDirectionDesc} {
							orders = append(orders, []Key{{k1.col, d1, k1.nullable}, {k2.col, d2, k2.nullable}})
						}
					}
				}
			}
			id := Key{Column: "id", Direction: entgql.OrderDirectionAsc}
			for _, keys := range orders {
				want := sorted(keys)
				if got := db.ids(t, keys, nil); !slices.Equal(got, want) {
					t.Fatalf("%s: ORDER BY gives %v, want %v", describe(keys), got, want)
				}
				for i, r := range want {
					c := cursor(rows[r-1], keys)
					after, err := Predicates(&c, nil, keys, id, false)
					if err != nil {
						t.Fatal(err)
					}
					if got := db.ids(t, keys, after); !slices.Equal(got, want[i+1:]) {
						t.Errorf("%s, after row %d: %v, want %v", describe(keys), r, got, want[i+1:])
					}
					before, err := Predicates(nil, &c, keys, id, false)
					if err != nil {
						t.Fatal(err)
					}
					if got := db.ids(t, keys, before); !slices.Equal(got, want[:i]) {
						t.Errorf("%s, before row %d: %v, want %v", describe(keys), r, got, want[:i])
					}
				}
			}
		})
	}
}

// TestPredicatesSingle: a single-order cursor carries its one value (nil
// for NULL), or only the id when the order is by id.
func TestPredicatesSingle(t *testing.T) {
	id := Key{Column: "id", Direction: entgql.OrderDirectionAsc}
	keys := []Key{{"a", entgql.OrderDirectionAsc, true}}
	c := entgql.Cursor[int]{ID: 4, Value: nil} // row 4: a is NULL
	for _, db := range databases(t) {
		preds, err := Predicates(&c, nil, keys, id, true)
		if err != nil {
			t.Fatal(err)
		}
		want := sorted(keys)
		i := slices.Index(want, 4)
		if got := db.ids(t, keys, preds); !slices.Equal(got, want[i+1:]) {
			t.Errorf("%s: after a NULL: %v, want %v", db.dialect, got, want[i+1:])
		}
		preds, err = Predicates(&entgql.Cursor[int]{ID: 4}, nil, nil, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := db.ids(t, nil, preds); !slices.Equal(got, []int{5, 6, 7, 8, 9, 10}) {
			t.Errorf("%s: after id 4: %v", db.dialect, got)
		}
	}
	if _, err := Predicates(&entgql.Cursor[int]{ID: 1, Value: []any{"x"}}, nil, []Key{keys[0], keys[0]}, id, false); err == nil {
		t.Error("a cursor made for another orderBy was accepted")
	}
}

// sorted returns the ids of rows in the order of keys, NULL greater than
// every value, ties broken by id.
func sorted(keys []Key) []int {
	rs := slices.Clone(rows)
	slices.SortStableFunc(rs, func(x, y row) int {
		for _, k := range keys {
			var c int
			switch k.Column {
			case "a":
				c = cmpNull(x.a, y.a, strings.Compare)
			case "b":
				c = cmpNull(x.b, y.b, func(p, q int64) int { return int(p - q) })
			case "c":
				c = int(x.c - y.c)
			}
			if k.Direction == entgql.OrderDirectionDesc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return x.id - y.id
	})
	ids := make([]int, len(rs))
	for i, r := range rs {
		ids[i] = r.id
	}
	return ids
}

func cmpNull[T any](x, y *T, cmp func(T, T) int) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		return 1
	case y == nil:
		return -1
	}
	return cmp(*x, *y)
}

// cursor is the cursor of r for keys, as the generated code makes it: the
// values of the keys (nil pointers for NULL) and the id.
func cursor(r row, keys []Key) entgql.Cursor[int] {
	var vs []any
	for _, k := range keys {
		switch k.Column {
		case "a":
			vs = append(vs, r.a)
		case "b":
			vs = append(vs, r.b)
		case "c":
			vs = append(vs, r.c)
		}
	}
	return entgql.Cursor[int]{ID: r.id, Value: vs}
}

func describe(keys []Key) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.Column+" "+string(k.Direction))
	}
	return strings.Join(s, ", ")
}

type database struct {
	dialect string
	db      *sql.DB
	table   string
}

// databases returns the table of rows on SQLite and, with
// KILN_TEST_POSTGRES_URL set, on PostgreSQL.
func databases(t *testing.T) []*database {
	t.Helper()
	lite, err := sql.Open("sqlite", "file:"+t.TempDir()+"/paging.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	dbs := []*database{{dialect: dialect.SQLite, db: lite, table: "paging_rows"}}
	if u := os.Getenv("KILN_TEST_POSTGRES_URL"); u != "" {
		dbs = append(dbs, &database{dialect: dialect.Postgres, db: freshPostgres(t, u), table: "paging_rows"})
	} else if os.Getenv("KILN_REQUIRE_POSTGRES") != "" {
		t.Fatal("KILN_REQUIRE_POSTGRES is set but KILN_TEST_POSTGRES_URL is not")
	} else {
		t.Log("PostgreSQL skipped: set KILN_TEST_POSTGRES_URL (start one with: export KILN_TEST_POSTGRES_URL=$(.ci/pg.sh start))")
	}
	for _, d := range dbs {
		if _, err := d.db.Exec("DROP TABLE IF EXISTS " + d.table); err != nil {
			t.Fatal(err)
		}
		if _, err := d.db.Exec("CREATE TABLE " + d.table + " (id INTEGER PRIMARY KEY, a TEXT, b BIGINT, c BIGINT NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			q, args := entsql.Dialect(d.dialect).Insert(d.table).Columns("id", "a", "b", "c").Values(r.id, r.a, r.b, r.c).Query()
			if _, err := d.db.Exec(q, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dbs
}

// ids runs SELECT id with the predicates, ordered by keys then id.
func (d *database) ids(t *testing.T, keys []Key, preds []func(*entsql.Selector)) []int {
	t.Helper()
	s := entsql.Dialect(d.dialect).Select("id").From(entsql.Table(d.table))
	for _, p := range preds {
		p(s)
	}
	for _, k := range keys {
		entsql.OrderByField(k.Column, Terms(k.Direction, k.Nullable)...).ToFunc()(s)
	}
	s.OrderBy("id")
	q, args := s.Query()
	rs, err := d.db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	var ids []int
	for rs.Next() {
		var id int
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// freshPostgres creates a database of the test's own on the server at u,
// dropped after the test.
func freshPostgres(t *testing.T, u string) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := fmt.Sprintf("kiln_paging_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Path = "/" + name
	db, err := sql.Open("pgx", pu.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return db
}
