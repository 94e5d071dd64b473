package kilntest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// OIDCProvider is a real OpenID Connect provider for tests, on loopback: it
// serves a discovery document and its JWKS over HTTP and issues ID tokens
// signed (RS256) with its current key, like Apple's and Google's do. Its
// keys rotate on demand; JWKSFetches counts the key-set downloads.
type OIDCProvider struct {
	// URL is the issuer (http://127.0.0.1:port).
	URL         string
	JWKSFetches atomic.Int64

	mu      sync.Mutex
	current *signingKey
	n       int
}

type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// StartOIDCProvider starts a provider for the test's lifetime.
func StartOIDCProvider(t testing.TB) *OIDCProvider {
	t.Helper()
	p := &OIDCProvider{}
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
		t.Fatal(err)
	}
	payload, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
