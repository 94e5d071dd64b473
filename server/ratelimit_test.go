package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestRateLimit: over KILN_RATE_PER_IP / KILN_RATE_IP_BURST the GraphQL
// endpoint answers 429 with Retry-After and a RATE_LIMITED error; other
// endpoints are not limited.
func TestRateLimit(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_RATE_PER_IP=2", "KILN_RATE_IP_BURST=3")
	post := func() (*http.Response, []byte) {
		t.Helper()
		res, err := http.Post(s.URL+"/graphql", "application/json", strings.NewReader(`{"query":"{ __typename }"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	for i := 1; i <= 3; i++ {
		if res, b := post(); res.StatusCode != http.StatusOK || !strings.Contains(string(b), `"__typename"`) {
			t.Fatalf("request %d (within the burst of 3): %d %s", i, res.StatusCode, b)
		}
	}
	res, b := post()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th quick request: %d %s, want 429", res.StatusCode, b)
	}
	retry, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", res.Header.Get("Retry-After"))
	}
	var body kilntest.Response
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("429 body is not JSON: %s", b)
	}
	if body.Code() != "RATE_LIMITED" || body.Errors[0].Extensions["retryAfter"] != float64(retry) {
		t.Errorf("429 body %s, want code RATE_LIMITED and retryAfter %d", b, retry)
	}
	// Health checks are not limited.
	hres, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hres.Body.Close()
	if hres.StatusCode != http.StatusOK {
		t.Errorf("/healthz while limited: %d", hres.StatusCode)
	}
}
