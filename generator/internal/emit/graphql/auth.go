package graphql

// authSDL is graph/auth.graphql: accounts and sessions.
const authSDL = `"""
The signed-in user.
"""
type Viewer {
  id: ID!
  "Null for anonymous users."
  email: String
  anonymous: Boolean!
  roles: [String!]!
  createdAt: Time!
}

"""
A session: a short-lived access token (send it as Authorization: Bearer) and
a refresh token that gets a new pair from refreshSession.
"""
type AuthPayload {
  accessToken: String!
  refreshToken: String!
  "When the access token expires."
  expiresAt: Time!
  user: Viewer!
}

input CredentialsInput {
  email: String!
  password: String!
}

extend type Query {
  "The signed-in user; null without a valid access token."
  viewer: Viewer
}

extend type Mutation {
  "Creates an account, or signs in when the password opens the email's account; an email that has an account with another password gets a separate pending account. Responses never reveal which emails exist."
  signUp(input: CredentialsInput!): AuthPayload!
  signIn(input: CredentialsInput!): AuthPayload!
  "An account without email; linkAccount adds credentials later, keeping its id and data."
  signInAnonymously: AuthPayload!
  "Rotates the refresh token; replaying an already used token ends the whole session."
  refreshSession(refreshToken: String!): AuthPayload!
  signOut(refreshToken: String!): Boolean!
  "Ends every session of the signed-in user."
  signOutEverywhere: Boolean!
  changePassword(currentPassword: String!, newPassword: String!): AuthPayload!
  linkAccount(input: CredentialsInput!): AuthPayload!
  "Deletes the signed-in user's account (anonymous accounts need no password)."
  deleteAccount(password: String): Boolean!
  "Sends a reset link if the email has an account; always returns true."
  requestPasswordReset(email: String!): Boolean!
  resetPassword(token: String!, newPassword: String!): Boolean!
  "Admins only."
  assignRole(userID: ID!, role: String!): Boolean!
  "Admins only."
  revokeRole(userID: ID!, role: String!): Boolean!
  "Admins only: replaces a user's custom claims, read in rules as $viewer.claims.<name> (e.g. a tenant id)."
  setClaims(userID: ID!, claims: JSON!): Boolean!
}
`

// authResolversSource is graph/auth.resolvers.go: the auth fields call the
// Accounts service the server provides.
const authResolversSource = `package graph

import (
	"context"

	"github.com/google/uuid"

	"%[1]s/graph/model"
	"kiln/runtime/access"
)

// Accounts is the account and session service behind the auth fields.
type Accounts interface {
	SignUp(ctx context.Context, email, password string) (*model.AuthPayload, error)
	SignIn(ctx context.Context, email, password string) (*model.AuthPayload, error)
	SignInAnonymously(ctx context.Context) (*model.AuthPayload, error)
	RefreshSession(ctx context.Context, refreshToken string) (*model.AuthPayload, error)
	SignOut(ctx context.Context, refreshToken string) error
	SignOutEverywhere(ctx context.Context, userID uuid.UUID) error
	ChangePassword(ctx context.Context, userID uuid.UUID, current, next string) (*model.AuthPayload, error)
	LinkAccount(ctx context.Context, userID uuid.UUID, email, password string) (*model.AuthPayload, error)
	DeleteAccount(ctx context.Context, userID uuid.UUID, password string) error
	RequestPasswordReset(ctx context.Context, email string) error
	ResetPassword(ctx context.Context, token, newPassword string) error
	Viewer(ctx context.Context, userID uuid.UUID) (*model.Viewer, error)
	AssignRole(ctx context.Context, userID uuid.UUID, role string) error
	RevokeRole(ctx context.Context, userID uuid.UUID, role string) error
	SetClaims(ctx context.Context, userID uuid.UUID, claims map[string]any) error
}

// AuthFields are the mutation fields that manage sessions; they run outside
// the per-mutation transaction.
var AuthFields = []string{"signUp", "signIn", "signInAnonymously", "refreshSession", "signOut", "signOutEverywhere",
	"changePassword", "linkAccount", "deleteAccount", "requestPasswordReset", "resetPassword", "assignRole", "revokeRole", "setClaims"}

func signedIn(ctx context.Context) (*access.Viewer, error) {
	v := access.From(ctx)
	if v == nil || v.Admin {
		return nil, &access.UnauthenticatedError{Reason: "sign in first"}
	}
	return v, nil
}

func adminOnly(ctx context.Context) error {
	if v := access.From(ctx); v == nil || !v.Admin {
		return &access.ForbiddenError{Reason: "admins only"}
	}
	return nil
}

// Viewer returns the signed-in user.
func (r *queryResolver) Viewer(ctx context.Context) (*model.Viewer, error) {
	v := access.From(ctx)
	if v == nil || v.Admin {
		return nil, nil
	}
	return r.Accounts.Viewer(ctx, v.ID)
}

// SignUp creates an account.
func (r *mutationResolver) SignUp(ctx context.Context, input model.CredentialsInput) (*model.AuthPayload, error) {
	return r.Accounts.SignUp(ctx, input.Email, input.Password)
}

// SignIn signs in with email and password.
func (r *mutationResolver) SignIn(ctx context.Context, input model.CredentialsInput) (*model.AuthPayload, error) {
	return r.Accounts.SignIn(ctx, input.Email, input.Password)
}

// SignInAnonymously creates an anonymous account.
func (r *mutationResolver) SignInAnonymously(ctx context.Context) (*model.AuthPayload, error) {
	return r.Accounts.SignInAnonymously(ctx)
}

// RefreshSession rotates a refresh token.
func (r *mutationResolver) RefreshSession(ctx context.Context, refreshToken string) (*model.AuthPayload, error) {
	return r.Accounts.RefreshSession(ctx, refreshToken)
}

// SignOut ends the session of a refresh token.
func (r *mutationResolver) SignOut(ctx context.Context, refreshToken string) (bool, error) {
	return true, r.Accounts.SignOut(ctx, refreshToken)
}

// SignOutEverywhere ends every session of the viewer.
func (r *mutationResolver) SignOutEverywhere(ctx context.Context) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return true, r.Accounts.SignOutEverywhere(ctx, v.ID)
}

// ChangePassword changes the viewer's password and ends other sessions.
func (r *mutationResolver) ChangePassword(ctx context.Context, currentPassword string, newPassword string) (*model.AuthPayload, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return r.Accounts.ChangePassword(ctx, v.ID, currentPassword, newPassword)
}

// LinkAccount adds email and password to an anonymous account.
func (r *mutationResolver) LinkAccount(ctx context.Context, input model.CredentialsInput) (*model.AuthPayload, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return r.Accounts.LinkAccount(ctx, v.ID, input.Email, input.Password)
}

// DeleteAccount deletes the viewer's account.
func (r *mutationResolver) DeleteAccount(ctx context.Context, password *string) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	pw := ""
	if password != nil {
		pw = *password
	}
	return true, r.Accounts.DeleteAccount(ctx, v.ID, pw)
}

// RequestPasswordReset mails a reset link when the email has an account.
func (r *mutationResolver) RequestPasswordReset(ctx context.Context, email string) (bool, error) {
	return true, r.Accounts.RequestPasswordReset(ctx, email)
}

// ResetPassword sets a new password with a token from the reset mail.
func (r *mutationResolver) ResetPassword(ctx context.Context, token string, newPassword string) (bool, error) {
	return true, r.Accounts.ResetPassword(ctx, token, newPassword)
}

// AssignRole gives a user a role (admins only).
func (r *mutationResolver) AssignRole(ctx context.Context, userID uuid.UUID, role string) (bool, error) {
	if err := adminOnly(ctx); err != nil {
		return false, err
	}
	return true, r.Accounts.AssignRole(ctx, userID, role)
}

// SetClaims replaces a user's custom claims (admins only).
func (r *mutationResolver) SetClaims(ctx context.Context, userID uuid.UUID, claims map[string]any) (bool, error) {
	if err := adminOnly(ctx); err != nil {
		return false, err
	}
	return true, r.Accounts.SetClaims(ctx, userID, claims)
}

// RevokeRole takes a role from a user (admins only).
func (r *mutationResolver) RevokeRole(ctx context.Context, userID uuid.UUID, role string) (bool, error) {
	if err := adminOnly(ctx); err != nil {
		return false, err
	}
	return true, r.Accounts.RevokeRole(ctx, userID, role)
}
`
