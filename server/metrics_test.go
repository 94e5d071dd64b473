package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

func metricsText(t *testing.T, s *kilntest.Server) string {
	t.Helper()
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestMetrics: operations by name, type and outcome, latency histograms,
// live subscriptions, database pool stats.
func TestMetrics(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	s.MustDo(t, `query ListPosts { posts(first: 1) { totalCount } }`, nil, nil)
	s.Do(t, `query Broken { posts(first: 1) { nope } }`, nil)
	u, gp := profileFor(t, s, "gina")
	w := s.Dial(t, map[string]any{"accessToken": u.AccessToken})
	w.Subscribe(t, `subscription Live { postCreated { id } }`, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(metricsText(t, s), "kiln_subscriptions_active 1") {
		if time.Now().After(deadline) {
			t.Fatal("kiln_subscriptions_active did not reach 1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := metricsText(t, s)
	for _, want := range []string{
		`kiln_graphql_requests_total{operation="ListPosts",outcome="ok",type="query"} 1`,
		`kiln_graphql_request_duration_seconds_count{type="query"}`,
		`kiln_graphql_request_duration_seconds_bucket{type="mutation",le="0.1"}`,
		`go_sql_max_open_connections{db_name="kiln"}`,
		`kiln_sql_statements_total`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The pub/sub lag histogram moves with an event.
	if !strings.Contains(m, `kiln_pubsub_lag_seconds_count{backend="memory"} 0`) {
		t.Errorf("before any event, want kiln_pubsub_lag_seconds_count{backend=\"memory\"} 0 in\n%s", grepLines(m, "kiln_pubsub_lag"))
	}
	p := gp
	s.MustDoAs(t, u.AccessToken, `mutation($a: ID!) { createPost(input: {authorID: $a, body: "lag"}) { id } }`, map[string]any{"a": p}, nil)
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(metricsText(t, s), `kiln_pubsub_lag_seconds_count{backend="memory"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("kiln_pubsub_lag_seconds did not count the event:\n%s", grepLines(metricsText(t, s), "kiln_pubsub_lag"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m = metricsText(t, s)
	for _, want := range []string{`kiln_pubsub_lag_seconds_bucket{backend="memory",le="0.1"} 1`, `kiln_pubsub_lag_seconds_sum{backend="memory"} `} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "kiln_pubsub_lag"))
		}
	}
	w.Close()
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(metricsText(t, s), "kiln_subscriptions_active 0") {
		if time.Now().After(deadline) {
			t.Fatal("kiln_subscriptions_active did not return to 0 after the socket closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
