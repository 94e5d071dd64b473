// Package idempotency makes retried mutations safe: a mutation sent over
// plain HTTP POST (JSON or multipart) with an Idempotency-Key header runs
// once per key and client; retries, also concurrent ones, get the first
// response (with Idempotent-Replayed: true); the same key with a different
// body is refused. Keys are kept for 24 hours.
//
// What is kept, and what is not:
//   - Only mutations. Queries, subscriptions, GET, WebSocket and
//     Server-Sent Events requests pass through untouched: the Middleware
//     reads and hashes the body, and its Extension decides once gqlgen has
//     parsed and validated the operation, just before a mutation runs.
//   - Never a retryable outcome: HTTP 429 or 5xx, or a GraphQL error with
//     code RATE_LIMITED, UNAVAILABLE, TIMEOUT, INTERNAL_SERVER_ERROR (or
//     PERSISTED_QUERY_NOT_FOUND) releases the key, so a retry runs again.
//     (A mutation with an error is rolled back as a whole.)
//   - Never more than MaxStored bytes of response: for a larger one a
//     marker is kept, and a retry gets 409 IDEMPOTENCY_RESPONSE_TOO_LARGE
//     (the mutation ran once; it does not run again).
//   - No secret readable from the table: the key column holds the SHA-256
//     of the key, never the key, and the response is encrypted (AES-256-GCM)
//     under a key derived (HKDF-SHA256) from the idempotency key and the
//     scope. Tokens in a stored signIn or refreshSession answer can only be
//     read by a client that sends the same key in the same scope, not from
//     the database alone (keys must therefore be random, such as UUIDs).
//   - Scopes: the signed-in user, "admin", and for requests without a token
//     "anon:" and the client address, so that a client replaying another
//     client's key runs its own request instead of receiving the other's
//     answer.
package idempotency

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"kiln/runtime/access"
	"kiln/runtime/store"
	"kiln/runtime/store/idempotencykey"
	"kiln/server/internal/request"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// Error codes (extensions.code) of the answers to retries.
const (
	// CodeReused: the key was used for a different request (HTTP 422).
	CodeReused = "IDEMPOTENCY_KEY_REUSED"
	// CodeTooLarge: the mutation ran, but its response was too large to
	// keep; it is not run again (HTTP 409).
	CodeTooLarge = "IDEMPOTENCY_RESPONSE_TOO_LARGE"
	// CodeInProgress: the first request with the key is still running (HTTP 409).
	CodeInProgress = "IN_PROGRESS"
)

// DefaultMaxStored is the default of Middleware.MaxStored.
const DefaultMaxStored = 64 << 10

// retryableCodes are the GraphQL error codes after which a retry may
// succeed: such responses are never kept.
var retryableCodes = map[string]bool{
	"RATE_LIMITED": true, "UNAVAILABLE": true, "TIMEOUT": true, "INTERNAL_SERVER_ERROR": true,
	"PERSISTED_QUERY_NOT_FOUND": true,
}

// Middleware keeps the responses of mutations sent with an Idempotency-Key.
// Install Wrap around the GraphQL handler and Extension in it (after every
// other check).
type Middleware struct {
	Client *store.Client
	TTL    time.Duration // default 24h
	Wait   time.Duration // how long a retry waits for the first request; default 30s
	// MaxBody bounds JSON bodies (default 1 MiB), MaxMultipart multipart
	// ones (default MaxBody); a larger body gets 413.
	MaxBody, MaxMultipart int64
	// MaxStored bounds the responses kept (default DefaultMaxStored).
	MaxStored int
	Log       *slog.Logger
}

// pending is the state of one request with a key, shared by Wrap and the
// Extension through the request context.
type pending struct {
	m                *Middleware
	rawKey, scope    string
	keyHash, reqHash string
	row              uuid.UUID
	reserved         bool // a mutation: the row is ours
	// answer, when set by the Extension, replaces the handler's response
	// (a replay, or a refusal).
	answer func(w http.ResponseWriter)
}

type pendingKey struct{}

// Wrap returns the HTTP handler.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(Header)
		limit, ok := m.bodyLimit(r)
		if key == "" || !ok {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 255 {
			fail(w, http.StatusBadRequest, "BAD_USER_INPUT", "the Idempotency-Key header is longer than 255 characters")
			return
		}
		body, sum, err := spool(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				fail(w, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", fmt.Sprintf("the request body is larger than %d bytes", limit))
				return
			}
			m.log().InfoContext(r.Context(), "idempotency: the request body could not be read", "err", err)
			fail(w, http.StatusBadRequest, "BAD_REQUEST", "the request body could not be read")
			return
		}
		defer body.Close()
		if sum, err = requestHash(r, body, sum); err != nil {
			fail(w, http.StatusBadRequest, "BAD_REQUEST", "the request body could not be read")
			return
		}
		r.Body = body
		keySum := sha256.Sum256([]byte(key))
		p := &pending{m: m, rawKey: key, scope: m.scope(r), keyHash: hex.EncodeToString(keySum[:]), reqHash: hex.EncodeToString(sum)}
		ctx := context.WithValue(r.Context(), pendingKey{}, p)
		rec := &recorder{ResponseWriter: w, p: p, status: http.StatusOK, limit: m.maxStored()}
		finished := false
		defer func() {
			if p.reserved && !finished {
				// The handler panicked: let a retry run.
				_ = m.Client.IdempotencyKey.DeleteOneID(p.row).Exec(context.WithoutCancel(ctx))
			}
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
		finished = true
		if p.answer != nil {
			p.answer(w)
			return
		}
		if p.reserved {
			m.finish(context.WithoutCancel(ctx), p, rec)
		}
	})
}

// bodyLimit returns the body limit of a request that may carry a mutation
// to keep: a plain HTTP POST of JSON or multipart (not Server-Sent Events).
func (m *Middleware) bodyLimit(r *http.Request) (int64, bool) {
	if r.Method != http.MethodPost || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return 0, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return 0, false
	}
	limit := m.MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	switch mt {
	case "application/json":
		return limit, true
	case "multipart/form-data":
		if m.MaxMultipart > 0 {
			limit = m.MaxMultipart
		}
		return limit, true
	}
	return 0, false
}

// scope is who sent the request: the user, "admin", or the client address
// for requests without a token.
func (m *Middleware) scope(r *http.Request) string {
	if v := access.From(r.Context()); v != nil {
		if v.Admin {
			return "admin"
		}
		return v.ID.String()
	}
	return "anon:" + request.ClientIP(r.Context())
}

// finish keeps the response of a mutation that ran, or releases the key
// when the outcome is worth a retry.
func (m *Middleware) finish(ctx context.Context, p *pending, rec *recorder) {
	if retryable(rec.status, rec.body.Bytes()) {
		if err := m.Client.IdempotencyKey.DeleteOneID(p.row).Exec(ctx); err != nil {
			m.log().ErrorContext(ctx, "idempotency: release key", "err", err)
		}
		return
	}
	var stored []byte // nil: too large to keep (the marker)
	if !rec.overflow {
		plain := append([]byte(rec.Header().Get("Content-Type")+"\n"), rec.body.Bytes()...)
		var err error
		if stored, err = seal(p, plain); err != nil {
			m.log().ErrorContext(ctx, "idempotency: encrypt response", "err", err)
			stored = nil
		}
	}
	if err := m.Client.IdempotencyKey.UpdateOneID(p.row).SetDone(true).SetStatus(rec.status).SetResponse(stored).Exec(ctx); err != nil {
		m.log().ErrorContext(ctx, "idempotency: store response", "err", err)
	}
}

// retryable reports whether a response is worth a retry: HTTP 429 or 5xx,
// or a GraphQL error with a code of retryableCodes. gqlgen writes "errors"
// first, so the kept prefix of a large response usually has them.
func retryable(status int, body []byte) bool {
	if status == http.StatusTooManyRequests || status >= 500 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		name, err := dec.Token()
		if err != nil {
			return false
		}
		if name != "errors" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return false
			}
			continue
		}
		var errs []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		}
		if dec.Decode(&errs) != nil {
			return false
		}
		for _, e := range errs {
			if retryableCodes[e.Extensions.Code] {
				return true
			}
		}
		return false
	}
	return false
}

// Extension returns the gqlgen extension that reserves the key just before
// a mutation runs, or answers a retry instead of running it again.
func (m *Middleware) Extension() graphql.HandlerExtension { return extension{} }

type extension struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = extension{}

func (extension) ExtensionName() string { return "KilnIdempotency" }

func (extension) Validate(graphql.ExecutableSchema) error { return nil }

func (extension) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	p, _ := ctx.Value(pendingKey{}).(*pending)
	if p == nil || p.reserved || p.answer != nil || oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return nil
	}
	return p.begin(ctx)
}

// begin reserves the key for this request, or sets p.answer (a replay or a
// refusal) and returns an error so that the mutation does not run.
func (p *pending) begin(ctx context.Context) *gqlerror.Error {
	m := p.m
	if mrand.IntN(100) == 0 {
		m.cleanup(ctx)
	}
	for range 3 {
		row, err := m.Client.IdempotencyKey.Create().SetScope(p.scope).SetKey(p.keyHash).SetRequestHash(p.reqHash).Save(ctx)
		if err == nil {
			p.row, p.reserved = row.ID, true
			return nil
		}
		if !store.IsConstraintError(err) {
			m.log().ErrorContext(ctx, "idempotency: record key", "err", err)
			return p.refuse(http.StatusServiceUnavailable, "UNAVAILABLE", "the request could not be recorded; retry")
		}
		if e := p.await(ctx); e != nil {
			return e
		}
		// The first request failed in a way worth a retry and released
		// the key: this one runs.
	}
	return p.refuse(http.StatusConflict, "RETRY", "requests with this Idempotency-Key keep failing; retry")
}

// await waits for the request that holds the key. It sets p.answer and
// returns an error, or returns nil when that request released the key.
func (p *pending) await(ctx context.Context) *gqlerror.Error {
	m := p.m
	wait := m.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay := 10 * time.Millisecond
	for {
		row, err := m.Client.IdempotencyKey.Query().Where(idempotencykey.Scope(p.scope), idempotencykey.Key(p.keyHash)).Only(ctx)
		switch {
		case store.IsNotFound(err):
			return nil
		case err != nil:
			if errors.Is(err, context.DeadlineExceeded) {
				return p.refuse(http.StatusConflict, CodeInProgress, "a request with this Idempotency-Key is still running")
			}
			return p.refuse(http.StatusServiceUnavailable, "UNAVAILABLE", "the request could not be checked; retry")
		case row.RequestHash != p.reqHash:
			return p.refuse(http.StatusUnprocessableEntity, CodeReused, "this Idempotency-Key was used for a different request")
		case row.Done && len(row.Response) == 0:
			return p.refuse(http.StatusConflict, CodeTooLarge,
				"the mutation with this Idempotency-Key already ran, but its response was too large to keep; query the result instead of retrying")
		case row.Done:
			plain, err := open(p, row.Response)
			if err != nil {
				m.log().ErrorContext(ctx, "idempotency: decrypt response", "err", err)
				return p.refuse(http.StatusConflict, CodeTooLarge, "the mutation with this Idempotency-Key already ran, but its response cannot be replayed")
			}
			ct, body, _ := bytes.Cut(plain, []byte("\n"))
			status := row.Status
			p.answer = func(w http.ResponseWriter) {
				if len(ct) == 0 {
					ct = []byte("application/json")
				}
				w.Header().Set("Content-Type", string(ct))
				w.Header().Set("Idempotent-Replayed", "true")
				w.WriteHeader(status)
				_, _ = w.Write(body)
			}
			return &gqlerror.Error{Message: "replayed"}
		}
		select {
		case <-ctx.Done():
			return p.refuse(http.StatusConflict, CodeInProgress, "a request with this Idempotency-Key is still running")
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// refuse sets p.answer to an error and returns it for gqlgen.
func (p *pending) refuse(status int, code, msg string) *gqlerror.Error {
	p.answer = func(w http.ResponseWriter) { fail(w, status, code, msg) }
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// cipherFor is the AEAD for a key and scope: AES-256-GCM under
// HKDF-SHA256(idempotency key, info = scope).
func cipherFor(p *pending) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, []byte(p.rawKey), nil, "kiln idempotency response v1\x00"+p.scope, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts a response: nonce || ciphertext, bound to the row's scope
// and key hash.
func seal(p *pending, plain []byte) ([]byte, error) {
	aead, err := cipherFor(p)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(p.scope+"\x00"+p.keyHash)), nil
}

// open decrypts what seal returned.
func open(p *pending, sealed []byte) ([]byte, error) {
	aead, err := cipherFor(p)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("idempotency: stored response too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], []byte(p.scope+"\x00"+p.keyHash))
}

// cleanup removes expired keys.
func (m *Middleware) cleanup(ctx context.Context) {
	ttl := m.TTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	_, _ = m.Client.IdempotencyKey.Delete().Where(idempotencykey.CreatedAtLT(time.Now().Add(-ttl))).Exec(ctx)
}

func (m *Middleware) maxStored() int {
	if m.MaxStored > 0 {
		return m.MaxStored
	}
	return DefaultMaxStored
}

func (m *Middleware) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"message": msg, "extensions": map[string]any{"code": code}}}})
}

// requestHash is the hash that identifies a request's body: for a
// multipart body, the hash of its parts (names, file names, types and
// contents) so that a retry encoded with another boundary is the same
// request; otherwise sum, the hash of the bytes. body is rewound.
func requestHash(r *http.Request, body io.ReadSeeker, sum []byte) ([]byte, error) {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" || params["boundary"] == "" {
		return sum, nil
	}
	h := sha256.New()
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			// Not multipart after all: gqlgen will refuse it.
			h = nil
			break
		}
		for _, f := range []string{part.FormName(), part.FileName(), part.Header.Get("Content-Type")} {
			fmt.Fprintf(h, "%d:%s", len(f), f)
		}
		n, err := io.Copy(h, part)
		if err != nil {
			h = nil
			break
		}
		fmt.Fprintf(h, "|%d|", n)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if h == nil {
		return sum, nil
	}
	return h.Sum(nil), nil
}

// spoolInMemory is how much of a body spool keeps in memory; the rest of a
// larger body (a multipart upload) goes to a temporary file.
const spoolInMemory = 1 << 20

// spool reads r to the end and returns a reader over what it read (close
// it: it removes the temporary file) and its SHA-256.
func spool(r io.Reader) (io.ReadSeekCloser, []byte, error) {
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, io.TeeReader(r, h), spoolInMemory+1)
	if err == io.EOF || (err == nil && n <= spoolInMemory) {
		return memBody{bytes.NewReader(buf.Bytes())}, h.Sum(nil), nil
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp("", "kiln-idempotency-*")
	if err != nil {
		return nil, nil, err
	}
	tf := &tempFile{f}
	if _, err := f.Write(buf.Bytes()); err != nil {
		tf.Close()
		return nil, nil, err
	}
	if _, err := io.Copy(f, io.TeeReader(r, h)); err != nil {
		tf.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		tf.Close()
		return nil, nil, err
	}
	return tf, h.Sum(nil), nil
}

// memBody is a body kept in memory.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// tempFile is removed when closed.
type tempFile struct{ *os.File }

func (t *tempFile) Close() error {
	err := t.File.Close()
	_ = os.Remove(t.Name())
	return err
}

// recorder passes a response through and keeps up to limit bytes of it
// for a reserved mutation; while the Extension has set an answer it
// discards what the handler writes.
type recorder struct {
	http.ResponseWriter
	p        *pending
	status   int
	body     bytes.Buffer
	limit    int
	overflow bool
}

func (r *recorder) WriteHeader(code int) {
	if r.p.answer != nil {
		return
	}
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.p.answer != nil {
		return len(b), nil
	}
	if r.p.reserved && !r.overflow {
		if room := r.limit - r.body.Len(); len(b) <= room {
			r.body.Write(b)
		} else {
			r.body.Write(b[:room])
			r.overflow = true
		}
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok && r.p.answer == nil {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
