package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"kiln/runtime/store"
	"kiln/runtime/store/authflow"
)

const (
	// stateTTL is how long an authorization request may take at the
	// provider (the user signs in there).
	stateTTL = 10 * time.Minute
	// exchangeTTL is how long the app has to exchange the code the
	// callback gave it.
	exchangeTTL = 2 * time.Minute

	flowState    = "state"
	flowExchange = "exchange"

	// CallbackPath is where providers send the browser back.
	CallbackPath = "/auth/callback"
)

// ErrRedirectNotAllowed: the redirect URI is not on the allow-list.
var ErrRedirectNotAllowed = &InputError{Field: "redirectUri", Message: "is not one of the allowed redirect URIs (KILN_AUTH_REDIRECT_URIS)"}

var (
	errNoRedirectClient = &InputError{Field: "provider", Message: "has no redirect-flow client (KILN_AUTH_REDIRECT_CLIENTS)"}
	errBadChallenge     = &InputError{Field: "codeChallenge", Message: "must be the base64url SHA-256 (43 characters) of a code verifier"}
	// providerError is the shape of the error code a provider sends back.
	providerError = regexp.MustCompile(`^[a-z_]{1,64}$`)
)

// ValidateRedirectURI checks an allow-list entry: an absolute URL without
// fragment, either https (a universal or app link), http on a loopback host
// (development), or a custom scheme of the app (com.example.app:/cb); never
// javascript:, data:, file: and the like.
func ValidateRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Fragment != "" || strings.ContainsAny(raw, " \t\r\n") {
		return fmt.Errorf("redirect URI %q is not an absolute URL without fragment", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("redirect URI %q has no host", raw)
		}
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("redirect URI %q must use https (http only on a loopback host)", raw)
		}
	case "javascript", "data", "file", "vbscript", "blob", "about", "ftp", "ws", "wss":
		return fmt.Errorf("redirect URI %q: scheme %s is not allowed", raw, u.Scheme)
	}
	return nil
}

// StartRedirectSignIn begins the browser redirect flow at a provider with
// a redirect client: it returns the provider's authorization URL for the
// app to open (authorization code, PKCE S256, state and nonce, all kept
// server-side for ten minutes; the state works once). After the user signs
// in at the provider, the provider sends the browser to the server's
// callback, which redirects to redirectURI (exactly one of the allowed
// redirect URIs) with a one-time code for SignInWithRedirectCode.
// appChallenge, optional, is the app's own PKCE S256 challenge: the
// exchange then needs its verifier, so a code caught on its way to the app
// is worth nothing. Errors: ErrUnknownProvider, *InputError (provider
// without redirect client, redirectUri not allowed, bad codeChallenge),
// *RateLimitedError (counted per client address).
func (s *Service) StartRedirectSignIn(ctx context.Context, provider, redirectURI, appChallenge, ip string) (string, error) {
	if err := s.limit(ip, ""); err != nil {
		return "", err
	}
	p, ok := s.providers[provider]
	if !ok {
		return "", ErrUnknownProvider
	}
	if p.Redirect == nil || s.callbackURL == "" {
		return "", errNoRedirectClient
	}
	if _, ok := s.redirectURIs[redirectURI]; !ok {
		return "", ErrRedirectNotAllowed
	}
	if appChallenge != "" {
		if b, err := base64.RawURLEncoding.DecodeString(appChallenge); err != nil || len(b) != sha256.Size {
			return "", errBadChallenge
		}
	}
	op, err := p.discovered(ctx)
	if err != nil {
		return "", err
	}
	state, stateHash, err := newSecret()
	if err != nil {
		return "", err
	}
	nonce, _, err := newSecret()
	if err != nil {
		return "", err
	}
	verifier := oauth2.GenerateVerifier()
	now := s.now()
	// Expired flows of any provider go too.
	if _, err := s.client.AuthFlow.Delete().Where(authflow.ExpiresAtLT(now)).Exec(ctx); err != nil {
		return "", fmt.Errorf("start redirect sign-in: drop expired flows: %w", err)
	}
	err = s.client.AuthFlow.Create().SetCreatedAt(now).SetKind(flowState).SetTokenHash(stateHash).
		SetProvider(provider).SetRedirectURI(redirectURI).SetCodeVerifier(verifier).SetNonce(nonce).
		SetAppChallenge(appChallenge).SetExpiresAt(now.Add(stateTTL)).Exec(ctx)
	if err != nil {
		return "", fmt.Errorf("start redirect sign-in: %w", err)
	}
	return s.oauthConfig(p, op).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), nil
}

func (s *Service) oauthConfig(p *provider, op *oidc.Provider) *oauth2.Config {
	ep := op.Endpoint()
	// One way of sending the client secret, the provider's: oauth2's
	// auto-detection would send a refused code a second time.
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic, OpenID's default
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := op.Claims(&meta); err == nil && len(meta.Methods) > 0 &&
		!slices.Contains(meta.Methods, "client_secret_basic") && slices.Contains(meta.Methods, "client_secret_post") {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: p.Redirect.ClientID, ClientSecret: p.Redirect.ClientSecret,
		Endpoint: ep, RedirectURL: s.callbackURL,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

// takeFlow marks the unused, unexpired flow row of kind whose token is
// token used and returns it; nil when there is none (unknown, used,
// expired or malformed).
func (s *Service) takeFlow(ctx context.Context, kind, token string) (*store.AuthFlow, error) {
	hash, ok := secretHash(token)
	if !ok {
		return nil, nil
	}
	now := s.now()
	row, err := s.client.AuthFlow.Query().Where(authflow.TokenHash(hash), authflow.Kind(kind)).Only(ctx)
	if store.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load flow: %w", err)
	}
	n, err := s.client.AuthFlow.Update().Where(authflow.ID(row.ID), authflow.UsedAtIsNil()).SetUsedAt(now).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("use flow: %w", err)
	}
	if n == 0 || !now.Before(row.ExpiresAt) {
		return nil, nil
	}
	return row, nil
}

// CallbackHandler serves CallbackPath: the provider sends the browser
// back with the authorization code and the state. The state is taken
// (single use); the code is exchanged at the provider's token endpoint
// with the PKCE verifier and the client secret; the ID token is verified
// like SignInWithIDToken's (with the state's nonce); and the browser is
// redirected to the app's redirect URI with ?code= a one-time exchange
// code (two minutes). A failure after the state was found redirects there
// with ?error= (the provider's error code, or Kiln's refusal reason in
// lower case); an unknown, used or expired state answers 400 and goes
// nowhere.
func (s *Service) CallbackHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		q := r.URL.Query()
		row, err := s.takeFlow(r.Context(), flowState, q.Get("state"))
		if err != nil {
			s.log.ErrorContext(r.Context(), "auth: redirect callback", "err", err)
			http.Error(w, "sign-in failed: try again from the app", http.StatusInternalServerError)
			return
		}
		if row == nil {
			http.Error(w, "this sign-in link is unknown, expired or already used: start again from the app", http.StatusBadRequest)
			return
		}
		if _, ok := s.redirectURIs[row.RedirectURI]; !ok { // the allow-list changed since the start
			http.Error(w, "this app's redirect is no longer allowed: start again from the app", http.StatusBadRequest)
			return
		}
		code, reason := s.finishCallback(r.Context(), row, q)
		back, err := url.Parse(row.RedirectURI)
		if err != nil {
			http.Error(w, "bad redirect URI", http.StatusInternalServerError)
			return
		}
		bq := back.Query()
		if reason != "" {
			bq.Set("error", reason)
		} else {
			bq.Set("code", code)
		}
		back.RawQuery = bq.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
}

// finishCallback exchanges the provider's code and records the assertion
// under a new exchange code; it returns the code, or the reason the app
// is told.
func (s *Service) finishCallback(ctx context.Context, row *store.AuthFlow, q url.Values) (code, reason string) {
	if e := q.Get("error"); e != "" {
		if !providerError.MatchString(e) {
			e = "provider_error"
		}
		return "", e
	}
	p, ok := s.providers[row.Provider]
	if !ok || p.Redirect == nil {
		return "", "provider_not_configured"
	}
	op, err := p.discovered(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "auth: redirect callback", "provider", row.Provider, "err", err)
		return "", "server_error"
	}
	// RFC 9207: an authorization response naming another issuer comes
	// from another provider (a mix-up attack); a provider that announces
	// the parameter must send it.
	var meta struct {
		ISS bool `json:"authorization_response_iss_parameter_supported"`
	}
	_ = op.Claims(&meta)
	if iss := q.Get("iss"); (iss != "" || meta.ISS) && iss != p.Issuer {
		s.log.WarnContext(ctx, "auth: redirect callback from another issuer", "provider", row.Provider, "iss", iss)
		return "", "issuer_mismatch"
	}
	xctx := oidc.ClientContext(ctx, &http.Client{Timeout: discoveryTimeout})
	tok, err := s.oauthConfig(p, op).Exchange(xctx, q.Get("code"), oauth2.VerifierOption(row.CodeVerifier))
	if err != nil {
		s.log.InfoContext(ctx, "auth: provider refused the code exchange", "provider", row.Provider, "err", err)
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && providerError.MatchString(re.ErrorCode) {
			return "", re.ErrorCode
		}
		return "", "server_error"
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", strings.ToLower(ReasonInvalidToken)
	}
	a, err := s.verifyIDToken(ctx, row.Provider, raw, row.Nonce)
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			return "", strings.ToLower(refused.Reason)
		}
		s.log.ErrorContext(ctx, "auth: redirect callback", "provider", row.Provider, "err", err)
		return "", "server_error"
	}
	code, hash, err := newSecret()
	if err != nil {
		return "", "server_error"
	}
	now := s.now()
	err = s.client.AuthFlow.Create().SetCreatedAt(now).SetKind(flowExchange).SetTokenHash(hash).
		SetProvider(a.provider).SetRedirectURI(row.RedirectURI).SetAppChallenge(row.AppChallenge).
		SetSubject(a.subject).SetEmail(a.email).SetEmailVerified(a.emailVerified).
		SetExpiresAt(now.Add(exchangeTTL)).Exec(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "auth: redirect callback: store exchange code", "err", err)
		return "", "server_error"
	}
	return code, ""
}

// SignInWithRedirectCode exchanges the one-time code the callback gave the
// app for a session, with SignInWithIDToken's linking rules (caller is the
// signed-in user making the call, or uuid.Nil: an anonymous caller keeps
// its account). The code works once, for two minutes; when the app sent a
// codeChallenge to StartRedirectSignIn, codeVerifier must be its verifier.
// An account with an active second factor answers *MFARequiredError.
// Errors: *RefusedError (UNAUTHENTICATED INVALID_CODE for an unknown,
// used or expired code or a wrong verifier; the linking refusals),
// *RateLimitedError (counted per client address).
func (s *Service) SignInWithRedirectCode(ctx context.Context, caller uuid.UUID, code, codeVerifier, ip string) (*Session, error) {
	if err := s.limit(ip, ""); err != nil {
		return nil, err
	}
	invalid := &RefusedError{CodeUnauthenticated, ReasonInvalidCode, "unknown, used or expired code: start the sign-in again"}
	row, err := s.takeFlow(ctx, flowExchange, code)
	if err != nil {
		return nil, fmt.Errorf("sign in with redirect code: %w", err)
	}
	if row == nil {
		return nil, invalid
	}
	if row.AppChallenge != "" {
		sum := sha256.Sum256([]byte(codeVerifier))
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(row.AppChallenge)) != 1 {
			return nil, &RefusedError{CodeUnauthenticated, ReasonInvalidCode, "the code verifier does not match the code challenge: start the sign-in again"}
		}
	}
	a := &assertion{provider: row.Provider, subject: row.Subject, email: row.Email, emailVerified: row.EmailVerified}
	return s.signInAsserted(ctx, caller, a, "sign in with redirect code")
}
