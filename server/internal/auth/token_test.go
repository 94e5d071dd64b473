package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/runtime/access"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func genKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// forge signs claims like the service does, with full control.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyRejects(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		s := e.signUp("jwt@example.com", pw)
		e.mustVerify(e.svc, s.AccessToken)
		now := e.clock.Now()
		signing := e.keys.signing()
		claims := func() jwt.MapClaims {
			return jwt.MapClaims{
				"iss": "kiln", "sub": s.User.ID.String(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
				"jti": uuid.NewString(), "roles": []string{"admin"}, "anon": false, "tv": 1,
			}
		}
		// The forging helper itself produces accepted tokens.
		good := forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, claims())
		v, err := e.svc.Verify(e.ctx, good)
		if err != nil || !v.HasRole("admin") || v.ID != s.User.ID || v.Claims["jti"] == nil {
			t.Fatalf("control token: %+v, %v", v, err)
		}

		parts := strings.Split(s.AccessToken, ".")
		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + signing.kid + `"}`))
		hsWithPub := forge(t, jwt.SigningMethodHS256, []byte(signing.pub), map[string]any{"kid": signing.kid}, claims())
		expiredClaims := claims()
		expiredClaims["iat"] = now.Add(-20 * time.Minute).Unix()
		expiredClaims["exp"] = now.Add(-31 * time.Second).Unix()
		wrongIss := claims()
		wrongIss["iss"] = "other"
		noExp := claims()
		delete(noExp, "exp")
		noIat := claims()
		delete(noIat, "iat")
		futureIat := claims()
		futureIat["iat"] = now.Add(time.Hour).Unix()
		badSub := claims()
		badSub["sub"] = "not-a-uuid"
		noTV := claims()
		delete(noTV, "tv")
		unknownUser := claims()
		unknownUser["sub"] = uuid.NewString()

		cases := map[string]string{
			"alg none":                 noneHeader + "." + parts[1] + ".",
			"HS256 with public key":    hsWithPub,
			"wrong key, same kid":      forge(t, jwt.SigningMethodEdDSA, genKey(t), map[string]any{"kid": signing.kid}, claims()),
			"unknown kid":              forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": "nope"}, claims()),
			"missing kid":              forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": nil}, claims()),
			"expired beyond leeway":    forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, expiredClaims),
			"wrong issuer":             forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, wrongIss),
			"no exp":                   forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, noExp),
			"no iat":                   forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, noIat),
			"iat in the future":        forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, futureIat),
			"bad sub":                  forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, badSub),
			"no tv":                    forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, noTV),
			"unknown user":             forge(t, jwt.SigningMethodEdDSA, signing.priv, map[string]any{"kid": signing.kid}, unknownUser),
			"tampered payload":         parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + "." + parts[2],
			"garbage":                  "not.a.jwt",
			"empty":                    "",
			"refresh token as access":  s.RefreshToken,
			"signature of another jwt": parts[0] + "." + parts[1] + "." + strings.Split(good, ".")[2],
		}
		for name, tok := range cases {
			if _, err := e.svc.Verify(e.ctx, tok); err != ErrInvalidToken {
				t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
			}
		}
	})
}

func TestAccessTokenExpiry(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		s := e.signUp("exp@example.com", pw)
		var c jwt.MapClaims
		if _, _, err := jwt.NewParser().ParseUnverified(s.AccessToken, &c); err != nil {
			t.Fatal(err)
		}
		tok, _, _ := jwt.NewParser().ParseUnverified(s.AccessToken, jwt.MapClaims{})
		if tok.Header["alg"] != "EdDSA" || tok.Header["kid"] != e.keys.SigningKeyID() {
			t.Fatalf("header = %v", tok.Header)
		}
		for _, k := range []string{"iss", "sub", "iat", "exp", "jti", "roles", "anon", "tv"} {
			if _, ok := c[k]; !ok {
				t.Errorf("claim %q missing", k)
			}
		}
		e.clock.Advance(15*time.Minute + 20*time.Second) // within the 30 s leeway
		e.mustVerify(e.svc, s.AccessToken)
		e.clock.Advance(15 * time.Second)
		_, err := e.svc.Verify(e.ctx, s.AccessToken)
		wantErr(t, err, ErrInvalidToken)
	})
}

func TestKeyRotation(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		a, b := genKey(t), genKey(t)
		ksB, _ := NewKeySet(b)     // old instance signing with b
		ksAB, _ := NewKeySet(a, b) // rotated: a signs, b still verifies
		ksA, _ := NewKeySet(a)     // b retired
		oldSvc := e.newService(func(c *Config) { c.Keys = ksB })
		s, err := oldSvc.SignUp(e.ctx, "rotate@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		rotated := e.newService(func(c *Config) { c.Keys = ksAB })
		e.mustVerify(rotated, s.AccessToken)
		s2, err := rotated.Refresh(e.ctx, s.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, _ := jwt.NewParser().ParseUnverified(s2.AccessToken, jwt.MapClaims{})
		if tok.Header["kid"] != ksAB.SigningKeyID() {
			t.Fatal("rotated service does not sign with its first key")
		}
		retired := e.newService(func(c *Config) { c.Keys = ksA })
		_, err = retired.Verify(e.ctx, s.AccessToken)
		wantErr(t, err, ErrInvalidToken)
		e.mustVerify(retired, s2.AccessToken)
	})
}

func TestJWKS(t *testing.T) {
	a, b := genKey(t), genKey(t)
	ks, err := NewKeySet(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(ks.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	for i, k := range []ed25519.PrivateKey{a, b} {
		got := set.Keys[i]
		if len(got) != 6 || got["kty"] != "OKP" || got["crv"] != "Ed25519" || got["alg"] != "EdDSA" || got["use"] != "sig" || got["kid"] == "" {
			t.Errorf("key %d = %v", i, got)
		}
		x, err := base64.RawURLEncoding.DecodeString(got["x"])
		if err != nil || !ed25519.PublicKey(x).Equal(k.Public()) {
			t.Errorf("key %d: x does not match", i)
		}
		if strings.Contains(string(ks.JWKS()), base64.RawURLEncoding.EncodeToString(k.Seed())) {
			t.Fatal("JWKS leaks a private key")
		}
	}
	// RFC 7638 test vector (RFC 8037 appendix A.3).
	pub, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := thumbprint(pub); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("thumbprint = %s", got)
	}

	rec := httptest.NewRecorder()
	ks.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, max-age=300" ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || rec.Body.String() != string(ks.JWKS()) {
		t.Fatalf("handler: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	rec = httptest.NewRecorder()
	ks.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func TestLoadOrCreateKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ks, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "jwt-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.SigningKeyID() != ks.SigningKeyID() || !again.signing().priv.Equal(ks.signing().priv) {
		t.Fatal("second load returned another key")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "jwt-keys.json"))
	fromEnv, err := ParseKeys(string(b))
	if err != nil || fromEnv.SigningKeyID() != ks.SigningKeyID() {
		t.Fatalf("ParseKeys(file) = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("stray files: %v", entries)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwt-keys.json"), []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeys(dir); err == nil {
		t.Fatal("broken key file accepted")
	}
}

func TestParseKeys(t *testing.T) {
	a, b := genKey(t), genKey(t)
	js := `[{"kid":"2026-11","private_key":"` + base64.StdEncoding.EncodeToString(a.Seed()) + `"},` +
		`{"kid":"2026-05","private_key":"` + base64.RawURLEncoding.EncodeToString(b.Seed()) + `"}]`
	ks, err := ParseKeys(js)
	if err != nil {
		t.Fatal(err)
	}
	if ks.SigningKeyID() != "2026-11" || !ks.signing().priv.Equal(a) {
		t.Fatal("first key must sign")
	}
	if pub, ok := ks.lookup("2026-05"); !ok || !pub.Equal(b.Public()) {
		t.Fatal("second key not a verification key")
	}
	// kid may be omitted: the thumbprint.
	ks, err = ParseKeys(`[{"private_key":"` + base64.StdEncoding.EncodeToString(a.Seed()) + `"}]`)
	if err != nil || ks.SigningKeyID() != thumbprint(a.Public().(ed25519.PublicKey)) {
		t.Fatalf("default kid: %v", err)
	}
	// PEM, with and without a kid header.
	der, _ := x509.MarshalPKCS8PrivateKey(a)
	der2, _ := x509.MarshalPKCS8PrivateKey(b)
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"kid": "pem-1"}, Bytes: der})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der2}))
	ks, err = ParseKeys(p)
	if err != nil || ks.SigningKeyID() != "pem-1" || len(ks.keys) != 2 || ks.keys[1].kid != thumbprint(b.Public().(ed25519.PublicKey)) {
		t.Fatalf("PEM: %v", err)
	}
	// The README's format: "key" (the key file's "private_key" is kept).
	ks, err = ParseKeys(`[{"kid": "readme", "key": "` + base64.StdEncoding.EncodeToString(a.Seed()) + `"}, {"kid": "old", "private_key": "` + base64.StdEncoding.EncodeToString(b.Seed()) + `"}]`)
	if err != nil || ks.SigningKeyID() != "readme" || !ks.signing().priv.Equal(a) || len(ks.keys) != 2 {
		t.Fatalf("README format {kid, key}: %v", err)
	}
	// Errors state the README's format.
	for _, bad := range []string{"nonsense", `[{"kid":"x"}]`, "[]", `{"kid": 1}`} {
		if _, err := ParseKeys(bad); err == nil || !strings.Contains(err.Error(), `{"kid": "...", "key": "<base64 Ed25519 seed>"}`) {
			t.Errorf("ParseKeys(%q): the error should state the format, got %v", bad, err)
		}
	}
	for _, bad := range []string{
		"", "nonsense", "[]", `[{"kid":"x","key":"AAAA"}]`,
		`[{"kid":"x","key":"` + base64.StdEncoding.EncodeToString(a.Seed()) + `","private_key":"` + base64.StdEncoding.EncodeToString(b.Seed()) + `"}]`, `[{"kid":"x","private_key":"AAAA"}]`, `[{"kid":"x","private_key":"!!"}]`,
		`[{"kid":"x","private_key":"` + base64.StdEncoding.EncodeToString(a.Seed()) + `"},{"kid":"x","private_key":"` + base64.StdEncoding.EncodeToString(b.Seed()) + `"}]`,
		"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
	} {
		if _, err := ParseKeys(bad); err == nil {
			t.Errorf("ParseKeys(%q) accepted", bad)
		}
	}
}

func TestLoadOrCreateKeysConcurrent(t *testing.T) {
	dir := t.TempDir()
	kids := make([]string, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			ks, err := LoadOrCreateKeys(dir)
			errs[i] = err
			if err == nil {
				kids[i] = ks.SigningKeyID()
			}
		})
	}
	wg.Wait()
	for i := range kids {
		if errs[i] != nil || kids[i] != kids[0] {
			t.Fatalf("instance %d: kid %q err %v; instance 0: %q", i, kids[i], errs[i], kids[0])
		}
	}
}

// TestRecheck: the batch re-check of live connections' viewers refuses
// expired tokens, signed-out-everywhere users (on another instance, with
// no cache delay) and deleted users, keeps the rest, and reads the token
// versions of more users than one query holds.
func TestRecheck(t *testing.T) {
	forEachDB(t, func(e *env) {
		other := e.newService(nil) // the instance holding the connections
		verify := func(access string) *access.Viewer {
			t.Helper()
			v, err := other.Verify(e.ctx, access)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		keep := verify(e.signUp("keep@example.com", pw).AccessToken)
		out := e.signUp("out@example.com", pw)
		signedOut := verify(out.AccessToken)
		del := e.signUp("del@example.com", pw)
		deleted := verify(del.AccessToken)
		anon, err := e.svc.SignInAnonymously(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		anonymous := verify(anon.AccessToken)
		// Many connections of one more user, over several queries' worth
		// of viewers.
		var many []*access.Viewer
		for range recheckBatch + 10 {
			many = append(many, keep)
		}

		if err := e.svc.SignOutEverywhere(e.ctx, out.User.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteAccount(e.ctx, del.User.ID, pw); err != nil {
			t.Fatal(err)
		}
		viewers := append([]*access.Viewer{keep, signedOut, deleted, anonymous, nil, {Admin: true}}, many...)
		errs := other.Recheck(e.ctx, viewers)
		if len(errs) != len(viewers) {
			t.Fatalf("%d results for %d viewers", len(errs), len(viewers))
		}
		for i, want := range []error{nil, ErrInvalidToken, ErrInvalidToken, nil, nil, nil} {
			if !errors.Is(errs[i], want) && errs[i] != want {
				t.Errorf("viewer %d: %v, want %v", i, errs[i], want)
			}
		}
		for i, err := range errs[6:] {
			if err != nil {
				t.Fatalf("connection %d of the kept user: %v", i, err)
			}
		}
		// The version cache was refreshed: Verify on this instance sees
		// the sign-out at once too.
		_, err = other.Verify(e.ctx, out.AccessToken)
		wantErr(t, err, ErrInvalidToken)

		// Past expiry (15 min + the 30 s leeway), every token is refused.
		e.clock.Advance(15*time.Minute + 31*time.Second)
		errs = other.Recheck(e.ctx, []*access.Viewer{keep, anonymous, {Admin: true}})
		if errs[0] != ErrInvalidToken || errs[1] != ErrInvalidToken || errs[2] != nil {
			t.Fatalf("after expiry: %v", errs)
		}
	})
}

// TestVerifiedTokenCache: a token is verified once and then found by its
// hash, but the cache never lets a request through that a fresh
// verification would refuse: a sign-out everywhere revokes it, it expires,
// and another token with the same claims but a bad signature is checked on
// its own. Viewers are copies: changing one changes no later request's.
func TestVerifiedTokenCache(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		s := e.signUp("cache@example.com", pw)
		v1, err := e.svc.Verify(e.ctx, s.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if e.svc.verified.Len() != 1 {
			t.Fatalf("%d cached tokens after one verification, want 1", e.svc.verified.Len())
		}
		v1.Roles = append(v1.Roles, "admin")
		v2, err := e.svc.Verify(e.ctx, s.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if v2 == v1 || len(v2.Roles) != 0 {
			t.Fatalf("the cached viewer is shared: %p %p %v", v1, v2, v2.Roles)
		}
		// Same header and claims, another signature.
		parts := strings.Split(s.AccessToken, ".")
		sig := []byte(parts[2])
		sig[3] ^= 1
		_, err = e.svc.Verify(e.ctx, parts[0]+"."+parts[1]+"."+string(sig))
		wantErr(t, err, ErrInvalidToken)

		if err := e.svc.SignOutEverywhere(e.ctx, v2.ID); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Verify(e.ctx, s.AccessToken)
		wantErr(t, err, ErrInvalidToken)

		s2 := e.signUp("cache2@example.com", pw)
		e.mustVerify(e.svc, s2.AccessToken)
		e.clock.Advance(16 * time.Minute)
		_, err = e.svc.Verify(e.ctx, s2.AccessToken)
		wantErr(t, err, ErrInvalidToken)
	})
}
