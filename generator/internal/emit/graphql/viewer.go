package graphql

// viewerSource is graph/viewer.go: who is making a request. The server puts
// the viewer in the context; resolvers and authorization rules read it.
const viewerSource = `package graph

import (
	"context"
	"slices"

	"github.com/google/uuid"
)

// Viewer is the signed-in user of a request, from a verified access token.
type Viewer struct {
	ID        uuid.UUID
	Anonymous bool
	Roles     []string
	// Admin is set for requests carrying the admin secret; admins bypass rules.
	Admin bool
	// Claims are custom claims of the token (for rules such as tenant checks).
	Claims map[string]any
	// TokenVersion is the account's token version when the token was issued.
	TokenVersion int
}

// HasRole reports whether the viewer holds role.
func (v *Viewer) HasRole(role string) bool { return v != nil && slices.Contains(v.Roles, role) }

type viewerKey struct{}

// WithViewer returns ctx carrying v.
func WithViewer(ctx context.Context, v *Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// ViewerFrom returns the viewer of ctx, or nil for an anonymous visitor.
func ViewerFrom(ctx context.Context) *Viewer {
	v, _ := ctx.Value(viewerKey{}).(*Viewer)
	return v
}
`
