// Package request is what the server knows of one request, put into its
// context once by a middleware at the start (Middleware) and read
// everywhere else: its id, the client's address, and the signed-in user
// once the token was verified. It also parses bearer tokens, the same way
// for HTTP headers and WebSocket connection payloads.
package request

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
)

// Info is what the server knows of a request.
type Info struct {
	// ID identifies the request in logs and in masked errors (X-Request-Id).
	ID string
	// ClientIP is the client's address: the connection's, or the first of
	// X-Forwarded-For behind a trusted proxy.
	ClientIP string
	// UserID is the signed-in user ("admin" for the admin secret), set when
	// the token was verified; "" for visitors.
	UserID string
}

type key struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// From returns the Info of ctx (a zero Info outside a request).
func From(ctx context.Context) *Info {
	if i, ok := ctx.Value(key{}).(*Info); ok {
		return i
	}
	return &Info{}
}

// ID returns the request id of ctx.
func ID(ctx context.Context) string { return From(ctx).ID }

// ClientIP returns the client address of ctx.
func ClientIP(ctx context.Context) string { return From(ctx).ClientIP }

// Middleware gives every request its Info: an id (X-Request-Id when the
// client or proxy sent a sane one, echoed in the response) and the client
// address (X-Forwarded-For is trusted only with trustProxy).
func Middleware(next http.Handler, trustProxy bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &Info{ID: r.Header.Get("X-Request-Id"), ClientIP: clientIP(r, trustProxy)}
		if info.ID == "" || len(info.ID) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			info.ID = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", info.ID)
		next.ServeHTTP(w, r.WithContext(With(r.Context(), info)))
	})
}

func clientIP(r *http.Request, trustProxy bool) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if trustProxy {
		if f := r.Header.Get("X-Forwarded-For"); f != "" {
			first, _, _ := strings.Cut(f, ",")
			ip = strings.TrimSpace(first)
		}
	}
	return ip
}

// BearerToken returns the token of an Authorization value "Bearer <token>"
// (the scheme is case-insensitive, surrounding spaces ignored); ok is false
// for any other value, an empty one included.
func BearerToken(authorization string) (token string, ok bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(authorization), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
