package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/google/uuid"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	seedProfiles = 50
	seedPosts    = 1000
	seedWorkers  = 8
	// dbMaxConns is Kiln's default PostgreSQL pool size, passed explicitly
	// to Kiln and used for the baseline's pool.
	dbMaxConns = 20
	// defaultParallelism multiplies GOMAXPROCS (-cpu) to give the number of
	// concurrent client requests in b.RunParallel; override with
	// KILN_BENCH_PARALLELISM.
	defaultParallelism = 4
)

// readQuery is "list 20 posts with their authors".
const readQuery = `{ posts(first: 20, orderBy: [{field: CREATED_AT, direction: DESC}]) { edges { node { id body score createdAt author { id handle displayName } } } } }`

var readBody = func() []byte {
	b, err := json.Marshal(map[string]string{"query": readQuery})
	if err != nil {
		panic(err)
	}
	return b
}()

// BenchmarkRead20PostsWithAuthors compares Kiln's GraphQL endpoint with a
// hand-written pgx + encoding/json handler (baseline_test.go) on the same
// PostgreSQL database, pool size, data (50 profiles, 1000 posts) and client
// concurrency. Each sub-benchmark reports req/s, the server's and the
// client's CPU time per request and the SQL statements per request; the
// baseline line also reports kiln-%, Kiln's throughput as a percentage of
// the baseline's (also logged with -v). The design target is kiln-% >= 80.
func BenchmarkRead20PostsWithAuthors(b *testing.B) {
	base := postgresBaseURL(b)
	dbURL := freshDatabase(b, base)
	bin := kilnBinary(b)
	kiln := startServer(b, bin, []string{"-addr", "127.0.0.1:0"},
		"DATABASE_URL="+dbURL,
		"KILN_DATA_DIR="+b.TempDir(),
		"KILN_DB_MAX_CONNS="+strconv.Itoa(dbMaxConns),
		"KILN_LOG_LEVEL=info",
		"KILN_ADMIN_SECRET="+benchAdminSecret,
	)
	client := newClient()
	seed(b, client, kiln.URL+"/graphql")
	baseline := startBaseline(b, dbURL, dbMaxConns)

	// Untimed: both answer the same 20 posts with the same fields; warm
	// both servers' connections and statement caches.
	kilnNodes := fetchNodes(b, client, kiln.URL+"/graphql")
	baseNodes := fetchNodes(b, client, baseline.URL+"/graphql")
	compareNodes(b, kilnNodes, baseNodes)
	warm(b, client, kiln.URL+"/graphql")
	warm(b, client, baseline.URL+"/graphql")

	// SQL statements Kiln runs for one request of the query.
	before := metric(b, client, kiln.URL, "kiln_sql_statements_total")
	fetchNodes(b, client, kiln.URL+"/graphql")
	stmts := metric(b, client, kiln.URL, "kiln_sql_statements_total") - before
	b.Logf("SQL statements per request: kiln %v, baseline 2", stmts)

	// With -count N, go test runs "kiln" N times and then "baseline" N
	// times; the ratio uses the median of kiln's runs.
	var kilnRates []float64
	var baseRate float64
	b.Run("kiln", func(b *testing.B) {
		rate := benchEndpoint(b, client, kiln.URL+"/graphql", kiln.pid())
		if b.N > 1 { // not go test's b.N=1 probe round
			kilnRates = append(kilnRates, rate)
		}
		b.ReportMetric(stmts, "stmts/req")
	})
	b.Run("baseline", func(b *testing.B) {
		baseRate = benchEndpoint(b, client, baseline.URL+"/graphql", baseline.pid())
		b.ReportMetric(2, "stmts/req")
		if len(kilnRates) > 0 {
			// Reported on this line because a parent benchmark's log is
			// only printed with -v.
			b.ReportMetric(100*median(kilnRates)/baseRate, "kiln-%")
		}
	})
	if len(kilnRates) > 0 && baseRate > 0 {
		b.Logf("kiln/baseline = %.1f%% (target >= 80%%): kiln %.0f req/s (median of %d), baseline %.0f req/s (last run), %d concurrent requests",
			100*median(kilnRates)/baseRate, median(kilnRates), len(kilnRates), baseRate, parallelism()*runtimeProcs())
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// BenchmarkNestedQuerySQLite runs the same query against a server on the
// embedded SQLite default (same data, same client concurrency), to show the
// default's throughput. There is no baseline: the hand-written comparison is
// the PostgreSQL one.
func BenchmarkNestedQuerySQLite(b *testing.B) {
	bin := kilnBinary(b)
	kiln := startServer(b, bin, []string{"-addr", "127.0.0.1:0"},
		"DATABASE_URL=",
		"KILN_DATA_DIR="+b.TempDir(),
		"KILN_LOG_LEVEL=info",
		"KILN_ADMIN_SECRET="+benchAdminSecret,
	)
	client := newClient()
	seed(b, client, kiln.URL+"/graphql")
	if n := len(fetchNodes(b, client, kiln.URL+"/graphql")); n != 20 {
		b.Fatalf("query returned %d posts, want 20", n)
	}
	warm(b, client, kiln.URL+"/graphql")
	// A sub-benchmark, so that the server and the data above are set up
	// once rather than once per b.N round.
	b.Run("kiln", func(b *testing.B) {
		benchEndpoint(b, client, kiln.URL+"/graphql", kiln.pid())
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func parallelism() int {
	if v, err := strconv.Atoi(os.Getenv("KILN_BENCH_PARALLELISM")); err == nil && v > 0 {
		return v
	}
	return defaultParallelism
}

// benchEndpoint POSTs the read query b.N times from parallel workers, checks
// each answer cheaply (status 200 and 20 "author" keys), reports req/s and
// returns it. It also reports the CPU time per request of the server
// process serverPID (srv-cpu-us/req; skipped when serverPID is 0) and of
// this process, the client (cli-cpu-us/req), when /proc is available.
func benchEndpoint(b *testing.B, client *http.Client, endpoint string, serverPID int) float64 {
	authorKey := []byte(`"author":`)
	var failed atomic.Bool
	b.SetParallelism(parallelism())
	srv0, srvOK := processCPU(serverPID)
	cli0, cliOK := processCPU(os.Getpid())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf bytes.Buffer
		for pb.Next() {
			if failed.Load() {
				continue // drain the remaining iterations quickly
			}
			req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(readBody))
			if err != nil {
				b.Error(err)
				failed.Store(true)
				continue
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Kiln-Admin-Secret", benchAdminSecret)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				failed.Store(true)
				continue
			}
			buf.Reset()
			_, err = buf.ReadFrom(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK || bytes.Count(buf.Bytes(), authorKey) != 20 {
				if !failed.Swap(true) {
					b.Errorf("status %d, read error %v, body: %.500s", res.StatusCode, err, buf.Bytes())
				}
			}
		}
	})
	b.StopTimer()
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "req/s")
	if srv1, ok := processCPU(serverPID); ok && srvOK && serverPID != 0 {
		b.ReportMetric(float64((srv1-srv0).Microseconds())/float64(b.N), "srv-cpu-us/req")
	}
	if cli1, ok := processCPU(os.Getpid()); ok && cliOK {
		b.ReportMetric(float64((cli1-cli0).Microseconds())/float64(b.N), "cli-cpu-us/req")
	}
	return rate
}

// seed creates seedProfiles profiles and seedPosts posts through GraphQL
// mutations, from seedWorkers goroutines.
func seed(b *testing.B, client *http.Client, endpoint string) {
	b.Helper()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	profiles := make([]string, seedProfiles)
	parallelDo(b, seedProfiles, func(i int) error {
		var out struct{ CreateProfile struct{ ID string } }
		h := fmt.Sprintf("user_%03d", i)
		err := do(ctx, client, endpoint,
			`mutation($h: String!, $e: String!, $d: String!, $o: ID!) { createProfile(input: {handle: $h, email: $e, displayName: $d, ownerID: $o}) { id } }`,
			map[string]any{"h": h, "e": h + "@example.com", "d": fmt.Sprintf("User Number %d", i), "o": uuid.NewString()}, &out)
		profiles[i] = out.CreateProfile.ID
		return err
	})
	parallelDo(b, seedPosts, func(i int) error {
		r := rand.New(rand.NewPCG(uint64(i), 42)) // deterministic content
		body := fmt.Sprintf("Post %d: %s", i, lorem[:40+r.IntN(len(lorem)-40)])
		score := float64(r.IntN(100000)) / 100
		return do(ctx, client, endpoint,
			`mutation($a: ID!, $b: String!, $s: Float!) { createPost(input: {authorID: $a, body: $b, score: $s, ownerID: "00000000-0000-4000-8000-0000000000bb"}) { id } }`,
			map[string]any{"a": profiles[r.IntN(seedProfiles)], "b": body, "s": score}, nil)
	})
	b.Logf("seeded %d profiles and %d posts in %s", seedProfiles, seedPosts, time.Since(t0).Round(time.Millisecond))
}

const lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."

// parallelDo runs fn(0..n-1) on seedWorkers goroutines and fails b on the
// first error.
func parallelDo(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < seedWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("seed item %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// fetchNodes runs the read query once and decodes the nodes.
func fetchNodes(b *testing.B, client *http.Client, endpoint string) []bNode {
	b.Helper()
	var out struct {
		Posts struct {
			Edges []bEdge `json:"edges"`
		} `json:"posts"`
	}
	if err := do(context.Background(), client, endpoint, readQuery, nil, &out); err != nil {
		b.Fatalf("%s: %v", endpoint, err)
	}
	nodes := make([]bNode, len(out.Posts.Edges))
	for i, e := range out.Posts.Edges {
		nodes[i] = e.Node
	}
	return nodes
}

// compareNodes fails b unless both answers hold the same 20 posts, in the
// same order, with the same fields.
func compareNodes(b *testing.B, kiln, base []bNode) {
	b.Helper()
	if len(kiln) != 20 || len(base) != 20 {
		b.Fatalf("got %d posts from kiln and %d from the baseline, want 20 each", len(kiln), len(base))
	}
	for i := range kiln {
		k, x := kiln[i], base[i]
		if k.ID != x.ID || k.Body != x.Body || k.Score != x.Score || !k.CreatedAt.Equal(x.CreatedAt) ||
			k.Author == nil || x.Author == nil || *k.Author != *x.Author {
			kj, _ := json.Marshal(k)
			xj, _ := json.Marshal(x)
			b.Fatalf("post %d differs:\nkiln:     %s\nbaseline: %s", i, kj, xj)
		}
	}
}

// warm sends a few hundred requests from several goroutines, untimed.
func warm(b *testing.B, client *http.Client, endpoint string) {
	b.Helper()
	parallelDo(b, 200, func(int) error {
		return do(context.Background(), client, endpoint, readQuery, nil, nil)
	})
}

// benchAdminSecret lets the benchmarks seed and read as admin: the rules of
// the example schema then add nothing, so Kiln runs the same SQL as the
// baseline.
const benchAdminSecret = "bench-admin-secret-0123456789"
