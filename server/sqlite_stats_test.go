package server

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"kiln/server/kilntest"
)

// TestSQLiteStatistics: an embedded database whose tables grew without
// anyone running ANALYZE gets planner statistics when the server starts
// (and hourly), so that the rule predicate of a list is answered by an
// index instead of reading every row. Seeded with rows written behind the
// server's back and no statistics, as a database restored from a backup or
// grown by an older Kiln would be.
func TestSQLiteStatistics(t *testing.T) {
	dir := t.TempDir()
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+dir)
	u, p := profileFor(t, s, "stats")
	s.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "first"}) { id } }`, map[string]any{"a": p}, nil)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "kiln.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 20,000 more posts by the same author, all but a few private, and
	// no statistics.
	if _, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
		INSERT INTO posts (id, created_at, updated_at, version, body, visibility, tags, like_count, score, owner_id, author_id)
		SELECT lower(hex(randomblob(16))), p.created_at, p.updated_at, 1, 'seeded', CASE WHEN n.i % 1000 = 0 THEN 'PUBLIC' ELSE 'PRIVATE' END, '[]', 0, 0,
		       'owner-' || (n.i % 500), p.author_id
		FROM n, (SELECT * FROM posts LIMIT 1) p`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE IF EXISTS sqlite_stat1`); err != nil {
		t.Fatal(err)
	}
	const rule = `EXPLAIN QUERY PLAN SELECT id FROM posts WHERE owner_id = 'owner-7' AND visibility = 'PRIVATE'`
	before := queryPlan(t, db, rule)

	s = kilntest.Start(t, serverBin, "KILN_DATA_DIR="+dir)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	var stats int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'posts'`).Scan(&stats); err != nil {
		t.Fatalf("no statistics after the server started: %v", err)
	}
	if stats == 0 {
		t.Fatal("the server started without gathering statistics for posts")
	}
	// With statistics SQLite knows owner_id (500 distinct values) is far
	// more selective than visibility (2): it searches by owner.
	after := queryPlan(t, db, rule)
	if !strings.Contains(after, "post_owner_id") {
		t.Errorf("with statistics the plan does not use the owner index:\n%s\n(before: %s)", after, before)
	}
}

func queryPlan(t *testing.T, db *sql.DB, query string) string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	return fmt.Sprint(out)
}

// TestSQLitePoolKeepsConnections: under concurrent reads and writes the
// embedded database's pool reuses its connections instead of closing and
// reopening them (database/sql's default keeps 2 idle ones: thousands of
// reopenings per second under load, each re-reading the schema).
func TestSQLitePoolKeepsConnections(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	u, p := profileFor(t, s, "pool")
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				q, vars := `{ posts(first: 5) { totalCount edges { node { id author { handle } } } } }`, map[string]any(nil)
				if (i+j)%3 == 0 {
					q, vars = `mutation($a: ID!) { createPost(input: {authorID: $a, body: "pool"}) { id } }`, map[string]any{"a": p}
				}
				if r := s.DoAs(t, u.AccessToken, q, vars); len(r.Errors) > 0 {
					t.Errorf("%s: %+v", q, r.Errors)
				}
			}
		}()
	}
	wg.Wait()
	m := metricsText(t, s)
	var closed string
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, `go_sql_max_idle_closed_total{db_name="kiln"}`) {
			closed = strings.Fields(line)[1]
		}
	}
	if closed != "0" {
		t.Errorf("the pool closed idle connections: go_sql_max_idle_closed_total = %q, want 0", closed)
	}
}
