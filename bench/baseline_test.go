package bench

// The hand-written baseline for BenchmarkRead20PostsWithAuthors: a net/http
// handler that runs the two statements ent runs for the GraphQL query,
// through a pgxpool of the same size as Kiln's, and encodes the same JSON
// document with encoding/json.
//
// By default it runs in its own process (this test binary re-executed with
// KILN_BENCH_BASELINE_SERVE=1), so that both servers are measured the same
// way: a separate process, over loopback, next to the client. With
// KILN_BENCH_BASELINE_INPROC=1 it is served in the benchmark process
// instead (httptest), which lets -cpuprofile see it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	baselineServeEnv  = "KILN_BENCH_BASELINE_SERVE"
	baselineDBEnv     = "KILN_BENCH_BASELINE_DATABASE_URL"
	baselineInprocEnv = "KILN_BENCH_BASELINE_INPROC"
)

// The statements ent issues for
//
//	posts(first: 20, orderBy: [{field: CREATED_AT, direction: DESC}]) {
//	  edges { node { id body score createdAt author { id handle displayName } } } }
//
// as captured with log_statement=all: entgql's field collection selects
// only the requested columns plus the author foreign key, pagination
// fetches first+1 rows and breaks ties on the id (ascending), and the
// authors are loaded in one IN query with one parameter per distinct id.
const (
	baselinePostsSQL   = `SELECT "posts"."id", "posts"."body", "posts"."score", "posts"."created_at", "posts"."author_id" FROM "posts" ORDER BY "posts"."created_at" DESC, "posts"."id" LIMIT 21`
	baselineAuthorsSQL = `SELECT "profiles"."id", "profiles"."handle", "profiles"."display_name" FROM "profiles" WHERE "profiles"."id" IN (`
	baselineFirst      = 20
)

type (
	bAuthor struct {
		ID          uuid.UUID `json:"id"`
		Handle      string    `json:"handle"`
		DisplayName string    `json:"displayName"`
	}
	bNode struct {
		ID        uuid.UUID `json:"id"`
		Body      string    `json:"body"`
		Score     float64   `json:"score"`
		CreatedAt time.Time `json:"createdAt"`
		Author    *bAuthor  `json:"author"`
	}
	bEdge struct {
		Node bNode `json:"node"`
	}
	bResponse struct {
		Data struct {
			Posts struct {
				Edges []bEdge `json:"edges"`
			} `json:"posts"`
		} `json:"data"`
	}
)

// baselineHandler serves the query's answer for any POST on /graphql.
type baselineHandler struct {
	pool *pgxpool.Pool
}

func (h *baselineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	// The request is read (keep-alive needs it) but not parsed: the baseline
	// answers one fixed query.
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := h.query(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		log.Printf("baseline: encode: %v", err)
	}
}

func (h *baselineHandler) query(ctx context.Context) (*bResponse, error) {
	rows, err := h.pool.Query(ctx, baselinePostsSQL)
	if err != nil {
		return nil, err
	}
	edges := make([]bEdge, 0, baselineFirst+1)
	authorIDs := make([]uuid.UUID, 0, baselineFirst+1)
	for rows.Next() {
		var e bEdge
		var author uuid.UUID
		if err := rows.Scan(&e.Node.ID, &e.Node.Body, &e.Node.Score, &e.Node.CreatedAt, &author); err != nil {
			rows.Close()
			return nil, err
		}
		e.Node.Author = &bAuthor{ID: author}
		edges = append(edges, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(edges) > baselineFirst {
		edges = edges[:baselineFirst]
	}

	// Distinct author ids, one parameter each, as ent does.
	byID := make(map[uuid.UUID][]*bAuthor, len(edges))
	for i := range edges {
		a := edges[i].Node.Author
		if _, ok := byID[a.ID]; !ok {
			authorIDs = append(authorIDs, a.ID)
		}
		byID[a.ID] = append(byID[a.ID], a)
	}
	if len(authorIDs) > 0 {
		var q strings.Builder
		q.WriteString(baselineAuthorsSQL)
		args := make([]any, len(authorIDs))
		for i, id := range authorIDs {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("$" + strconv.Itoa(i+1))
			args[i] = id
		}
		q.WriteString(")")
		rows, err := h.pool.Query(ctx, q.String(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var a bAuthor
			if err := rows.Scan(&a.ID, &a.Handle, &a.DisplayName); err != nil {
				rows.Close()
				return nil, err
			}
			for _, p := range byID[a.ID] {
				*p = a
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	resp := &bResponse{}
	resp.Data.Posts.Edges = edges
	return resp, nil
}

func newBaselinePool(ctx context.Context, dbURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// startBaseline serves the baseline on the database at dbURL; it is stopped
// in tb.Cleanup.
func startBaseline(tb testing.TB, dbURL string, maxConns int) *server {
	tb.Helper()
	if os.Getenv(baselineInprocEnv) == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pool, err := newBaselinePool(ctx, dbURL, int32(maxConns))
		if err != nil {
			tb.Fatalf("baseline pool: %v", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/graphql", &baselineHandler{pool: pool})
		srv := httptest.NewServer(mux)
		tb.Cleanup(func() { srv.Close(); pool.Close() })
		tb.Logf("baseline: in-process (%s=1)", baselineInprocEnv)
		return &server{URL: srv.URL}
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	s := startServer(tb, exe, nil,
		baselineServeEnv+"=1",
		baselineDBEnv+"="+dbURL,
		"KILN_DB_MAX_CONNS="+strconv.Itoa(maxConns),
	)
	return s
}

// serveBaselineProcess is the main function of the re-executed test binary.
func serveBaselineProcess() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	maxConns, err := strconv.Atoi(os.Getenv("KILN_DB_MAX_CONNS"))
	if err != nil || maxConns < 1 {
		fmt.Fprintf(os.Stderr, "baseline: bad KILN_DB_MAX_CONNS %q\n", os.Getenv("KILN_DB_MAX_CONNS"))
		return 2
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pool, err := newBaselinePool(pctx, os.Getenv(baselineDBEnv), int32(maxConns))
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline: connect: %v\n", err)
		return 1
	}
	defer pool.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline: listen: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/graphql", &baselineHandler{pool: pool})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "baseline ready addr=%s\n", ln.Addr())
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "baseline: serve: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(os.Stderr, "baseline: shutdown: %v\n", err)
		return 1
	}
	return 0
}
