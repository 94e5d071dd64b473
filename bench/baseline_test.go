package bench

// The hand-written baseline for BenchmarkRead20PostsWithAuthors: a net/http
// handler that does what a hand-written secure endpoint for the query
// would: it verifies the request's bearer token (Kiln's EdDSA access token,
// with the public keys Kiln serves at /.well-known/jwks.json, fetched once
// at start, and github.com/golang-jwt/jwt/v5: algorithm, signature, kid,
// iss, iat and exp, with Kiln's 30 s of leeway), takes its sub as the user
// id, and runs the two statements ent runs for the GraphQL query, the
// post rule included, through a pgxpool of the same size as Kiln's, and
// encodes the same JSON document with encoding/json. It does not check
// that the token was not revoked (Kiln reads the user's token version,
// cached for 5 s: at most one statement per user every 5 s).
//
// By default it runs in its own process (this test binary re-executed with
// KILN_BENCH_BASELINE_SERVE=1), so that both servers are measured the same
// way: a separate process, over loopback, next to the client. With
// KILN_BENCH_BASELINE_INPROC=1 it is served in the benchmark process
// instead (httptest), which lets -cpuprofile see it.

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
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

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	baselineServeEnv  = "KILN_BENCH_BASELINE_SERVE"
	baselineDBEnv     = "KILN_BENCH_BASELINE_DATABASE_URL"
	baselineInprocEnv = "KILN_BENCH_BASELINE_INPROC"
	baselineJWKSEnv   = "KILN_BENCH_BASELINE_JWKS_URL"
)

// The statements ent issues for
//
//	posts(first: 20, orderBy: [{field: CREATED_AT, direction: DESC}]) {
//	  edges { node { id body score createdAt author { id handle displayName } } } }
//
// sent by a signed-in user who is neither admin nor moderator, as captured
// with OTEL_TRACES_EXPORTER=console (the db.statement of Kiln's SQL spans):
// the Post rule ({allow: owner} or {allow: public, operations: [read],
// where: {visibility: {eq: PUBLIC}}}) becomes the WHERE clause, with the
// user id ($1, owner_id is a varchar) and 'PUBLIC' ($2) as parameters;
// entgql's field collection selects only the requested columns plus the
// author foreign key, pagination fetches first+1 rows and breaks ties on
// the id (ascending), and the authors are loaded in one IN query with one
// parameter per distinct id, with no rule (any signed-in user reads every
// Profile).
const (
	baselinePostsSQL   = `SELECT "posts"."id", "posts"."body", "posts"."score", "posts"."created_at", "posts"."author_id" FROM "posts" WHERE "posts"."owner_id" = $1 OR "posts"."visibility" = $2 ORDER BY "posts"."created_at" DESC, "posts"."id" LIMIT 21`
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

// baselineHandler serves the query's answer for any POST on /graphql with
// a valid access token.
type baselineHandler struct {
	pool   *pgxpool.Pool
	tokens *tokenVerifier
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
	userID, err := h.tokens.userID(r.Header.Get("Authorization"))
	if err != nil {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "invalid access token: "+err.Error(), http.StatusUnauthorized)
		return
	}
	resp, err := h.query(r.Context(), userID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		log.Printf("baseline: encode: %v", err)
	}
}

// query answers for the user userID (the token's sub).
func (h *baselineHandler) query(ctx context.Context, userID string) (*bResponse, error) {
	rows, err := h.pool.Query(ctx, baselinePostsSQL, userID, "PUBLIC")
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

// kilnIssuer is the iss of Kiln's access tokens.
const kilnIssuer = "kiln"

// tokenVerifier verifies Kiln's access tokens with its public keys. It is
// safe for concurrent use.
type tokenVerifier struct {
	keys   map[string]ed25519.PublicKey // by kid
	parser *jwt.Parser
}

func newTokenVerifier(keys map[string]ed25519.PublicKey) *tokenVerifier {
	return &tokenVerifier{keys: keys, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(kilnIssuer),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
	)}
}

// userID verifies the token of an Authorization header ("Bearer <token>")
// and returns its sub, the user id.
func (v *tokenVerifier) userID(authorization string) (string, error) {
	const prefix = "Bearer "
	if len(authorization) <= len(prefix) || !strings.EqualFold(authorization[:len(prefix)], prefix) {
		return "", errors.New("no bearer token")
	}
	var claims jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(authorization[len(prefix):], &claims, v.key); err != nil {
		return "", err
	}
	if _, err := uuid.Parse(claims.Subject); err != nil {
		return "", fmt.Errorf("sub %q is not a user id", claims.Subject)
	}
	return claims.Subject, nil
}

func (v *tokenVerifier) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if k, ok := v.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// fetchJWKS reads the Ed25519 public keys of a JWKS document (Kiln's
// /.well-known/jwks.json), by kid.
func fetchJWKS(ctx context.Context, url string) (map[string]ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, res.StatusCode)
	}
	var set struct {
		Keys []struct{ Kty, Crv, Kid, X string }
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("GET %s: key %q: bad x", url, k.Kid)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no Ed25519 key", url)
	}
	return keys, nil
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

// startBaseline serves the baseline on the database at dbURL, verifying
// tokens with the keys at jwksURL (read once, at start); it is stopped in
// tb.Cleanup.
func startBaseline(tb testing.TB, dbURL string, maxConns int, jwksURL string) *server {
	tb.Helper()
	if os.Getenv(baselineInprocEnv) == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := fetchJWKS(ctx, jwksURL)
		if err != nil {
			tb.Fatalf("baseline keys: %v", err)
		}
		pool, err := newBaselinePool(ctx, dbURL, int32(maxConns))
		if err != nil {
			tb.Fatalf("baseline pool: %v", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/graphql", &baselineHandler{pool: pool, tokens: newTokenVerifier(keys)})
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
		baselineJWKSEnv+"="+jwksURL,
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
	defer cancel()
	keys, err := fetchJWKS(pctx, os.Getenv(baselineJWKSEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline: keys: %v\n", err)
		return 1
	}
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
	mux.Handle("/graphql", &baselineHandler{pool: pool, tokens: newTokenVerifier(keys)})
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
