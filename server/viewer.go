package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"kiln/graph"
)

// verifier checks an access token and returns its viewer.
type verifier interface {
	Verify(ctx context.Context, accessToken string) (*graph.Viewer, error)
}

// isAdminSecret reports, in constant time, whether given is the configured
// admin secret (never when none is configured). HTTP and WebSocket
// connections both check the secret here.
func isAdminSecret(given, adminSecret string) bool {
	return adminSecret != "" && subtle.ConstantTimeCompare([]byte(given), []byte(adminSecret)) == 1
}

// adminViewer is the viewer of a request carrying the admin secret.
func adminViewer() *graph.Viewer { return &graph.Viewer{Admin: true, Roles: []string{"admin"}} }

// withViewer puts the request's viewer in the context: an admin for the
// admin secret, the token's user for a valid bearer token, nobody without
// credentials. Bad credentials are refused with 401 before any resolver runs.
func withViewer(next http.Handler, auth verifier, adminSecret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if s := r.Header.Get("X-Kiln-Admin-Secret"); s != "" {
			if !isAdminSecret(s, adminSecret) {
				unauthorized(w, "invalid admin secret")
				return
			}
			ctx = graph.WithViewer(ctx, adminViewer())
		} else if h := r.Header.Get("Authorization"); h != "" {
			token, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || auth == nil {
				unauthorized(w, "the Authorization header must be: Bearer <access token>")
				return
			}
			v, err := auth.Verify(ctx, strings.TrimSpace(token))
			if err != nil {
				unauthorized(w, "invalid or expired access token")
				return
			}
			ctx = graph.WithViewer(ctx, v)
			if who, ok := ctx.Value(requestUserKey{}).(*requestUser); ok {
				who.id = v.ID.String()
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": msg, "extensions": map[string]any{"code": "UNAUTHENTICATED"},
	}}})
}
