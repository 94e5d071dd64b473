package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/job"
)

// BenchmarkWritesWithTrigger measures createPost (as an admin, public
// posts, on PostgreSQL) on the example app without and with its webhook
// trigger on new public posts (NEW_POST_WEBHOOK_URL, a signed POST to a
// receiver on loopback that verifies each signature). With the trigger,
// every write also inserts the event in its transaction, and the server's
// job engine delivers it; after the timed writes the benchmark waits until
// every event has arrived and reports the trigger lag (arrival at the
// receiver minus the event's time) p50 and p99. writes/s of both lines side
// by side give the cost of the trigger: enqueuing in the write's
// transaction plus delivering on the same machine. enqueue-only has the
// trigger but an idle job engine (KILN_JOBS_POLL_INTERVAL=1h, nothing is
// delivered while it runs): the cost of the outbox insert alone. The job
// engine polls every KILN_JOBS_POLL_INTERVAL (100ms here) when idle.
func BenchmarkWritesWithTrigger(b *testing.B) {
	base := postgresBaseURL(b)
	bin := kilnBinary(b)
	for _, mode := range []string{"no-trigger", "webhook-trigger", "enqueue-only"} {
		trigger := mode != "no-trigger"
		b.Run(mode, func(b *testing.B) {
			const secret = "bench-webhook-secret"
			rc := &lagReceiver{secret: secret, arrived: map[string]time.Duration{}}
			recv := httptest.NewServer(rc)
			defer recv.Close()
			env := append(readServerEnv(), "DATABASE_URL="+freshDatabase(b, base), "KILN_DATA_DIR="+b.TempDir(),
				"KILN_DB_MAX_CONNS="+strconv.Itoa(dbMaxConns), "KILN_JOBS_POLL_INTERVAL=100ms", "KILN_JOBS_WORKERS=20")
			if trigger {
				env = append(env, "NEW_POST_WEBHOOK_URL="+recv.URL, "NEW_POST_WEBHOOK_SECRET="+secret)
			}
			if mode == "enqueue-only" {
				env = append(env, "KILN_JOBS_POLL_INTERVAL=1h")
			}
			s := startServer(b, bin, []string{"-addr", "127.0.0.1:0"}, env...)
			client := newClient()
			endpoint := s.URL + "/graphql"
			ctx := context.Background()
			var p struct{ CreateProfile struct{ ID string } }
			if err := do(ctx, client, endpoint, `mutation($o: ID!) { createProfile(input: {handle: "writer", displayName: "Writer", ownerID: $o}) { id } }`,
				map[string]any{"o": uuid.NewString()}, &p); err != nil {
				b.Fatal(err)
			}
			author := p.CreateProfile.ID
			owner := uuid.NewString()
			b.SetParallelism(defaultParallelism)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := do(ctx, client, endpoint, `mutation($a: ID!, $o: ID!) { createPost(input: {authorID: $a, ownerID: $o, body: "a benchmark post"}) { id } }`,
						map[string]any{"a": author, "o": owner}, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			if mode != "webhook-trigger" {
				return
			}
			// Every event arrives (bounded by a count of polls, not a clock budget).
			for i := 0; rc.count() < b.N && i < 6000; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			lags := rc.lags()
			if len(lags) != b.N {
				b.Fatalf("%d of %d events delivered", len(lags), b.N)
			}
			if bad := rc.badCount(); bad > 0 {
				b.Fatalf("%d deliveries with a bad signature", bad)
			}
			slices.Sort(lags)
			b.ReportMetric(float64(lags[len(lags)/2])/1e6, "lag-p50-ms")
			b.ReportMetric(float64(lags[len(lags)*99/100])/1e6, "lag-p99-ms")
		})
	}
}

// lagReceiver is a webhook receiver that verifies signatures and keeps
// each event's lag (first arrival).
type lagReceiver struct {
	secret  string
	mu      sync.Mutex
	arrived map[string]time.Duration
	bad     int
}

func (rc *lagReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(r.Body)
	var e job.Event
	err := job.Verify(rc.secret, r.Header.Get(job.SignatureHeader), body, now, time.Minute)
	if err == nil {
		err = json.Unmarshal(body, &e)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if _, dup := rc.arrived[e.ID]; !dup {
		rc.arrived[e.ID] = now.Sub(e.At)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *lagReceiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.arrived) }

func (rc *lagReceiver) badCount() int { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.bad }

func (rc *lagReceiver) lags() []time.Duration {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]time.Duration, 0, len(rc.arrived))
	for _, d := range rc.arrived {
		out = append(out, d)
	}
	return out
}
