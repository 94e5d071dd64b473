package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"kiln/graph"
	"kiln/server/kilntest"
)

func rawPost(t *testing.T, s *kilntest.Server, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(s.URL+"/graphql", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return string(out)
}

func feedOperation(t *testing.T) (hash, text string) {
	t.Helper()
	for h, q := range graph.Operations {
		if strings.Contains(q, "query Feed") {
			return h, q
		}
	}
	t.Fatal("no Feed operation in graph.Operations")
	return "", ""
}

// TestAllowList: with KILN_OPERATIONS=allowlist only the operations of
// schema/operations run, by text or by hash; admins keep free queries.
func TestAllowList(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_OPERATIONS=allowlist", "KILN_ADMIN_SECRET="+adminSecret)
	hash, text := feedOperation(t)
	if out := rawPost(t, s, map[string]any{"query": text}); strings.Contains(out, "errors") {
		t.Fatalf("registered operation refused: %s", out)
	}
	byHash := rawPost(t, s, map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}})
	if strings.Contains(byHash, "errors") || !strings.Contains(byHash, "posts") {
		t.Fatalf("registered operation by hash: %s", byHash)
	}
	if out := rawPost(t, s, map[string]any{"query": "{ posts { totalCount } }"}); !strings.Contains(out, "PERSISTED_QUERY_NOT_ALLOWED") {
		t.Fatalf("free query accepted: %s", out)
	}
	if r := s.Do(t, "{ posts { totalCount } }", nil); len(r.Errors) > 0 {
		t.Fatalf("admin free query: %+v", r.Errors)
	}
}

// TestAutomaticPersistedQueries: by default a client can send a query's
// hash alone once the server has seen the query.
func TestAutomaticPersistedQueries(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir())
	q := "{ posts(first: 1) { totalCount } }"
	sum := sha256.Sum256([]byte(q))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	if out := rawPost(t, s, map[string]any{"extensions": ext}); !strings.Contains(out, "PersistedQueryNotFound") {
		t.Fatalf("unknown hash: %s", out)
	}
	if out := rawPost(t, s, map[string]any{"query": q, "extensions": ext}); strings.Contains(out, "errors") {
		t.Fatalf("register: %s", out)
	}
	if out := rawPost(t, s, map[string]any{"extensions": ext}); strings.Contains(out, "errors") || !strings.Contains(out, "totalCount") {
		t.Fatalf("by hash: %s", out)
	}
}

// TestAllowListBuiltins: with KILN_OPERATIONS=allowlist Kiln's built-in
// operations (accounts, files, viewer) are always accepted, under any
// operation name and through fragments, while app operations outside the
// list are refused, also mixed with built-in fields.
func TestAllowListBuiltins(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_OPERATIONS=allowlist")
	up := signUp(t, s, "al@example.com")
	in := signIn(t, s, "al@example.com")
	var refreshed struct{ RefreshSession session }
	s.MustDoAs(t, "", `mutation Renew($r: String!) { refreshSession(refreshToken: $r) { `+authFields+` } }`, map[string]any{"r": in.RefreshToken}, &refreshed)
	s.MustDoAs(t, "", `mutation { ...Anon } fragment Anon on Mutation { signInAnonymously { accessToken } }`, nil, nil)
	s.MustDoAs(t, up.AccessToken, `query Me { viewer { id email } __typename }`, nil, nil)
	s.MustDoAs(t, up.AccessToken, `mutation { createUpload(input: {filename: "a.png", contentType: "image/png", size: 3}) { fileId url } }`, nil, nil)
	s.MustDoAs(t, "", `mutation($r: String!) { signOut(refreshToken: $r) }`, map[string]any{"r": refreshed.RefreshSession.RefreshToken}, nil)
	for _, q := range []string{
		`{ posts { totalCount } }`,
		`mutation { signInAnonymously { accessToken } createProfile(input: {handle: "x", displayName: "x"}) { id } }`,
		`query { viewer { id } ...P } fragment P on Query { profiles { totalCount } }`,
		`query A { viewer { id } } query B { posts { totalCount } }`,
	} {
		if r := s.DoAs(t, up.AccessToken, q, nil); r.Code() != "PERSISTED_QUERY_NOT_ALLOWED" {
			t.Errorf("%s: want PERSISTED_QUERY_NOT_ALLOWED, got %+v", q, r.Errors)
		}
	}
}
