package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"kiln/server/kilntest"
)

// TestRequestCost: a request's cost multiplies by the sizes of the lists it
// nests (first/last, the default page, nodes(ids:)), introspection counts
// too, and an operation over the limit is refused before any SQL runs.
func TestRequestCost(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	var anon struct{ SignInAnonymously session }
	s.MustDoAs(t, "", `mutation { signInAnonymously { accessToken } }`, nil, &anon)
	tok := anon.SignInAnonymously.AccessToken

	ids := make([]string, 3000)
	for i := range ids {
		ids[i] = `"` + uuid.NewString() + `"`
	}
	var intro strings.Builder
	intro.WriteString("{ __schema {")
	for i := 0; i < 700; i++ {
		fmt.Fprintf(&intro, " t%d: types { name fields { name } }", i)
	}
	intro.WriteString(" } }")
	nested := "{ posts(first: 64) { edges { node { author { posts(first: 64) { edges { node { author { posts(first: 64) { edges { node { id body } } } } } } } } } } } }"
	cases := []struct {
		name, query string
		vars        map[string]any
		code        string
	}{
		{"nested to-many connections", nested, nil, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"nested connections without first (default page)", "{ posts { edges { node { author { posts { edges { node { id } } } } } } } }", nil, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"page sizes in variables", "query($n: Int) { posts(first: $n) { edges { node { author { posts(first: $n) { edges { node { id } } } } } } } }", map[string]any{"n": 60}, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"nodes(ids:)", "{ nodes(ids: [" + strings.Join(ids, ",") + "]) { id } }", nil, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"introspection aliases", intro.String(), nil, "TOO_MANY_ALIASES"},
	}
	for _, c := range cases {
		if r := s.DoAs(t, tok, c.query, c.vars); r.Code() != c.code {
			t.Errorf("%s: want %s, got %+v", c.name, c.code, r.Errors)
		}
		// As a visitor (no token to check), the statement counter shows that
		// nothing ran before the refusal.
		before := s.Metric(t, "kiln_sql_statements_total")
		if r := s.DoAs(t, "", c.query, c.vars); r.Code() != c.code {
			t.Errorf("%s as a visitor: want %s, got %+v", c.name, c.code, r.Errors)
		}
		if after := s.Metric(t, "kiln_sql_statements_total"); after != before {
			t.Errorf("%s: %v SQL statements ran before the refusal", c.name, after-before)
		}
	}
	// What apps ask for stays within the default limit.
	for _, q := range []string{
		"{ posts(first: 20) { totalCount edges { cursor node { id body author { handle } comments(first: 5) { edges { node { body author { handle } } } } } } pageInfo { hasNextPage endCursor } } }",
		"{ nodes(ids: [" + strings.Join(ids[:50], ",") + "]) { id } }",
		"{ __schema { types { name fields { name type { name kind ofType { name kind ofType { name } } } } } } }",
	} {
		if r := s.DoAs(t, tok, q, nil); len(r.Errors) > 0 {
			t.Errorf("%.60s...: %+v", q, r.Errors)
		}
	}
}

// TestClientGoneStopsWork: when the client of a large query disconnects,
// the server stops resolving it (the operation ends as "cancelled") instead
// of building the whole response for nobody.
func TestClientGoneStopsWork(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret,
		"KILN_MAX_COMPLEXITY=1000000000", "KILN_MAX_DEPTH=30")
	for p := 0; p < 20; p++ {
		var q strings.Builder
		fmt.Fprintf(&q, `mutation { p: createProfile(input: {handle: "user%d", displayName: "U", ownerID: "%s"}) { id } }`, p, uuid.NewString())
		var out struct{ P struct{ ID string } }
		s.MustDo(t, q.String(), nil, &out)
		q.Reset()
		q.WriteString("mutation {")
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&q, ` p%d: createPost(input: {ownerID: "%s", authorID: "%s", body: "%s"}) { id }`, i, testOwner, out.P.ID, strings.Repeat("x", 200))
		}
		q.WriteString(" }")
		s.MustDo(t, q.String(), nil, nil)
	}
	// About 160,000 posts in the response.
	query := `{ profiles(first: 20) { edges { node { posts(first: 20) { edges { node { author { posts(first: 20) { edges { node { author { posts(first: 20) { edges { node { id body } } } } } } } } } } } } } } }`
	if r := s.Do(t, strings.ReplaceAll(query, "20", "1"), nil); len(r.Errors) > 0 {
		t.Fatalf("the query is refused: %+v", r.Errors)
	}
	body, _ := json.Marshal(map[string]any{"query": query})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nX-Kiln-Admin-Secret: %s\r\nContent-Length: %d\r\n\r\n%s", adminSecret, len(body), body)
	conn.Close() // gone before the answer
	for i := 0; ; i++ {
		if cancelledOperations(t, s) > 0 {
			break
		}
		if i == 600 {
			t.Fatal("the server did not stop the operation of a client that went away")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The server is still there for others.
	s.MustDo(t, "{ profiles { totalCount } }", nil, nil)
}

// cancelledOperations reads kiln_graphql_requests_total{outcome="cancelled"}.
func cancelledOperations(t *testing.T, s *kilntest.Server) float64 {
	t.Helper()
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	n := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "kiln_graphql_requests_total{") && strings.Contains(line, `outcome="cancelled"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			n += v
		}
	}
	return n
}
