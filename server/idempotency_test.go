package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"kiln/server/kilntest"
)

// TestIdempotencyKeys: the same key sent 100 times concurrently creates one
// record and every retry gets the same answer; the same key with another
// request is refused.
func TestIdempotencyKeys(t *testing.T) {
	backends(t, func(t *testing.T, s *kilntest.Server) {
		u, p := profileFor(t, s, "hana")
		post := func(key, body string) (int, []byte) {
			b, _ := json.Marshal(map[string]any{"query": `mutation($a: ID!, $b: String!) { createPost(input: {authorID: $a, body: $b}) { id } }`,
				"variables": map[string]any{"a": p, "b": body}})
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+u.AccessToken)
			req.Header.Set("Idempotency-Key", key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return 0, nil
			}
			defer res.Body.Close()
			out, _ := io.ReadAll(res.Body)
			return res.StatusCode, out
		}
		var wg sync.WaitGroup
		bodies := make([][]byte, 100)
		for i := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, b := post("key-1", "once")
				if status != 200 {
					t.Errorf("status %d: %s", status, b)
				}
				bodies[i] = b
			}()
		}
		wg.Wait()
		for i := range bodies {
			if !bytes.Equal(bodies[i], bodies[0]) {
				t.Fatalf("responses differ: %s vs %s", bodies[i], bodies[0])
			}
		}
		if n := total(t, s, u.AccessToken, `{ posts(where: {body: "once"}) { totalCount } }`, nil); n != 1 {
			t.Fatalf("%d posts created for one Idempotency-Key", n)
		}
		status, b := post("key-1", "different")
		if status != http.StatusUnprocessableEntity || !bytes.Contains(b, []byte("IDEMPOTENCY_KEY_REUSED")) {
			t.Fatalf("reused key: %d %s", status, b)
		}
		if status, _ := post("key-2", "twice"); status != 200 {
			t.Fatalf("new key: %d", status)
		}
	})
}
