package server

import (
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// TestTracing: with the standard OTEL_TRACES_EXPORTER set, requests,
// GraphQL operations, resolvers and SQL statements are traced.
func TestTracing(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "OTEL_TRACES_EXPORTER=console", "OTEL_BSP_SCHEDULE_DELAY=100", "KILN_ADMIN_SECRET="+adminSecret)
	s.MustDo(t, `query Traced { posts(first: 1) { totalCount } }`, nil, nil)
	want := []string{`"Name":"graphql.query Traced"`, `"Name":"graphql.resolve Query.posts"`, `"Name":"sql"`, `"Name":"POST"`, `"db.statement"`, `"Value":"kiln"`}
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs := s.Logs()
		missing := ""
		for _, w := range want {
			if !strings.Contains(logs, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %s in the output", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
