package graphqlapi

import (
	"context"

	"github.com/google/uuid"

	"kiln/runtime/accounts"
	"kiln/server/internal/auth"
	"kiln/server/internal/request"
)

// Accounts adapts the auth service to the runtime's accounts.Service.
type Accounts struct{ Service *auth.Service }

var _ accounts.Service = Accounts{}

func payload(s *auth.Session, err error) (*accounts.Payload, error) {
	if err != nil {
		return nil, err
	}
	return &accounts.Payload{AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, ExpiresAt: s.ExpiresAt, User: viewer(s.User)}, nil
}

func viewer(u *auth.User) *accounts.User {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return &accounts.User{ID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Anonymous: u.Anonymous, Roles: roles, CreatedAt: u.CreatedAt}
}

// SignInWithIDToken signs in with a provider's ID token (counted against
// the client address's rate limit).
func (a Accounts) SignInWithIDToken(ctx context.Context, caller uuid.UUID, provider, idToken, nonce string) (*accounts.Payload, error) {
	return payload(a.Service.SignInWithIDToken(ctx, caller, provider, idToken, nonce, request.ClientIP(ctx)))
}

// LinkIdentity adds a provider's identity to a user.
func (a Accounts) LinkIdentity(ctx context.Context, id uuid.UUID, provider, idToken, nonce string) (*accounts.Payload, error) {
	return payload(a.Service.LinkIdentity(ctx, id, provider, idToken, nonce, request.ClientIP(ctx)))
}

// StartRedirectSignIn returns a provider's authorization URL (counted
// against the client address's rate limit).
func (a Accounts) StartRedirectSignIn(ctx context.Context, provider, redirectURI, codeChallenge string) (string, error) {
	return a.Service.StartRedirectSignIn(ctx, provider, redirectURI, codeChallenge, request.ClientIP(ctx))
}

// SignInWithRedirectCode exchanges a redirect sign-in's one-time code
// (counted against the client address's rate limit).
func (a Accounts) SignInWithRedirectCode(ctx context.Context, caller uuid.UUID, code, codeVerifier string) (*accounts.Payload, error) {
	return payload(a.Service.SignInWithRedirectCode(ctx, caller, code, codeVerifier, request.ClientIP(ctx)))
}

// RequestEmailCode mails a sign-in code (counted like signIn).
func (a Accounts) RequestEmailCode(ctx context.Context, email, redirectTo string) error {
	return a.Service.RequestEmailCode(ctx, email, redirectTo, request.ClientIP(ctx))
}

// SignInWithEmailCode signs in with a mailed code (counted like signIn).
func (a Accounts) SignInWithEmailCode(ctx context.Context, email, code string) (*accounts.Payload, error) {
	return payload(a.Service.SignInWithEmailCode(ctx, email, code, request.ClientIP(ctx)))
}

// RequestEmailVerification mails a verification code.
func (a Accounts) RequestEmailVerification(ctx context.Context, id uuid.UUID) error {
	return a.Service.RequestEmailVerification(ctx, id)
}

// VerifyEmail checks a verification code.
func (a Accounts) VerifyEmail(ctx context.Context, id uuid.UUID, code string) (*accounts.Payload, error) {
	return payload(a.Service.VerifyEmail(ctx, id, code))
}

// CompleteMFASignIn answers an MFA challenge (counted against the client
// address's and the user's rate limits).
func (a Accounts) CompleteMFASignIn(ctx context.Context, mfaToken, code string) (*accounts.Payload, error) {
	return payload(a.Service.CompleteMFA(ctx, mfaToken, code, request.ClientIP(ctx)))
}

// EnrollTOTP starts a TOTP factor.
func (a Accounts) EnrollTOTP(ctx context.Context, id uuid.UUID) (*accounts.TOTPEnrollment, error) {
	e, err := a.Service.EnrollTOTP(ctx, id)
	if err != nil {
		return nil, err
	}
	return &accounts.TOTPEnrollment{Secret: e.Secret, URI: e.URI}, nil
}

// ConfirmTOTP activates a pending TOTP factor.
func (a Accounts) ConfirmTOTP(ctx context.Context, id uuid.UUID, code string) (*accounts.TOTPActivation, error) {
	codes, s, err := a.Service.ConfirmTOTP(ctx, id, code)
	if err != nil {
		return nil, err
	}
	p, _ := payload(s, nil)
	return &accounts.TOTPActivation{RecoveryCodes: codes, Session: p}, nil
}

// DisableTOTP removes a TOTP factor.
func (a Accounts) DisableTOTP(ctx context.Context, id uuid.UUID) error {
	return a.Service.DisableTOTP(ctx, id)
}

// MFAEnabled tells whether a user has an active second factor.
func (a Accounts) MFAEnabled(ctx context.Context, id uuid.UUID) (bool, error) {
	return a.Service.MFAEnabled(ctx, id)
}

// UnlinkIdentity removes a user's identities at a provider.
func (a Accounts) UnlinkIdentity(ctx context.Context, id uuid.UUID, provider string) error {
	return a.Service.UnlinkIdentity(ctx, id, provider)
}

// Identities lists a user's identities.
func (a Accounts) Identities(ctx context.Context, id uuid.UUID) ([]*accounts.Identity, error) {
	list, err := a.Service.Identities(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]*accounts.Identity, len(list))
	for i, x := range list {
		out[i] = &accounts.Identity{Provider: x.Provider, Email: x.Email, EmailVerified: x.EmailVerified, CreatedAt: x.CreatedAt}
	}
	return out, nil
}

// SignUp creates an account (or signs in; see auth.Service.SignUp).
func (a Accounts) SignUp(ctx context.Context, email, password string) (*accounts.Payload, error) {
	return payload(a.Service.SignUp(ctx, email, password, request.ClientIP(ctx)))
}

// SignIn signs in.
func (a Accounts) SignIn(ctx context.Context, email, password string) (*accounts.Payload, error) {
	return payload(a.Service.SignIn(ctx, email, password, request.ClientIP(ctx)))
}

// SignInAnonymously creates an anonymous account.
func (a Accounts) SignInAnonymously(ctx context.Context) (*accounts.Payload, error) {
	return payload(a.Service.SignInAnonymously(ctx, request.ClientIP(ctx)))
}

// RefreshSession rotates a refresh token.
func (a Accounts) RefreshSession(ctx context.Context, token string) (*accounts.Payload, error) {
	return payload(a.Service.Refresh(ctx, token))
}

// SignOut ends a session.
func (a Accounts) SignOut(ctx context.Context, token string) error {
	return a.Service.SignOut(ctx, token)
}

// SignOutEverywhere ends every session of a user.
func (a Accounts) SignOutEverywhere(ctx context.Context, id uuid.UUID) error {
	return a.Service.SignOutEverywhere(ctx, id)
}

// ChangePassword changes a password.
func (a Accounts) ChangePassword(ctx context.Context, id uuid.UUID, current, next string) (*accounts.Payload, error) {
	return payload(a.Service.ChangePassword(ctx, id, current, next))
}

// LinkAccount adds credentials to an anonymous account (counted against
// the client address's rate limit like SignUp).
func (a Accounts) LinkAccount(ctx context.Context, id uuid.UUID, email, password string) (*accounts.Payload, error) {
	return payload(a.Service.LinkAccount(ctx, id, email, password, request.ClientIP(ctx)))
}

// DeleteAccount deletes an account.
func (a Accounts) DeleteAccount(ctx context.Context, id uuid.UUID, password string) error {
	return a.Service.DeleteAccount(ctx, id, password)
}

// RequestPasswordReset mails a reset link.
func (a Accounts) RequestPasswordReset(ctx context.Context, email string) error {
	return a.Service.RequestPasswordReset(ctx, email, request.ClientIP(ctx))
}

// ResetPassword uses a reset token.
func (a Accounts) ResetPassword(ctx context.Context, token, password string) error {
	return a.Service.ResetPassword(ctx, token, password)
}

// User returns a user.
func (a Accounts) User(ctx context.Context, id uuid.UUID) (*accounts.User, error) {
	u, err := a.Service.User(ctx, id)
	if err != nil {
		return nil, err
	}
	return viewer(u), nil
}

// AssignRole gives a role.
func (a Accounts) AssignRole(ctx context.Context, id uuid.UUID, role string) error {
	return a.Service.AssignRole(ctx, id, role)
}

// SetClaims replaces custom claims.
func (a Accounts) SetClaims(ctx context.Context, id uuid.UUID, claims map[string]any) error {
	return a.Service.SetClaims(ctx, id, claims)
}

// RevokeRole takes a role.
func (a Accounts) RevokeRole(ctx context.Context, id uuid.UUID, role string) error {
	return a.Service.RevokeRole(ctx, id, role)
}

func device(d *auth.Device) *accounts.Device {
	return &accounts.Device{ID: d.ID, Platform: accounts.Platform(d.Platform), Token: d.Token, AppID: d.AppID, Locale: d.Locale, Topics: d.Topics, CreatedAt: d.CreatedAt}
}

// RegisterDevice registers a user's device for push notifications.
func (a Accounts) RegisterDevice(ctx context.Context, id, session uuid.UUID, in accounts.DeviceInput) (*accounts.Device, error) {
	locale := ""
	if in.Locale != nil {
		locale = *in.Locale
	}
	d, err := a.Service.RegisterDevice(ctx, id, session, string(in.Platform), in.Token, in.AppID, locale)
	if err != nil {
		return nil, err
	}
	return device(d), nil
}

// UnregisterDevice removes a user's device.
func (a Accounts) UnregisterDevice(ctx context.Context, id uuid.UUID, token string) (bool, error) {
	return a.Service.UnregisterDevice(ctx, id, token)
}

// Devices lists a user's devices.
func (a Accounts) Devices(ctx context.Context, id uuid.UUID) ([]*accounts.Device, error) {
	list, err := a.Service.Devices(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]*accounts.Device, len(list))
	for i, d := range list {
		out[i] = device(d)
	}
	return out, nil
}

// SubscribeToTopic subscribes a user's device to a topic.
func (a Accounts) SubscribeToTopic(ctx context.Context, id uuid.UUID, token, topic string) (bool, error) {
	return a.Service.SetTopic(ctx, id, token, topic, true)
}

// UnsubscribeFromTopic unsubscribes a user's device from a topic.
func (a Accounts) UnsubscribeFromTopic(ctx context.Context, id uuid.UUID, token, topic string) (bool, error) {
	return a.Service.SetTopic(ctx, id, token, topic, false)
}
