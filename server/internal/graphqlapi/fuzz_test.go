package graphqlapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"kiln/graph"
	"kiln/runtime/app"
	"kiln/runtime/files"
	"kiln/server/internal/database"
)

// FuzzGraphQLRequest sends arbitrary request bodies (and arbitrary queries
// inside valid bodies) through the real handler on SQLite: the server never
// answers 5xx, always answers JSON, and never leaks internals.
func FuzzGraphQLRequest(f *testing.F) {
	for _, seed := range []string{
		`{"query":"{ posts(first: 2) { totalCount edges { node { id body author { handle } } } } }"}`,
		`{"query":"mutation { createPost(input: {authorID: \"00000000-0000-0000-0000-000000000000\", body: \"x\"}) { id } }"}`,
		`{"query":"query($w: PostWhereInput) { posts(where: $w) { totalCount } }","variables":{"w":{"or":[{"bodyContains":"a"}],"hasAuthorWith":[{"handle":"x"}]}}}`,
		`{"query":"{ node(id: \"x\") { id } }"}`,
		`{"query":"{ __schema { types { name } } }"}`,
		`{"query":"fragment F on Post { id ...F } { posts { edges { node { ...F } } } }"}`,
		`{"query":"{ profiles(first: 100000) { totalCount } }"}`,
		`not json`,
		`{"query": 5}`,
	} {
		f.Add([]byte(seed))
	}
	ctx := context.Background()
	db, err := database.Open(ctx, database.Options{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	example := graph.App() // the example app of this repository
	if err := db.Migrate(ctx, example.Migrations, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		f.Fatal(err)
	}
	parts, err := example.Build(app.Services{Driver: db.Driver, Dialect: db.Dialect, Files: &files.Service{}})
	if err != nil {
		f.Fatal(err)
	}
	h := New(parts, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Limits: DefaultLimits, MaxBodyBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, b := range [][]byte{body, wrap(body)} {
			req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() { h.ServeHTTP(rec, req); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("no answer within 5s for %q", b)
			}
			if rec.Code >= 500 {
				t.Fatalf("status %d for %q: %s", rec.Code, b, rec.Body.String())
			}
			out := rec.Body.Bytes()
			if !json.Valid(out) {
				t.Fatalf("response is not JSON for %q: %s", b, out)
			}
			low := strings.ToLower(string(out))
			for _, leak := range []string{"panic", "goroutine", ".go:", "sqlite", "constraint failed", "pq:", "syntax error at"} {
				if strings.Contains(low, leak) {
					t.Fatalf("response leaks %q for %q: %s", leak, b, out)
				}
			}
		}
	})
}

// wrap puts arbitrary bytes in the query of a valid request body.
func wrap(q []byte) []byte {
	b, _ := json.Marshal(map[string]any{"query": string(q)})
	return b
}
