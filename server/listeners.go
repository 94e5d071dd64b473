package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"kiln/runtime/access"
	"kiln/server/internal/config"
)

// adminOnly serves next to admin requests only (/metrics in production
// without KILN_METRICS_ADDR).
func adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := access.From(r.Context()); v == nil || !v.Admin {
			unauthorized(w, "in production /metrics needs the admin secret (X-Kiln-Admin-Secret); or set KILN_METRICS_ADDR to serve it on a private address")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveMetrics serves /metrics on its own address (KILN_METRICS_ADDR) and
// returns a function that stops it.
func serveMetrics(addr string, metrics http.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on KILN_METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	log.Info("serving /metrics", "metrics_addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// withDeadlines adjusts the server's read and write deadlines
// (KILN_READ_TIMEOUT, KILN_WRITE_TIMEOUT) for long-lived requests: a
// WebSocket upgrade on /graphql clears both (graphql-transport-ws has its
// own init timeout and keep-alives); a Server-Sent Events stream clears the
// write deadline at once and the read deadline once its body is read; an
// upload (PUT /files/..., multipart POST /graphql) gets t.Upload for both.
func withDeadlines(next http.Handler, t config.Timeouts, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		warn := func(err error) {
			if err != nil {
				log.WarnContext(r.Context(), "cannot set connection deadlines", "err", err)
			}
		}
		graphqlPath := r.URL.Path == "/graphql"
		switch {
		case graphqlPath && r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
			warn(errors.Join(rc.SetReadDeadline(time.Time{}), rc.SetWriteDeadline(time.Time{})))
		case graphqlPath && r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "text/event-stream"):
			warn(rc.SetWriteDeadline(time.Time{}))
			r.Body = &clearOnEOF{ReadCloser: r.Body, rc: rc}
		case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/files/"),
			graphqlPath && r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data"):
			d := time.Now().Add(t.Upload)
			warn(errors.Join(rc.SetReadDeadline(d), rc.SetWriteDeadline(d)))
		}
		next.ServeHTTP(w, r)
	})
}

// clearOnEOF clears the connection's read deadline once the request body
// has been read: the stream may then stay open as long as it lasts (an
// expired read deadline would end it).
type clearOnEOF struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *clearOnEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
