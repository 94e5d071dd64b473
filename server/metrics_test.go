package server

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
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

// TestMetrics: operations by name (registered ones), type and outcome,
// latency histograms, live subscriptions, database pool stats.
func TestMetrics(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	_, feed := feedOperation(t)
	s.MustDo(t, feed, nil, nil)
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
		`kiln_graphql_requests_total{operation="Feed",outcome="ok",type="query"} 1`,
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

// getMetrics gets url with the admin secret when secret is set.
func getMetrics(t *testing.T, url, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if secret != "" {
		req.Header.Set("X-Kiln-Admin-Secret", secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

var metricsAddrRE = regexp.MustCompile(`metrics_addr=(\S+)`)

// TestMetricsExposure: in production /metrics is not public: behind the
// admin secret on the main listener, or only on KILN_METRICS_ADDR when
// set (also outside production).
func TestMetricsExposure(t *testing.T) {
	keys := `[{"kid":"k1","private_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}]`
	prod := []string{"KILN_ENV=production", "KILN_JWT_KEYS=" + keys, "KILN_ADMIN_SECRET=" + adminSecret}

	s := kilntest.Start(t, serverBin, append(prod, "KILN_DATA_DIR="+t.TempDir())...)
	if code, body := getMetrics(t, s.URL+"/metrics", ""); code != http.StatusUnauthorized || strings.Contains(body, "kiln_") {
		t.Errorf("production /metrics without the admin secret: %d", code)
	}
	if code, body := getMetrics(t, s.URL+"/metrics", adminSecret); code != 200 || !strings.Contains(body, "kiln_sql_statements_total") {
		t.Errorf("production /metrics with the admin secret: %d", code)
	}

	for _, env := range [][]string{append(prod, "KILN_METRICS_ADDR=127.0.0.1:0"), {"KILN_METRICS_ADDR=127.0.0.1:0", "KILN_ADMIN_SECRET=" + adminSecret}} {
		s := kilntest.Start(t, serverBin, append(env, "KILN_DATA_DIR="+t.TempDir())...)
		m := metricsAddrRE.FindStringSubmatch(s.Logs())
		if m == nil {
			t.Fatalf("no metrics_addr in the log:\n%s", s.Logs())
		}
		for _, secret := range []string{"", adminSecret} {
			if code, _ := getMetrics(t, s.URL+"/metrics", secret); code != http.StatusNotFound {
				t.Errorf("%v: /metrics on the main listener: %d, want 404", env, code)
			}
		}
		if code, body := getMetrics(t, "http://"+m[1]+"/metrics", ""); code != 200 || !strings.Contains(body, "kiln_sql_statements_total") {
			t.Errorf("%v: /metrics on KILN_METRICS_ADDR: %d", env, code)
		}
	}
}

// TestMetricsOperationLabels: the operation label takes only registered
// operation names and Kiln's built-in fields: junk names sent over HTTP
// and WebSocket are all counted as "other".
func TestMetricsOperationLabels(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret)
	_, feed := feedOperation(t)
	s.MustDoAs(t, "", feed, nil, nil)
	u, _ := profileFor(t, s, "lara") // an unnamed signUp: "signUp"
	s.MustDoAs(t, "", `mutation MyOwnLoginName($r: String!) { refreshSession(refreshToken: $r) { accessToken } }`, map[string]any{"r": u.RefreshToken}, nil)
	for i := range 40 {
		s.DoAs(t, "", fmt.Sprintf(`query Junk%d { __typename posts(first: 1) { totalCount } }`, i), nil)
	}
	w := s.Dial(t, nil)
	for i := range 10 {
		sub := w.Subscribe(t, fmt.Sprintf(`query WsJunk%d { posts(first: 1) { totalCount } }`, i), nil)
		if _, ok := kilntest.Next(sub, 10*time.Second); !ok {
			t.Fatalf("no answer over WebSocket")
		}
	}
	m := metricsText(t, s)
	lines := grepLines(m, "kiln_graphql_requests_total{")
	if strings.Contains(lines, "Junk") || strings.Contains(lines, "MyOwnLoginName") {
		t.Errorf("unregistered names became labels:\n%s", lines)
	}
	for _, want := range []string{`operation="Feed"`, `operation="signUp"`, `operation="refreshSession"`, `operation="other",outcome="ok",type="query"} 50`} {
		if !strings.Contains(lines, want) {
			t.Errorf("metrics lack %s:\n%s", want, lines)
		}
	}
}
