// Package accounts is the contract of Kiln's built-in account API: the Go
// types of the GraphQL types in auth.graphql, the Service the server
// provides behind them, and API, which the generated resolvers call (who
// may do what: a signed-in user for their own account, admins for roles and
// claims).
package accounts

import (
	"context"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/access"
)

// Payload is a session (GraphQL AuthPayload).
type Payload struct {
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken"`
	ExpiresAt    time.Time `json:"expiresAt"`
	User         *User     `json:"user"`
}

// User is an account as its owner sees it (GraphQL Viewer).
type User struct {
	ID            uuid.UUID `json:"id"`
	Email         *string   `json:"email,omitempty"`
	EmailVerified bool      `json:"emailVerified"`
	Anonymous     bool      `json:"anonymous"`
	Roles         []string  `json:"roles"`
	CreatedAt     time.Time `json:"createdAt"`
}

// Credentials are an email and a password (GraphQL CredentialsInput).
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Identity is an account at a sign-in provider that signs in to a user
// (GraphQL AuthIdentity).
type Identity struct {
	Provider      string    `json:"provider"`
	Email         *string   `json:"email,omitempty"`
	EmailVerified bool      `json:"emailVerified"`
	CreatedAt     time.Time `json:"createdAt"`
}

// IDTokenInput is an ID token a provider's SDK gave the app, with the raw
// nonce the app generated for it (GraphQL IdTokenInput).
type IDTokenInput struct {
	Provider string  `json:"provider"`
	IDToken  string  `json:"idToken"`
	Nonce    *string `json:"nonce,omitempty"`
}

// RedirectSignInInput starts a browser redirect sign-in (GraphQL
// RedirectSignInInput).
type RedirectSignInInput struct {
	Provider      string  `json:"provider"`
	RedirectURI   string  `json:"redirectUri"`
	CodeChallenge *string `json:"codeChallenge,omitempty"`
}

// TOTPEnrollment is a pending TOTP factor (GraphQL TotpEnrollment).
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// TOTPActivation is an activated TOTP factor's recovery codes and the new
// aal2 session (GraphQL TotpActivation).
type TOTPActivation struct {
	RecoveryCodes []string `json:"recoveryCodes"`
	Session       *Payload `json:"session"`
}

// Platform is the push service of a device (GraphQL DevicePlatform).
type Platform string

// The platforms a device registers for.
const (
	// IOS devices get notifications through APNs.
	IOS Platform = "IOS"
	// Android devices get notifications through FCM.
	Android Platform = "ANDROID"
)

// DeviceInput is a device registering for push notifications (GraphQL
// DeviceInput).
type DeviceInput struct {
	Platform Platform `json:"platform"`
	// Token is the APNs device token or the FCM registration token.
	Token string `json:"token"`
	// AppID is the iOS bundle id (the APNs topic) or the Android package.
	AppID  string  `json:"appID"`
	Locale *string `json:"locale,omitempty"`
}

// Device is a registered device of the viewer (GraphQL Device).
type Device struct {
	ID        uuid.UUID `json:"id"`
	Platform  Platform  `json:"platform"`
	Token     string    `json:"token"`
	AppID     string    `json:"appID"`
	Locale    string    `json:"locale"`
	Topics    []string  `json:"topics"`
	CreatedAt time.Time `json:"createdAt"`
}

// Service is the account and session service the server provides.
type Service interface {
	SignUp(ctx context.Context, email, password string) (*Payload, error)
	SignIn(ctx context.Context, email, password string) (*Payload, error)
	SignInAnonymously(ctx context.Context) (*Payload, error)
	RefreshSession(ctx context.Context, refreshToken string) (*Payload, error)
	// SignInWithIDToken signs in with a provider's ID token; caller is the
	// signed-in user making the call, or uuid.Nil.
	SignInWithIDToken(ctx context.Context, caller uuid.UUID, provider, idToken, nonce string) (*Payload, error)
	LinkIdentity(ctx context.Context, userID uuid.UUID, provider, idToken, nonce string) (*Payload, error)
	// StartRedirectSignIn returns a provider's authorization URL for a
	// browser redirect sign-in back to redirectURI.
	StartRedirectSignIn(ctx context.Context, provider, redirectURI, codeChallenge string) (string, error)
	// SignInWithRedirectCode exchanges a redirect sign-in's one-time code;
	// caller is the signed-in user making the call, or uuid.Nil.
	SignInWithRedirectCode(ctx context.Context, caller uuid.UUID, code, codeVerifier string) (*Payload, error)
	UnlinkIdentity(ctx context.Context, userID uuid.UUID, provider string) error
	Identities(ctx context.Context, userID uuid.UUID) ([]*Identity, error)
	// RequestEmailCode mails a sign-in code, and a magic link to
	// redirectTo when it is not empty.
	RequestEmailCode(ctx context.Context, email, redirectTo string) error
	SignInWithEmailCode(ctx context.Context, email, code string) (*Payload, error)
	RequestEmailVerification(ctx context.Context, userID uuid.UUID) error
	VerifyEmail(ctx context.Context, userID uuid.UUID, code string) (*Payload, error)
	CompleteMFASignIn(ctx context.Context, mfaToken, code string) (*Payload, error)
	EnrollTOTP(ctx context.Context, userID uuid.UUID) (*TOTPEnrollment, error)
	ConfirmTOTP(ctx context.Context, userID uuid.UUID, code string) (*TOTPActivation, error)
	DisableTOTP(ctx context.Context, userID uuid.UUID) error
	MFAEnabled(ctx context.Context, userID uuid.UUID) (bool, error)
	SignOut(ctx context.Context, refreshToken string) error
	SignOutEverywhere(ctx context.Context, userID uuid.UUID) error
	ChangePassword(ctx context.Context, userID uuid.UUID, current, next string) (*Payload, error)
	LinkAccount(ctx context.Context, userID uuid.UUID, email, password string) (*Payload, error)
	DeleteAccount(ctx context.Context, userID uuid.UUID, password string) error
	RequestPasswordReset(ctx context.Context, email string) error
	ResetPassword(ctx context.Context, token, newPassword string) error
	User(ctx context.Context, userID uuid.UUID) (*User, error)
	AssignRole(ctx context.Context, userID uuid.UUID, role string) error
	RevokeRole(ctx context.Context, userID uuid.UUID, role string) error
	SetClaims(ctx context.Context, userID uuid.UUID, claims map[string]any) error
	// RegisterDevice registers a device of userID for push notifications,
	// tied to the sign-in session (its family id, or uuid.Nil) that signs
	// it out; a token another user registered moves to userID.
	RegisterDevice(ctx context.Context, userID, session uuid.UUID, in DeviceInput) (*Device, error)
	// UnregisterDevice removes userID's device with token; false when
	// userID has none.
	UnregisterDevice(ctx context.Context, userID uuid.UUID, token string) (bool, error)
	// Devices lists userID's devices, newest first.
	Devices(ctx context.Context, userID uuid.UUID) ([]*Device, error)
	// SubscribeToTopic and UnsubscribeFromTopic change the topics of
	// userID's device with token (false when userID has no such device).
	SubscribeToTopic(ctx context.Context, userID uuid.UUID, token, topic string) (bool, error)
	UnsubscribeFromTopic(ctx context.Context, userID uuid.UUID, token, topic string) (bool, error)
}

// Fields are the mutation fields that manage sessions; they run outside the
// per-mutation transaction.
var Fields = []string{"signUp", "signIn", "signInAnonymously", "refreshSession", "signOut", "signOutEverywhere",
	"signInWithIdToken", "linkIdentity", "startRedirectSignIn", "signInWithRedirectCode", "unlinkIdentity", "requestEmailCode", "signInWithEmailCode", "requestEmailVerification", "verifyEmail", "completeMfaSignIn", "enrollTotp", "confirmTotp", "disableTotp",
	"changePassword", "linkAccount", "deleteAccount", "requestPasswordReset", "resetPassword", "assignRole", "revokeRole", "setClaims",
	"registerDevice", "unregisterDevice", "subscribeToTopic", "unsubscribeFromTopic"}

// API is the account part of the GraphQL API over a Service: each method
// is one field of auth.graphql.
type API struct{ Service Service }

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

// Viewer returns the signed-in user (null for visitors and admins).
func (a API) Viewer(ctx context.Context) (*User, error) {
	v := access.From(ctx)
	if v == nil || v.Admin {
		return nil, nil
	}
	return a.Service.User(ctx, v.ID)
}

// SignUp creates an account.
func (a API) SignUp(ctx context.Context, in Credentials) (*Payload, error) {
	return a.Service.SignUp(ctx, in.Email, in.Password)
}

// SignIn signs in with email and password.
func (a API) SignIn(ctx context.Context, in Credentials) (*Payload, error) {
	return a.Service.SignIn(ctx, in.Email, in.Password)
}

// SignInAnonymously creates an anonymous account.
func (a API) SignInAnonymously(ctx context.Context) (*Payload, error) {
	return a.Service.SignInAnonymously(ctx)
}

// RefreshSession rotates a refresh token.
func (a API) RefreshSession(ctx context.Context, refreshToken string) (*Payload, error) {
	return a.Service.RefreshSession(ctx, refreshToken)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SignInWithIDToken signs in with a provider's ID token (an anonymous
// caller's account becomes the provider account when the identity is new).
func (a API) SignInWithIDToken(ctx context.Context, in IDTokenInput) (*Payload, error) {
	caller := uuid.Nil
	if v := access.From(ctx); v != nil && !v.Admin {
		caller = v.ID
	}
	return a.Service.SignInWithIDToken(ctx, caller, in.Provider, in.IDToken, deref(in.Nonce))
}

// LinkIdentity adds a provider's identity to the viewer.
func (a API) LinkIdentity(ctx context.Context, in IDTokenInput) (*Payload, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.LinkIdentity(ctx, v.ID, in.Provider, in.IDToken, deref(in.Nonce))
}

// StartRedirectSignIn returns a provider's authorization URL for a
// browser redirect sign-in.
func (a API) StartRedirectSignIn(ctx context.Context, in RedirectSignInInput) (string, error) {
	return a.Service.StartRedirectSignIn(ctx, in.Provider, in.RedirectURI, deref(in.CodeChallenge))
}

// SignInWithRedirectCode exchanges a redirect sign-in's one-time code for
// a session (an anonymous caller's account becomes the provider account
// when the identity is new).
func (a API) SignInWithRedirectCode(ctx context.Context, code string, codeVerifier *string) (*Payload, error) {
	caller := uuid.Nil
	if v := access.From(ctx); v != nil && !v.Admin {
		caller = v.ID
	}
	return a.Service.SignInWithRedirectCode(ctx, caller, code, deref(codeVerifier))
}

// UnlinkIdentity removes the viewer's identities at a provider.
func (a API) UnlinkIdentity(ctx context.Context, provider string) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return true, a.Service.UnlinkIdentity(ctx, v.ID, provider)
}

// Identities lists a user's identities. A User reaches the API only as
// the viewer or as the user of the caller's new session, so it is always
// the caller's own.
func (a API) Identities(ctx context.Context, u *User) ([]*Identity, error) {
	return a.Service.Identities(ctx, u.ID)
}

// RequestEmailCode mails a passwordless sign-in code.
func (a API) RequestEmailCode(ctx context.Context, email string, redirectTo *string) (bool, error) {
	return true, a.Service.RequestEmailCode(ctx, email, deref(redirectTo))
}

// SignInWithEmailCode signs in with a mailed code.
func (a API) SignInWithEmailCode(ctx context.Context, email, code string) (*Payload, error) {
	return a.Service.SignInWithEmailCode(ctx, email, code)
}

// RequestEmailVerification mails the viewer a verification code.
func (a API) RequestEmailVerification(ctx context.Context) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return true, a.Service.RequestEmailVerification(ctx, v.ID)
}

// VerifyEmail marks the viewer's email verified with a mailed code.
func (a API) VerifyEmail(ctx context.Context, code string) (*Payload, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.VerifyEmail(ctx, v.ID, code)
}

// CompleteMFASignIn answers an MFA challenge with a code.
func (a API) CompleteMFASignIn(ctx context.Context, mfaToken, code string) (*Payload, error) {
	return a.Service.CompleteMFASignIn(ctx, mfaToken, code)
}

// EnrollTOTP starts a TOTP factor for the viewer.
func (a API) EnrollTOTP(ctx context.Context) (*TOTPEnrollment, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.EnrollTOTP(ctx, v.ID)
}

// ConfirmTOTP activates the viewer's pending TOTP factor.
func (a API) ConfirmTOTP(ctx context.Context, code string) (*TOTPActivation, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.ConfirmTOTP(ctx, v.ID, code)
}

// DisableTOTP removes the viewer's TOTP factor.
func (a API) DisableTOTP(ctx context.Context) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return true, a.Service.DisableTOTP(ctx, v.ID)
}

// MFAEnabled tells whether a user (the caller's own; see Identities) has
// an active second factor.
func (a API) MFAEnabled(ctx context.Context, u *User) (bool, error) {
	return a.Service.MFAEnabled(ctx, u.ID)
}

// SignOut ends the session of a refresh token.
func (a API) SignOut(ctx context.Context, refreshToken string) (bool, error) {
	return true, a.Service.SignOut(ctx, refreshToken)
}

// SignOutEverywhere ends every session of the viewer.
func (a API) SignOutEverywhere(ctx context.Context) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return true, a.Service.SignOutEverywhere(ctx, v.ID)
}

// ChangePassword changes the viewer's password and ends other sessions.
func (a API) ChangePassword(ctx context.Context, current, next string) (*Payload, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.ChangePassword(ctx, v.ID, current, next)
}

// LinkAccount adds an email and a password to an anonymous account.
func (a API) LinkAccount(ctx context.Context, in Credentials) (*Payload, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.LinkAccount(ctx, v.ID, in.Email, in.Password)
}

// DeleteAccount deletes the viewer's account.
func (a API) DeleteAccount(ctx context.Context, password *string) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	pw := ""
	if password != nil {
		pw = *password
	}
	return true, a.Service.DeleteAccount(ctx, v.ID, pw)
}

// RequestPasswordReset mails a reset link when the email has an account.
func (a API) RequestPasswordReset(ctx context.Context, email string) (bool, error) {
	return true, a.Service.RequestPasswordReset(ctx, email)
}

// ResetPassword sets a new password with a token from the reset mail.
func (a API) ResetPassword(ctx context.Context, token, newPassword string) (bool, error) {
	return true, a.Service.ResetPassword(ctx, token, newPassword)
}

// AssignRole gives a user a role (admins only).
func (a API) AssignRole(ctx context.Context, userID uuid.UUID, role string) (bool, error) {
	if err := adminOnly(ctx); err != nil {
		return false, err
	}
	return true, a.Service.AssignRole(ctx, userID, role)
}

// RevokeRole takes a role from a user (admins only).
func (a API) RevokeRole(ctx context.Context, userID uuid.UUID, role string) (bool, error) {
	if err := adminOnly(ctx); err != nil {
		return false, err
	}
	return true, a.Service.RevokeRole(ctx, userID, role)
}

// SetClaims replaces a user's custom claims (admins only).
func (a API) SetClaims(ctx context.Context, userID uuid.UUID, claims map[string]any) (bool, error) {
	if err := adminOnly(ctx); err != nil {
		return false, err
	}
	return true, a.Service.SetClaims(ctx, userID, claims)
}

// RegisterDevice registers a device of the viewer for push notifications;
// signing out the viewer's session removes it.
func (a API) RegisterDevice(ctx context.Context, in DeviceInput) (*Device, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return nil, err
	}
	return a.Service.RegisterDevice(ctx, v.ID, v.Session, in)
}

// UnregisterDevice removes a device of the viewer.
func (a API) UnregisterDevice(ctx context.Context, token string) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return a.Service.UnregisterDevice(ctx, v.ID, token)
}

// Devices lists the viewer's devices. Like Identities, u is always the
// caller's own.
func (a API) Devices(ctx context.Context, u *User) ([]*Device, error) {
	return a.Service.Devices(ctx, u.ID)
}

// SubscribeToTopic subscribes a device of the viewer to a topic.
func (a API) SubscribeToTopic(ctx context.Context, token, topic string) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return a.Service.SubscribeToTopic(ctx, v.ID, token, topic)
}

// UnsubscribeFromTopic unsubscribes a device of the viewer from a topic.
func (a API) UnsubscribeFromTopic(ctx context.Context, token, topic string) (bool, error) {
	v, err := signedIn(ctx)
	if err != nil {
		return false, err
	}
	return a.Service.UnsubscribeFromTopic(ctx, v.ID, token, topic)
}
