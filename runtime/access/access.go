// Package access is who is asking and what they may do: the viewer of a
// request (from a verified token, or the admin secret), the system context
// in which rules do not apply, the errors of refused operations, and the
// helpers that the rules Kiln generates for each model are made of.
package access

import (
	"context"
	"slices"

	"github.com/google/uuid"
)

// Operations a rule grants.
const (
	OpCreate = "create"
	OpRead   = "read"
	OpUpdate = "update"
	OpDelete = "delete"
)

// Viewer is the signed-in user of a request, from a verified access token.
// A nil *Viewer is an anonymous visitor.
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
	// AAL is the token's authenticator assurance level: 1 (aal1), or 2
	// (aal2) when the sign-in passed a second factor.
	AAL int
	// Session is the session family of the sign-in the token belongs to
	// (uuid.Nil for admins and tokens issued before it was carried).
	Session uuid.UUID
}

// HasAAL2 reports whether the viewer signed in with a second factor (an
// aal2 token). Admins pass: they bypass rules.
func (v *Viewer) HasAAL2() bool { return v != nil && (v.Admin || v.AAL >= 2) }

// HasRole reports whether the viewer holds role.
func (v *Viewer) HasRole(role string) bool { return v != nil && slices.Contains(v.Roles, role) }

// HasAnyRole reports whether the viewer holds one of roles.
func (v *Viewer) HasAnyRole(roles ...string) bool {
	if v == nil {
		return false
	}
	for _, r := range roles {
		if slices.Contains(v.Roles, r) {
			return true
		}
	}
	return false
}

// HasClaim reports whether the viewer's token carries the claim.
func (v *Viewer) HasClaim(name string) bool {
	if v == nil || v.Claims == nil {
		return false
	}
	_, ok := v.Claims[name]
	return ok
}

type viewerKey struct{}

// With returns ctx carrying v.
func With(ctx context.Context, v *Viewer) context.Context {
	return context.WithValue(ctx, viewerKey{}, v)
}

// From returns the viewer of ctx, or nil for an anonymous visitor.
func From(ctx context.Context) *Viewer {
	v, _ := ctx.Value(viewerKey{}).(*Viewer)
	return v
}

type systemKey struct{}

// System returns a context in which rules are not applied, for server
// code that must see everything (jobs, hooks, cleanup). Never derive it
// from a request's context by default.
func System(ctx context.Context) context.Context {
	return context.WithValue(ctx, systemKey{}, true)
}

// Bypass returns the viewer of ctx, and whether rules are skipped for it
// (an admin, or a System context).
func Bypass(ctx context.Context) (*Viewer, bool) {
	v := From(ctx)
	if sys, _ := ctx.Value(systemKey{}).(bool); sys {
		return v, true
	}
	return v, v != nil && v.Admin
}
