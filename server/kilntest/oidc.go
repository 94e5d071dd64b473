package kilntest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// OIDCProvider is a real OpenID Connect provider for tests, on loopback: it
// serves a discovery document and its JWKS over HTTP and issues ID tokens
// signed (RS256) with its current key, like Apple's and Google's do. Its
// keys rotate on demand; JWKSFetches counts the key-set downloads. It
// also runs the authorization code flow with PKCE (S256 only): /authorize
// signs in the user set by SignInAs at once (no login page) and redirects
// back with a code; /token exchanges the code once, for a registered
// client (AddClient) with its secret, the same redirect URI and the PKCE
// verifier, and answers with an ID token for the client.
type OIDCProvider struct {
	// URL is the issuer (http://127.0.0.1:port).
	URL         string
	JWKSFetches atomic.Int64
	// TokenRefusals counts the code exchanges /token refused.
	TokenRefusals atomic.Int64

	mu      sync.Mutex
	current *signingKey
	n       int
	clients map[string]string // client id -> secret
	user    Claims            // who /authorize signs in
	codes   map[string]*authCode
}

type authCode struct {
	clientID, redirectURI, nonce, challenge string
	claims                                  Claims
}

type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// StartOIDCProvider starts a provider for the test's lifetime.
func StartOIDCProvider(t testing.TB) *OIDCProvider {
	t.Helper()
	p := &OIDCProvider{clients: map[string]string{}, codes: map[string]*authCode{}}
	p.current = p.newKey(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                p.URL,
			"authorization_endpoint":                p.URL + "/authorize",
			"token_endpoint":                        p.URL + "/token",
			"jwks_uri":                              p.URL + "/jwks",
			"response_types_supported":              []string{"code", "id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.JWKSFetches.Add(1)
		p.mu.Lock()
		k := p.current
		p.mu.Unlock()
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (p *OIDCProvider) newKey(t testing.TB) *signingKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.n++
	return &signingKey{kid: fmt.Sprintf("key-%d", p.n), priv: priv}
}

// Rotate replaces the provider's signing key: tokens are signed with a new
// key and kid, and the JWKS publishes only the new key.
func (p *OIDCProvider) Rotate(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = p.newKey(t)
}

// Claims are the claims of a test ID token: iss is the provider's URL, iat
// now and exp in ten minutes unless set; other values replace or add
// claims (a nil value removes one).
type Claims map[string]any

// IDToken returns an ID token with claims signed by the provider's current
// key.
func (p *OIDCProvider) IDToken(t testing.TB, claims Claims) string {
	t.Helper()
	p.mu.Lock()
	k := p.current
	p.mu.Unlock()
	return p.sign(t, k, claims)
}

// IDTokenWithUnpublishedKey returns an ID token signed by a key the
// provider never publishes (with a kid of its own), as a forger would.
func (p *OIDCProvider) IDTokenWithUnpublishedKey(t testing.TB, claims Claims) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return p.sign(t, &signingKey{kid: "unpublished", priv: priv}, claims)
}

func (p *OIDCProvider) sign(t testing.TB, k *signingKey, claims Claims) string {
	t.Helper()
	s, err := p.signClaims(k, claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *OIDCProvider) signClaims(k *signingKey, claims Claims) (string, error) {
	now := time.Now()
	full := map[string]any{"iss": p.URL, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	for name, v := range claims {
		if v == nil {
			delete(full, name)
		} else {
			full[name] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(full)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// AddClient registers a client of the authorization code flow.
func (p *OIDCProvider) AddClient(id, secret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[id] = secret
}

// SignInAs sets the user /authorize signs in: the ID token's claims
// (sub, email, email_verified...).
func (p *OIDCProvider) SignInAs(claims Claims) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = claims
}

func (p *OIDCProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	_, known := p.clients[q.Get("client_id")]
	user := p.user
	p.mu.Unlock()
	switch {
	case !known:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || q.Get("redirect_uri") == "":
		http.Error(w, "response_type=code and redirect_uri are required", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE with S256 is required", http.StatusBadRequest)
		return
	case user == nil:
		http.Error(w, "no user: call SignInAs", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = &authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), claims: user}
	p.mu.Unlock()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *OIDCProvider) token(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, code string) {
		p.TokenRefusals.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	p.mu.Lock()
	want, known := p.clients[id]
	c := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code")) // single use, whatever follows
	k := p.current
	p.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		refuse(http.StatusUnauthorized, "invalid_client")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code":
		refuse(http.StatusBadRequest, "unsupported_grant_type")
		return
	case c == nil || c.clientID != id || c.redirectURI != r.PostForm.Get("redirect_uri"):
		refuse(http.StatusBadRequest, "invalid_grant")
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
		refuse(http.StatusBadRequest, "invalid_grant") // PKCE verifier mismatch
		return
	}
	claims := Claims{"aud": id}
	if c.nonce != "" {
		claims["nonce"] = c.nonce
	}
	for name, v := range c.claims {
		claims[name] = v
	}
	idToken, err := p.signClaims(k, claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"access_token": rand.Text(), "token_type": "Bearer", "expires_in": 600, "id_token": idToken})
}
