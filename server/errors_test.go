package server

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestInputErrorsWithoutText: errors of the layers below that were once
// recognised by their text have codes of their own: a cursor made for
// another orderBy is refused before any SQL runs, an empty nested where
// condition is BAD_USER_INPUT on where.
func TestInputErrorsWithoutText(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	author := createProfile(t, s, "ada", "").ID
	for _, title := range []string{"a", "b", "c"} {
		createPost(t, s, author, "body", `, title: "`+title+`"`)
	}
	var page struct {
		Posts struct{ PageInfo struct{ EndCursor string } }
	}
	s.MustDo(t, `{ posts(first: 1, orderBy: [{field: TITLE}, {field: CREATED_AT}]) { edges { cursor } pageInfo { endCursor } } }`, nil, &page)
	if page.Posts.PageInfo.EndCursor == "" {
		t.Fatalf("no cursor: %s", s.Do(t, `{ posts(first: 1, orderBy: [{field: TITLE}, {field: CREATED_AT}]) { totalCount pageInfo { endCursor } } }`, nil).Data)
	}
	before := s.Metric(t, "kiln_sql_statements_total")
	r := s.Do(t, `query($c: Cursor) { posts(first: 1, after: $c, orderBy: [{field: TITLE}]) { totalCount } }`, map[string]any{"c": page.Posts.PageInfo.EndCursor})
	if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "another orderBy") || r.Errors[0].Extensions["field"] != "posts.after" {
		t.Errorf("a cursor of another orderBy: %+v", r.Errors)
	}
	if after := s.Metric(t, "kiln_sql_statements_total"); after != before {
		t.Errorf("%v statements ran before the refusal", after-before)
	}
	// The same cursor with its own ordering pages on.
	if r := s.Do(t, `query($c: Cursor) { posts(first: 1, after: $c, orderBy: [{field: TITLE}, {field: CREATED_AT}]) { totalCount } }`, map[string]any{"c": page.Posts.PageInfo.EndCursor}); len(r.Errors) > 0 {
		t.Errorf("the cursor with its ordering: %+v", r.Errors)
	}
	r = s.Do(t, `{ posts(where: {not: {}}) { totalCount } }`, nil)
	if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "where" {
		t.Errorf("an empty nested condition: %+v", r.Errors)
	}
}

// TestErrorsAUserMeets: what a new user sends by mistake gets an answer
// that says what to do, not a masked internal error or a hang.
func TestErrorsAUserMeets(t *testing.T) {
	keys := `[{"kid":"k1","key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}]`
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ENV=production", "KILN_JWT_KEYS="+keys)
	// No Content-Type.
	res, err := http.Post(s.URL+"/graphql", "", strings.NewReader(`{"query":"{ __typename }"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(b), "Content-Type: application/json") {
		t.Errorf("no Content-Type: %d %s", res.StatusCode, b)
	}
	// Introspection in production: a code of its own, nothing logged as an error.
	if r := s.DoAs(t, "", `query { ...F } fragment F on Query { __schema { types { name } } }`, nil); r.Code() != "INTROSPECTION_DISABLED" {
		t.Errorf("introspection in production: %+v", r.Errors)
	}
	if r := s.DoAs(t, "", `{ __typename }`, nil); len(r.Errors) > 0 {
		t.Errorf("__typename in production: %+v", r.Errors)
	}
	// A subscription over a plain POST is refused at once (it used to wait
	// for the first event).
	if r := s.DoAs(t, "", `subscription { postCreated { id } }`, nil); r.Code() != "BAD_REQUEST" || !strings.Contains(r.Errors[0].Message, "WebSocket") {
		t.Errorf("a subscription over POST: %+v", r.Errors)
	}
	// Messages carry no parser position prefix.
	if r := s.DoAs(t, "", `mutation { signIn(input: {email: "x@example.com", password: "nope-nope-nope"}) { accessToken } }`, nil); len(r.Errors) == 0 || strings.HasPrefix(r.Errors[0].Message, "input:") {
		t.Errorf("signIn error message: %+v", r.Errors)
	}
	if strings.Contains(s.Logs(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", s.Logs())
	}
}
