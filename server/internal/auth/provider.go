package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Issuers of the provider presets.
const (
	AppleIssuer  = "https://appleid.apple.com"
	GoogleIssuer = "https://accounts.google.com"
)

// Provider is an OpenID Connect provider whose ID tokens sign users in.
type Provider struct {
	// Name is what apps pass as IdTokenInput.provider and what identities
	// record: lower-case letters, digits, '-' and '_'.
	Name string
	// Issuer is the provider's issuer URL; its discovery document is at
	// Issuer + "/.well-known/openid-configuration". https, or http on a
	// loopback host (tests, local development).
	Issuer string
	// ClientIDs are the audiences accepted: one per app that asks the
	// provider for tokens (iOS bundle id, Android and web client ids, an
	// Apple Services ID).
	ClientIDs []string
	// Redirect, when set, is the confidential client of the browser
	// redirect flow (StartRedirectSignIn); its id is accepted as an
	// audience too.
	Redirect *RedirectClient
}

// RedirectClient is a provider's client for the authorization code flow:
// the server exchanges codes at the provider's token endpoint with it.
type RedirectClient struct {
	ClientID     string
	ClientSecret string
}

var providerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate checks the provider's name, issuer and client ids.
func (p Provider) Validate() error {
	if !providerName.MatchString(p.Name) {
		return fmt.Errorf("provider name %q must be 1 to 32 lower-case letters, digits, '-' or '_'", p.Name)
	}
	u, err := url.Parse(p.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("provider %s: issuer %q is not an absolute URL without query", p.Name, p.Issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("provider %s: issuer %q must use https (http only on a loopback host)", p.Name, p.Issuer)
		}
	default:
		return fmt.Errorf("provider %s: issuer %q must use https", p.Name, p.Issuer)
	}
	if len(p.ClientIDs) == 0 || slices.Contains(p.ClientIDs, "") {
		return fmt.Errorf("provider %s: needs at least one client id, none empty", p.Name)
	}
	if p.Redirect != nil && (p.Redirect.ClientID == "" || p.Redirect.ClientSecret == "") {
		return fmt.Errorf("provider %s: the redirect flow's client needs an id and a secret", p.Name)
	}
	return nil
}

// Reasons of a refused ID token or identity (extensions.reason of a
// *RefusedError).
const (
	ReasonInvalidSignature  = "INVALID_SIGNATURE"
	ReasonInvalidIssuer     = "INVALID_ISSUER"
	ReasonInvalidAudience   = "INVALID_AUDIENCE"
	ReasonTokenExpired      = "TOKEN_EXPIRED"
	ReasonNonceMissing      = "NONCE_MISSING"
	ReasonNonceMismatch     = "NONCE_MISMATCH"
	ReasonInvalidToken      = "INVALID_TOKEN"
	ReasonEmailNotVerified  = "EMAIL_NOT_VERIFIED"
	ReasonAccountExists     = "ACCOUNT_EXISTS"
	ReasonIdentityInUse     = "IDENTITY_IN_USE"
	ReasonLastSignInMethod  = "LAST_SIGN_IN_METHOD"
	ReasonProviderNotLinked = "PROVIDER_NOT_LINKED"
)

// RefusedError is an ID token or identity operation refused for a stated
// reason: UNAUTHENTICATED for a token that does not verify, CONFLICT for
// a linking rule, NOT_FOUND for an identity the user does not have. Its
// extensions carry the reason (one of the Reason* constants).
type RefusedError struct {
	code, Reason, msg string
}

func (e *RefusedError) Error() string { return e.msg }

// Code returns the error's code.
func (e *RefusedError) Code() string { return e.code }

// Extensions give the reason (apierror.Error).
func (e *RefusedError) Extensions() map[string]any { return map[string]any{"reason": e.Reason} }

func refusedToken(reason, msg string) *RefusedError {
	return &RefusedError{CodeUnauthenticated, reason, msg}
}

// ErrUnknownProvider: IdTokenInput.provider names no configured provider.
var ErrUnknownProvider = &InputError{Field: "provider", Message: "is not a configured sign-in provider"}

// discoveryTimeout bounds a discovery or JWKS request to a provider.
const discoveryTimeout = 10 * time.Second

// provider is a configured Provider with its discovered verifier: the
// discovery document is fetched on first use (and again after a failure),
// and the verifier's key set (go-oidc's RemoteKeySet) caches the JWKS and
// fetches it again when a token names a kid it does not hold (the
// provider rotated its keys).
type provider struct {
	Provider
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	op       *oidc.Provider // its discovery document (endpoints)
}

// discovered returns the provider's discovery document, fetching it first
// when needed.
func (p *provider) discovered(ctx context.Context) (*oidc.Provider, error) {
	if _, err := p.verifierFor(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.op, nil
}

func (p *provider) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifier != nil {
		return p.verifier, nil
	}
	// The key set keeps the context it is made with for its later fetches.
	bg := oidc.ClientContext(context.Background(), &http.Client{Timeout: discoveryTimeout})
	dctx, cancel := context.WithTimeout(bg, discoveryTimeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() { // the caller leaving cancels the discovery
		select {
		case <-ctx.Done():
			cancel()
		case <-done:
		}
	}()
	op, err := oidc.NewProvider(dctx, p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover provider %s: %w", p.Name, err)
	}
	// Issuer, audience and expiry are checked by verifyIDToken, each with
	// its own reason; the verifier checks the signature (the algorithms
	// the provider publishes) against the provider's keys.
	p.verifier = op.VerifierContext(bg, &oidc.Config{SkipClientIDCheck: true, SkipExpiryCheck: true, SkipIssuerCheck: true})
	p.op = op
	return p.verifier, nil
}

// idClaims are what sign-in reads from an ID token besides the standard
// claims go-oidc parses.
type idClaims struct {
	Email         string   `json:"email"`
	EmailVerified flexBool `json:"email_verified"`
	AZP           string   `json:"azp"`
}

// flexBool is a JSON boolean that may come as a string (Apple sends
// "true"/"false").
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = flexBool(x)
	case string:
		*b = flexBool(x == "true")
	default:
		*b = false
	}
	return nil
}

// assertion is what a verified ID token asserts.
type assertion struct {
	provider      string
	subject       string
	email         string // lower-cased; "" when none
	emailVerified bool
}

// verifyIDToken checks a provider's ID token: its signature against the
// provider's published keys, then issuer, audience (one of the configured
// client ids; with several audiences the authorized party too), expiry
// (with leeway) and nonce, each refused with its own reason. nonce is the
// raw nonce the app generated; the token carries it as is (Google, most
// providers) or as its SHA-256 in hex (Apple).
func (s *Service) verifyIDToken(ctx context.Context, name, raw, nonce string) (*assertion, error) {
	p, ok := s.providers[name]
	if !ok {
		return nil, ErrUnknownProvider
	}
	if nonce == "" {
		return nil, refusedToken(ReasonNonceMissing, "a nonce is required: generate one per sign-in, give it to the provider's SDK and send it with the ID token")
	}
	v, err := p.verifierFor(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		s.log.InfoContext(ctx, "auth: ID token refused", "provider", name, "err", err)
		return nil, refusedToken(ReasonInvalidSignature, "the ID token is malformed or its signature does not verify with the provider's keys")
	}
	if tok.Issuer != p.Issuer && !(p.Issuer == GoogleIssuer && tok.Issuer == "accounts.google.com") {
		return nil, refusedToken(ReasonInvalidIssuer, fmt.Sprintf("the ID token was issued by %q, not by the provider %s", tok.Issuer, name))
	}
	var c idClaims
	if err := tok.Claims(&c); err != nil {
		return nil, refusedToken(ReasonInvalidToken, "the ID token's claims cannot be read")
	}
	clients := p.ClientIDs
	if p.Redirect != nil {
		clients = append(slices.Clip(clients), p.Redirect.ClientID)
	}
	aud := slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(clients, a) })
	if !aud || (len(tok.Audience) > 1 && !slices.Contains(clients, c.AZP)) {
		return nil, refusedToken(ReasonInvalidAudience, "the ID token was issued to another client (its audience is none of the configured client ids)")
	}
	if tok.Expiry.IsZero() || !s.now().Before(tok.Expiry.Add(leeway)) {
		return nil, refusedToken(ReasonTokenExpired, "the ID token has expired")
	}
	if tok.Subject == "" {
		return nil, refusedToken(ReasonInvalidToken, "the ID token has no subject")
	}
	if tok.Nonce == "" {
		return nil, refusedToken(ReasonNonceMissing, "the ID token carries no nonce: give the nonce to the provider's SDK")
	}
	sum := sha256.Sum256([]byte(nonce))
	if subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 &&
		subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(hex.EncodeToString(sum[:]))) != 1 {
		return nil, refusedToken(ReasonNonceMismatch, "the ID token's nonce is not the one sent")
	}
	a := &assertion{provider: name, subject: tok.Subject, emailVerified: bool(c.EmailVerified)}
	if c.Email != "" {
		if addr, err := normalizeEmail(c.Email); err == nil {
			a.email = addr
		} else {
			a.emailVerified = false
		}
	} else {
		a.emailVerified = false
	}
	return a, nil
}

// newProviders indexes the configured providers by name.
func newProviders(list []Provider) (map[string]*provider, error) {
	m := make(map[string]*provider, len(list))
	var errs []error
	for _, p := range list {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := m[p.Name]; dup {
			errs = append(errs, fmt.Errorf("provider %s is configured twice", p.Name))
			continue
		}
		m[p.Name] = &provider{Provider: p}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return m, nil
}

// ProvidersFromEnv reads the sign-in providers: the Apple and Google
// presets from KILN_AUTH_APPLE_CLIENT_IDS and KILN_AUTH_GOOGLE_CLIENT_IDS
// (comma-separated client ids), and any other OpenID Connect provider from
// KILN_AUTH_OIDC_PROVIDERS (';'-separated name|issuerURL|clientID[,...]),
// and the redirect flow's clients of any of them from
// KILN_AUTH_REDIRECT_CLIENTS (';'-separated name|clientID|clientSecret).
// The error names the setting and every problem; it never repeats a
// secret.
func ProvidersFromEnv(getenv func(string) string) ([]Provider, error) {
	var out []Provider
	var errs []error
	ids := func(v string) []string {
		var list []string
		for id := range strings.SplitSeq(v, ",") {
			list = append(list, strings.TrimSpace(id))
		}
		return list
	}
	for _, preset := range []struct{ env, name, issuer string }{
		{"KILN_AUTH_APPLE_CLIENT_IDS", "apple", AppleIssuer},
		{"KILN_AUTH_GOOGLE_CLIENT_IDS", "google", GoogleIssuer},
	} {
		if v := strings.TrimSpace(getenv(preset.env)); v != "" {
			p := Provider{Name: preset.name, Issuer: preset.issuer, ClientIDs: ids(v)}
			if err := p.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", preset.env, err))
				continue
			}
			out = append(out, p)
		}
	}
	for entry := range strings.SplitSeq(getenv("KILN_AUTH_OIDC_PROVIDERS"), ";") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		parts := strings.Split(strings.TrimSpace(entry), "|")
		if len(parts) != 3 {
			errs = append(errs, fmt.Errorf("KILN_AUTH_OIDC_PROVIDERS: %q must be name|issuerURL|clientID[,clientID...]", entry))
			continue
		}
		p := Provider{Name: strings.TrimSpace(parts[0]), Issuer: strings.TrimSpace(parts[1]), ClientIDs: ids(parts[2])}
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("KILN_AUTH_OIDC_PROVIDERS: %w", err))
			continue
		}
		if p.Name == "apple" || p.Name == "google" {
			errs = append(errs, fmt.Errorf("KILN_AUTH_OIDC_PROVIDERS: provider %s is a preset: set KILN_AUTH_%s_CLIENT_IDS", p.Name, strings.ToUpper(p.Name)))
			continue
		}
		if slices.ContainsFunc(out, func(q Provider) bool { return q.Name == p.Name }) {
			errs = append(errs, fmt.Errorf("KILN_AUTH_OIDC_PROVIDERS: provider %s is configured twice", p.Name))
			continue
		}
		out = append(out, p)
	}
	for entry := range strings.SplitSeq(getenv("KILN_AUTH_REDIRECT_CLIENTS"), ";") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		parts := strings.Split(strings.TrimSpace(entry), "|")
		if len(parts) != 3 {
			errs = append(errs, errors.New("KILN_AUTH_REDIRECT_CLIENTS: each entry must be name|clientID|clientSecret"))
			continue
		}
		name := strings.TrimSpace(parts[0])
		i := slices.IndexFunc(out, func(q Provider) bool { return q.Name == name })
		switch {
		case i < 0:
			errs = append(errs, fmt.Errorf("KILN_AUTH_REDIRECT_CLIENTS: provider %q is not configured (KILN_AUTH_OIDC_PROVIDERS, KILN_AUTH_APPLE_CLIENT_IDS, KILN_AUTH_GOOGLE_CLIENT_IDS)", name))
		case out[i].Redirect != nil:
			errs = append(errs, fmt.Errorf("KILN_AUTH_REDIRECT_CLIENTS: provider %s has two redirect clients", name))
		default:
			out[i].Redirect = &RedirectClient{ClientID: strings.TrimSpace(parts[1]), ClientSecret: strings.TrimSpace(parts[2])}
			if err := out[i].Validate(); err != nil {
				errs = append(errs, fmt.Errorf("KILN_AUTH_REDIRECT_CLIENTS: %w", err))
			}
		}
	}
	return out, errors.Join(errs...)
}
