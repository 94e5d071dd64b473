package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// pagedPost is one node of the paging tests.
type pagedPost struct {
	ID          string
	Title       *string
	PublishedAt *string
	Score       float64
}

type pagedConn struct {
	TotalCount int
	PageInfo   struct {
		HasNextPage, HasPreviousPage bool
		StartCursor, EndCursor       *string
	}
	Edges []struct {
		Cursor string
		Node   pagedPost
	}
}

// TestCursorPagingWithNulls: paging through a connection ordered by
// nullable @sortable fields returns every row exactly once, forwards
// (first/after) and backwards (last/before), ascending and descending, with
// several orderBy fields, top-level and nested, in the same order on SQLite
// and PostgreSQL: a null sorts after every value in ascending order and
// before every value in descending order. (It used to stop at the first
// null: `after` a null cursor value matched no row.)
func TestCursorPagingWithNulls(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		a := createProfile(t, s, "alice", "")
		rows := []struct {
			title, published string // "" is null
			score            int
		}{
			{"b", "2024-03-01T10:00:00Z", 1},
			{"", "", 2},
			{"a", "", 1},
			{"", "2024-01-01T10:00:00Z", 1},
			{"b", "", 3},
			{"c", "2024-03-01T10:00:00Z", 2},
			{"", "", 1},
		}
		for i, r := range rows {
			extra := fmt.Sprintf(`, score: %d`, r.score)
			if r.title != "" {
				extra += fmt.Sprintf(`, title: %q`, r.title)
			}
			if r.published != "" {
				extra += fmt.Sprintf(`, publishedAt: %q`, r.published)
			}
			createPost(t, s, a.ID, fmt.Sprintf("post %d", i), extra)
		}
		type key struct{ field, direction string }
		orders := [][]key{
			{{"TITLE", "ASC"}},
			{{"TITLE", "DESC"}},
			{{"PUBLISHED_AT", "ASC"}},
			{{"TITLE", "ASC"}, {"PUBLISHED_AT", "DESC"}},
			{{"TITLE", "DESC"}, {"PUBLISHED_AT", "ASC"}},
			{{"PUBLISHED_AT", "DESC"}, {"SCORE", "ASC"}, {"TITLE", "ASC"}},
			{{"SCORE", "DESC"}, {"TITLE", "DESC"}},
		}
		const fields = `totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id title publishedAt score } }`
		views := []struct {
			name  string
			query string
			conn  func(map[string]any) pagedConn
		}{
			{"posts", `query($o: [PostOrder!], $first: Int, $after: Cursor, $last: Int, $before: Cursor) {
				posts(orderBy: $o, first: $first, after: $after, last: $last, before: $before) { ` + fields + ` } }`, nil},
			{"profile.posts", `query($id: ID!, $o: [PostOrder!], $first: Int, $after: Cursor, $last: Int, $before: Cursor) {
				profile(id: $id) { posts(orderBy: $o, first: $first, after: $after, last: $last, before: $before) { ` + fields + ` } } }`, nil},
		}
		for _, v := range views {
			for _, order := range orders {
				var o []any
				var names []string
				for _, k := range order {
					o = append(o, map[string]any{"field": k.field, "direction": k.direction})
					names = append(names, k.field+" "+k.direction)
				}
				for _, size := range []int{1, 2} {
					name := fmt.Sprintf("%s ordered by %s, pages of %d", v.name, strings.Join(names, ", "), size)
					page := func(vars map[string]any) pagedConn {
						vars["o"], vars["id"] = o, a.ID
						q := v.query
						if v.name == "posts" {
							delete(vars, "id")
						}
						var out struct {
							Posts   pagedConn
							Profile struct{ Posts pagedConn }
						}
						s.MustDo(t, q, vars, &out)
						if v.name == "posts" {
							return out.Posts
						}
						return out.Profile.Posts
					}
					// Forwards.
					var forward []pagedPost
					vars := map[string]any{"first": size}
					for i := 0; i <= len(rows); i++ {
						c := page(vars)
						if c.TotalCount != len(rows) {
							t.Fatalf("%s: totalCount %d, want %d", name, c.TotalCount, len(rows))
						}
						for _, e := range c.Edges {
							forward = append(forward, e.Node)
						}
						if !c.PageInfo.HasNextPage || c.PageInfo.EndCursor == nil {
							break
						}
						vars = map[string]any{"first": size, "after": *c.PageInfo.EndCursor}
					}
					checkPaged(t, name+", forwards", forward, len(rows), func(x, y pagedPost) int {
						for _, k := range order {
							if c := comparePaged(x, y, k.field, k.direction); c != 0 {
								return c
							}
						}
						return 0
					})
					// Backwards: the same rows in the same order.
					var backward []pagedPost
					vars = map[string]any{"last": size}
					for i := 0; i <= len(rows); i++ {
						c := page(vars)
						backward = append(append([]pagedPost{}, nodesOf(c)...), backward...)
						if !c.PageInfo.HasPreviousPage || c.PageInfo.StartCursor == nil {
							break
						}
						vars = map[string]any{"last": size, "before": *c.PageInfo.StartCursor}
					}
					if got, want := idsOf(backward), idsOf(forward); got != want {
						t.Errorf("%s: backwards gives\n%s\nforwards gives\n%s", name, describePaged(backward), describePaged(forward))
					}
					if size != 1 || len(forward) != len(rows) {
						continue
					}
					// after and before together, with first and with last: the
					// rows strictly between the two cursors.
					all := page(map[string]any{"first": len(rows)})
					for i := 0; i+1 < len(all.Edges); i += 2 {
						j := min(i+4, len(all.Edges)-1)
						want := idsOf(nodesOf(all)[i+1 : j])
						for _, limit := range []string{"first", "last"} {
							c := page(map[string]any{limit: len(rows), "after": all.Edges[i].Cursor, "before": all.Edges[j].Cursor})
							if got := idsOf(nodesOf(c)); got != want {
								t.Errorf("%s: %s with after row %d and before row %d gives\n%swant\n%s", name, limit, i, j, describePaged(nodesOf(c)), describePaged(nodesOf(all)[i+1:j]))
							}
						}
					}
				}
			}
		}
	})
}

func nodesOf(c pagedConn) []pagedPost {
	var out []pagedPost
	for _, e := range c.Edges {
		out = append(out, e.Node)
	}
	return out
}

func idsOf(ps []pagedPost) string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return strings.Join(ids, ",")
}

func describePaged(ps []pagedPost) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s title=%s publishedAt=%s score=%v\n", p.ID, deref(p.Title), deref(p.PublishedAt), p.Score)
	}
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

// checkPaged fails unless got holds n distinct rows in the order cmp gives.
func checkPaged(t *testing.T, name string, got []pagedPost, n int, cmp func(x, y pagedPost) int) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range got {
		seen[p.ID] = true
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%s: %d rows (%d distinct), want %d:\n%s", name, len(got), len(seen), n, describePaged(got))
		return
	}
	for i := 1; i < len(got); i++ {
		if cmp(got[i-1], got[i]) > 0 {
			t.Errorf("%s: rows %d and %d out of order:\n%s", name, i-1, i, describePaged(got))
			return
		}
	}
}

// comparePaged compares two rows on one orderBy key, a null being greater
// than every value (so last in ascending order, first in descending).
func comparePaged(x, y pagedPost, field, direction string) int {
	var c int
	switch field {
	case "SCORE":
		switch {
		case x.Score < y.Score:
			c = -1
		case x.Score > y.Score:
			c = 1
		}
	case "TITLE":
		c = compareNullable(x.Title, y.Title, func(a, b string) int { return strings.Compare(a, b) })
	case "PUBLISHED_AT":
		c = compareNullable(x.PublishedAt, y.PublishedAt, func(a, b string) int {
			ta, _ := time.Parse(time.RFC3339Nano, a)
			tb, _ := time.Parse(time.RFC3339Nano, b)
			return ta.Compare(tb)
		})
	}
	if direction == "DESC" {
		return -c
	}
	return c
}

func compareNullable(a, b *string, cmp func(a, b string) int) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return cmp(*a, *b)
}
