// Package idempotency makes retried requests safe: a POST with an
// Idempotency-Key header runs once per key and viewer; retries, also
// concurrent ones, get the stored response; the same key with a different
// body is refused. Keys are kept for 24 hours.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"kiln/ent"
	"kiln/ent/idempotencykey"
	"kiln/graph"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// Middleware wraps next. Wait bounds how long a retry waits for the first
// request with its key to finish.
type Middleware struct {
	Client *ent.Client
	TTL    time.Duration // default 24h
	Wait   time.Duration // default 30s
	// MaxBody bounds the bodies read to hash them (default 1 MiB).
	MaxBody int64
	Log     *slog.Logger
}

// Wrap returns the handler.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(Header)
		if key == "" || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 255 {
			fail(w, http.StatusBadRequest, "BAD_USER_INPUT", "the Idempotency-Key header is longer than 255 characters")
			return
		}
		limit := m.MaxBody
		if limit <= 0 {
			limit = 1 << 20
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			fail(w, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "the request body could not be read")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		scope := "anonymous"
		if v := graph.ViewerFrom(r.Context()); v != nil {
			scope = v.ID.String()
			if v.Admin {
				scope = "admin"
			}
		}
		ctx := r.Context()
		m.cleanup(ctx)
		row, err := m.Client.IdempotencyKey.Create().SetScope(scope).SetKey(key).SetRequestHash(hash).Save(ctx)
		if ent.IsConstraintError(err) {
			m.replay(w, r, scope, key, hash)
			return
		}
		if err != nil {
			m.log().ErrorContext(ctx, "idempotency: record key", "err", err)
			fail(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the request could not be recorded; retry")
			return
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		sctx := context.WithoutCancel(ctx)
		if rec.status >= 500 {
			// Failed for a reason a retry may not meet: let the next try run.
			_ = m.Client.IdempotencyKey.DeleteOneID(row.ID).Exec(sctx)
			return
		}
		if err := m.Client.IdempotencyKey.UpdateOneID(row.ID).SetDone(true).SetStatus(rec.status).SetResponse(rec.body.Bytes()).Exec(sctx); err != nil {
			m.log().ErrorContext(ctx, "idempotency: store response", "err", err)
		}
	})
}

// replay answers a request whose key was seen before.
func (m *Middleware) replay(w http.ResponseWriter, r *http.Request, scope, key, hash string) {
	wait := m.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	delay := 10 * time.Millisecond
	for {
		row, err := m.Client.IdempotencyKey.Query().Where(idempotencykey.Scope(scope), idempotencykey.Key(key)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			// The first request failed and released the key: tell the client to retry.
			fail(w, http.StatusConflict, "RETRY", "the first request with this Idempotency-Key failed; retry")
			return
		case err != nil:
			if errors.Is(err, context.DeadlineExceeded) {
				fail(w, http.StatusConflict, "IN_PROGRESS", "a request with this Idempotency-Key is still running")
				return
			}
			fail(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the request could not be checked; retry")
			return
		case row.RequestHash != hash:
			fail(w, http.StatusUnprocessableEntity, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different request")
			return
		case row.Done:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(row.Status)
			_, _ = w.Write(row.Response)
			return
		}
		select {
		case <-ctx.Done():
			fail(w, http.StatusConflict, "IN_PROGRESS", "a request with this Idempotency-Key is still running")
			return
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// cleanup removes expired keys now and then.
func (m *Middleware) cleanup(ctx context.Context) {
	ttl := m.TTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if time.Now().UnixNano()%100 != 0 {
		return
	}
	_, _ = m.Client.IdempotencyKey.Delete().Where(idempotencykey.CreatedAtLT(time.Now().Add(-ttl))).Exec(ctx)
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
	fmt.Fprintf(w, `{"errors":[{"message":%q,"extensions":{"code":%q}}]}`, msg, code)
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
