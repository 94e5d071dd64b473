package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestRateLimitRedisRestart: two instances share per-IP limits through
// Redis; while Redis is down each instance limits on its own (requests are
// neither failed nor unlimited); once Redis is back the limits are shared
// again. It runs its own throwaway Redis, so other tests are not disturbed.
func TestRateLimitRedisRestart(t *testing.T) {
	redis := kilntest.PrivateRedis(t) // restarted below
	rurl := redis.URL
	u, err := url.Parse(rurl)
	if err != nil {
		t.Fatal(err)
	}

	env := []string{"REDIS_URL=" + rurl, "KILN_RATE_PER_IP=0.2", "KILN_RATE_IP_BURST=4", "KILN_TRUST_PROXY=true"}
	a := kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+t.TempDir())...)
	b := kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+t.TempDir())...)
	// post sends one query from client address ip; it returns the status,
	// after checking that the answer is a result or RATE_LIMITED and came fast.
	post := func(s *kilntest.Server, ip string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("a request took %s", took)
		}
		switch {
		case res.StatusCode == http.StatusOK && strings.Contains(string(body), `"__typename"`):
		case res.StatusCode == http.StatusTooManyRequests && strings.Contains(string(body), "RATE_LIMITED"):
		default:
			t.Fatalf("unexpected answer %d %s", res.StatusCode, body)
		}
		return res.StatusCode
	}
	// shared reports whether A and B share the bucket of ip: two requests on
	// each use up the burst of 4, so A's third is refused only if B's
	// requests counted on A.
	shared := func(ip string) bool {
		for i, s := range []*kilntest.Server{a, a, b, b} {
			if c := post(s, ip); c != http.StatusOK {
				t.Fatalf("request %d from %s within the burst: %d", i+1, ip, c)
			}
		}
		return post(a, ip) == http.StatusTooManyRequests
	}
	if !shared("10.0.0.1") {
		t.Fatal("with Redis up, the two instances do not share the limit")
	}

	restarted := make(chan error, 1)
	go func() { restarted <- redis.Command("restart", "5").Run() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, 200*time.Millisecond)
		if err != nil {
			break // down
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("Redis did not go down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Down: each instance limits on its own. A allows its whole burst of 4
	// and refuses the 5th; B still has its own burst.
	for i := 1; i <= 4; i++ {
		if c := post(a, "10.0.0.2"); c != http.StatusOK {
			t.Fatalf("Redis down: request %d on A: %d, want 200 (per-instance burst)", i, c)
		}
	}
	if c := post(a, "10.0.0.2"); c != http.StatusTooManyRequests {
		t.Fatalf("Redis down: 5th request on A: %d, want 429 (limits still hold per instance)", c)
	}
	if c := post(b, "10.0.0.2"); c != http.StatusOK {
		t.Fatalf("Redis down: first request on B: %d, want 200 (B limits on its own)", c)
	}
	if err := <-restarted; err != nil {
		t.Fatalf("redis.sh restart: %v", err)
	}
	// Back: the instances probe Redis again and share the limit.
	deadline = time.Now().Add(20 * time.Second)
	for n := 3; !shared(fmt.Sprintf("10.0.1.%d", n)); n++ {
		if time.Now().After(deadline) {
			t.Fatal("limits are not shared again 20s after Redis came back")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
