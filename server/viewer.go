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

// withViewer puts the request's viewer in the context: an admin for the
// admin secret, the token's user for a valid bearer token, nobody without
// credentials. Bad credentials are refused with 401 before any resolver runs.
func withViewer(next http.Handler, auth verifier, adminSecret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if s := r.Header.Get("X-Kiln-Admin-Secret"); s != "" {
			if adminSecret == "" || subtle.ConstantTimeCompare([]byte(s), []byte(adminSecret)) != 1 {
				unauthorized(w, "invalid admin secret")
				return
			}
			ctx = graph.WithViewer(ctx, &graph.Viewer{Admin: true, Roles: []string{"admin"}})
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
