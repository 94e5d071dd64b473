package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestLimits checks that every request limit answers with its code before
// any resolver runs (the SQL statement counter does not move).
func TestLimits(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	deep := "{ posts { edges { node { author { posts { edges { node { author { posts { edges { node { author { posts { edges { node { id } } } } } } } } } } } } } } } }"
	// Depth 50 through fragments.
	var frag strings.Builder
	frag.WriteString("query { profiles { ...F0 } }\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&frag, "fragment F%d on ProfileConnection { edges { node { following { ...F%d } } } }\n", i, i+1)
	}
	frag.WriteString("fragment F50 on ProfileConnection { totalCount }\n")
	var aliases strings.Builder
	aliases.WriteString("{ posts { edges { node {")
	for i := 0; i < 31; i++ {
		fmt.Fprintf(&aliases, " a%d: id", i)
	}
	aliases.WriteString(" } } } }")
	var roots strings.Builder
	roots.WriteString("{")
	for i := 0; i < 21; i++ {
		roots.WriteString(" __typename")
	}
	roots.WriteString(" }")
	cases := []struct{ name, query, code string }{
		{"depth", deep, "QUERY_TOO_DEEP"},
		{"depth through fragments", frag.String(), "QUERY_TOO_DEEP"},
		{"aliases", aliases.String(), "TOO_MANY_ALIASES"},
		{"root fields", roots.String(), "TOO_MANY_ROOT_FIELDS"},
		{"page size", "{ posts(first: 1000) { totalCount } }", "PAGE_SIZE_TOO_LARGE"},
		{"nested page size", "{ profiles(first: 5) { edges { node { posts(last: 101) { totalCount } } } } }", "PAGE_SIZE_TOO_LARGE"},
		{"tokens", "{ " + strings.Repeat("__typename ", 16000) + "}", "GRAPHQL_PARSE_FAILED"},
	}
	for _, c := range cases {
		before := s.Metric(t, "kiln_sql_statements_total")
		r := s.Do(t, c.query, nil)
		if r.Code() != c.code {
			t.Errorf("%s: want %s, got %+v", c.name, c.code, r.Errors)
		}
		if after := s.Metric(t, "kiln_sql_statements_total"); after != before {
			t.Errorf("%s: %v SQL statements ran before the refusal", c.name, after-before)
		}
	}
	// Complexity.
	s2 := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_MAX_COMPLEXITY=10")
	if r := s2.Do(t, "{ posts { edges { node { id body score title tags author { handle displayName } } } } }", nil); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Errorf("complexity: %+v", r.Errors)
	}
	// Body size.
	big := bytes.Repeat([]byte(" "), 2<<20)
	res, err := http.Post(s.URL+"/graphql", "application/json", bytes.NewReader(append([]byte(`{"query":"{ __typename }"`), append(big, '}')...)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "REQUEST_TOO_LARGE") {
		t.Errorf("body size: %d %s", res.StatusCode, b)
	}
	// Without first or last a connection returns at most the page size.
	for batch := 0; batch < 7; batch++ {
		var q strings.Builder
		q.WriteString("mutation {")
		for i := 0; i < 18; i++ {
			fmt.Fprintf(&q, ` c%d: createConversation(input: {ownerID: "%s", title: "c"}) { id }`, i, testOwner)
		}
		q.WriteString(" }")
		s.MustDo(t, q.String(), nil, nil)
	}
	var page struct {
		Conversations struct {
			TotalCount int
			Edges      []struct{ Node struct{ ID string } }
		}
	}
	s.MustDo(t, "{ conversations { totalCount edges { node { id } } } }", nil, &page)
	if page.Conversations.TotalCount != 126 || len(page.Conversations.Edges) != 100 {
		t.Errorf("default page: total %d, %d edges", page.Conversations.TotalCount, len(page.Conversations.Edges))
	}
}

// TestProductionMode: introspection and suggestions off (admins keep
// introspection), GraphiQL off, internal errors masked.
func TestProductionMode(t *testing.T) {
	keys := `[{"kid":"k1","private_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}]`
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ENV=production", "KILN_JWT_KEYS="+keys, "KILN_ADMIN_SECRET="+adminSecret)
	if r := s.DoAs(t, "", "{ __schema { types { name } } }", nil); len(r.Errors) == 0 {
		t.Error("introspection is on in production")
	}
	if r := s.Do(t, "{ __schema { types { name } } }", nil); len(r.Errors) > 0 {
		t.Errorf("admin introspection: %+v", r.Errors)
	}
	r := s.DoAs(t, "", "{ postz { totalCount } }", nil)
	if len(r.Errors) == 0 || strings.Contains(r.Errors[0].Message, "Did you mean") {
		t.Errorf("suggestions in production: %+v", r.Errors)
	}
	res, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GraphiQL served in production: %d", res.StatusCode)
	}
}
