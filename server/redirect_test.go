package server

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

const appRedirect = "com.example.app:/auth"

// redirectEnv is a server whose provider "test" has a redirect client
// (web-client), allowing appRedirect and an https universal link.
func redirectEnv(t *testing.T, fn func(t *testing.T, s *kilntest.Server, p *kilntest.OIDCProvider)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			p := kilntest.StartOIDCProvider(t)
			p.AddClient("web-client", "s3cret")
			env := []string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret,
				"KILN_AUTH_OIDC_PROVIDERS=test|" + p.URL + "|ios-app",
				"KILN_AUTH_REDIRECT_CLIENTS=test|web-client|s3cret",
				"KILN_AUTH_REDIRECT_URIS=" + appRedirect + ", https://app.example/auth"}
			if db == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			fn(t, kilntest.Start(t, serverBin, env...), p)
		})
	}
}

const startRedirect = `mutation($p: String!, $r: String!, $c: String) { startRedirectSignIn(input: {provider: $p, redirectUri: $r, codeChallenge: $c}) }`

const redirectCode = `mutation($c: String!, $v: String) { signInWithRedirectCode(code: $c, codeVerifier: $v) { ` + idPayload + ` } }`

// browser is a user agent that does not follow redirects by itself.
var browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// hop GETs u and returns the redirect's Location, or "" with the status
// and body of an answer that is not a redirect.
func hop(t *testing.T, u string) (location string, status int, body string) {
	t.Helper()
	resp, err := browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusFound {
		return resp.Header.Get("Location"), resp.StatusCode, ""
	}
	return "", resp.StatusCode, string(b)
}

// startFlow asks the server for the authorization URL.
func startFlow(t *testing.T, s *kilntest.Server, challenge any) string {
	t.Helper()
	var out struct{ StartRedirectSignIn string }
	s.MustDoAs(t, "", startRedirect, map[string]any{"p": "test", "r": appRedirect, "c": challenge}, &out)
	return out.StartRedirectSignIn
}

// atProvider opens the authorization URL (the user signs in at once) and
// returns the server callback URL the provider redirects to.
func atProvider(t *testing.T, authURL string) string {
	t.Helper()
	loc, status, body := hop(t, authURL)
	if loc == "" {
		t.Fatalf("provider answered %d %s", status, body)
	}
	return loc
}

// toApp follows the callback and returns the app redirect's query.
func toApp(t *testing.T, callback string) url.Values {
	t.Helper()
	loc, status, body := hop(t, callback)
	if !strings.HasPrefix(loc, appRedirect+"?") {
		t.Fatalf("callback: got %d %q %s, want a redirect to %s", status, loc, body, appRedirect)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestRedirectSignIn drives the browser redirect flow over HTTP against a
// real provider in the test: the authorization URL (code, PKCE S256,
// state, nonce), the provider's redirect to the server's callback, the
// code exchange at the provider's token endpoint with the client secret
// and verifier, the redirect to the app with a one-time code only, and
// its exchange through GraphQL. Refused: a tampered state, a reused state,
// a redirect URI off the allow-list (before any redirect), a reused
// exchange code, a PKCE verifier that does not match at the provider, and
// a wrong app verifier.
func TestRedirectSignIn(t *testing.T) {
	redirectEnv(t, func(t *testing.T, s *kilntest.Server, p *kilntest.OIDCProvider) {
		p.SignInAs(kilntest.Claims{"sub": "rd-1", "email": "Rd@Example.com", "email_verified": true})
		authURL := startFlow(t, s, nil)
		au, err := url.Parse(authURL)
		if err != nil {
			t.Fatal(err)
		}
		aq := au.Query()
		if !strings.HasPrefix(authURL, p.URL+"/authorize?") || aq.Get("response_type") != "code" || aq.Get("client_id") != "web-client" ||
			aq.Get("code_challenge_method") != "S256" || len(aq.Get("code_challenge")) != 43 || aq.Get("state") == "" || aq.Get("nonce") == "" ||
			aq.Get("redirect_uri") != s.URL+"/auth/callback" || !strings.Contains(aq.Get("scope"), "openid") {
			t.Fatalf("authorization URL: %s", authURL)
		}
		callback := atProvider(t, authURL)

		// A tampered state goes nowhere; the real one still works.
		cu, _ := url.Parse(callback)
		cq := cu.Query()
		state := cq.Get("state")
		cq.Set("state", state[:len(state)-1]+map[bool]string{true: "B", false: "A"}[strings.HasSuffix(state, "A")])
		cu.RawQuery = cq.Encode()
		if loc, status, _ := hop(t, cu.String()); loc != "" || status != http.StatusBadRequest {
			t.Errorf("tampered state: got %d %q, want 400 and no redirect", status, loc)
		}

		// An authorization response naming another issuer (RFC 9207, a
		// mix-up attack) is refused: the app gets an error, no code.
		mixed := atProvider(t, startFlow(t, s, nil))
		mu, _ := url.Parse(mixed)
		mq := mu.Query()
		mq.Set("iss", "https://other-provider.example")
		mu.RawQuery = mq.Encode()
		if q := toApp(t, mu.String()); q.Get("error") != "issuer_mismatch" || q.Get("code") != "" {
			t.Errorf("another issuer in the callback: the app got %v, want error=issuer_mismatch", q)
		}

		q := toApp(t, callback)
		if len(q) != 1 || q.Get("code") == "" {
			t.Fatalf("the app redirect carries %v, want only a code", q)
		}
		var out struct{ SignInWithRedirectCode idSession }
		s.MustDoAs(t, "", redirectCode, map[string]any{"c": q.Get("code")}, &out)
		u := out.SignInWithRedirectCode.User
		if u.Email == nil || *u.Email != "rd@example.com" || !u.EmailVerified || len(u.Identities) != 1 || u.Identities[0].Provider != "test" {
			t.Fatalf("redirect sign-in: %+v", u)
		}
		if out.SignInWithRedirectCode.AccessToken == "" || out.SignInWithRedirectCode.RefreshToken == "" {
			t.Error("no tokens from the exchange")
		}

		// The state and the exchange code work once.
		if loc, status, _ := hop(t, callback); loc != "" || status != http.StatusBadRequest {
			t.Errorf("reused state: got %d %q, want 400 and no redirect", status, loc)
		}
		refused(t, "reused exchange code", s.DoAs(t, "", redirectCode, map[string]any{"c": q.Get("code")}), "UNAUTHENTICATED", "INVALID_CODE")
		refused(t, "made-up exchange code", s.DoAs(t, "", redirectCode, map[string]any{"c": "x"}), "UNAUTHENTICATED", "INVALID_CODE")

		// The same identity signs in to the same account again.
		var again struct{ SignInWithRedirectCode idSession }
		s.MustDoAs(t, "", redirectCode, map[string]any{"c": toApp(t, atProvider(t, startFlow(t, s, nil))).Get("code")}, &again)
		if again.SignInWithRedirectCode.User.ID != u.ID {
			t.Errorf("second redirect sign-in: account %s, want %s", again.SignInWithRedirectCode.User.ID, u.ID)
		}

		// A redirect URI off the allow-list is refused before anything.
		r := s.DoAs(t, "", startRedirect, map[string]any{"p": "test", "r": "com.evil.app:/auth"})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "redirectUri" {
			t.Errorf("redirect URI off the allow-list: %s %+v", r.Code(), r.Errors)
		}
		if strings.Contains(string(r.Data), "http") {
			t.Errorf("refused start answered data %s", r.Data)
		}
		refused(t, "unknown provider", s.DoAs(t, "", startRedirect, map[string]any{"p": "nope", "r": appRedirect}), "BAD_USER_INPUT", "")

		// A changed code_challenge: the server's verifier no longer matches
		// at the provider, which refuses the exchange; the app gets an
		// error and no code.
		refusals := p.TokenRefusals.Load()
		au, _ = url.Parse(startFlow(t, s, nil))
		aq = au.Query()
		sum := sha256.Sum256([]byte("an attacker's verifier"))
		aq.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		au.RawQuery = aq.Encode()
		q = toApp(t, atProvider(t, au.String()))
		if q.Get("error") != "invalid_grant" || q.Has("code") {
			t.Errorf("PKCE mismatch at the provider: the app got %v, want error=invalid_grant", q)
		}
		if got := p.TokenRefusals.Load() - refusals; got != 1 {
			t.Errorf("the provider refused %d exchanges, want 1", got)
		}

		// The app's own PKCE: the exchange needs the verifier.
		verifier := "app-verifier-0123456789-0123456789-0123456789"
		asum := sha256.Sum256([]byte(verifier))
		challenge := base64.RawURLEncoding.EncodeToString(asum[:])
		code := toApp(t, atProvider(t, startFlow(t, s, challenge))).Get("code")
		refused(t, "exchange without the app's verifier", s.DoAs(t, "", redirectCode, map[string]any{"c": code, "v": "wrong"}), "UNAUTHENTICATED", "INVALID_CODE")
		code = toApp(t, atProvider(t, startFlow(t, s, challenge))).Get("code")
		var pk struct{ SignInWithRedirectCode idSession }
		s.MustDoAs(t, "", redirectCode, map[string]any{"c": code, "v": verifier}, &pk)
		if pk.SignInWithRedirectCode.User.ID != u.ID {
			t.Errorf("exchange with the app's verifier: account %s, want %s", pk.SignInWithRedirectCode.User.ID, u.ID)
		}
		refused(t, "a malformed codeChallenge", s.DoAs(t, "", startRedirect, map[string]any{"p": "test", "r": appRedirect, "c": "short"}), "BAD_USER_INPUT", "")

		// An anonymous caller keeps its account: it becomes the provider's.
		var anon struct{ SignInAnonymously idSession }
		s.MustDoAs(t, "", `mutation { signInAnonymously { `+idPayload+` } }`, nil, &anon)
		p.SignInAs(kilntest.Claims{"sub": "rd-2"})
		var up struct{ SignInWithRedirectCode idSession }
		s.MustDoAs(t, anon.SignInAnonymously.AccessToken, redirectCode,
			map[string]any{"c": toApp(t, atProvider(t, startFlow(t, s, nil))).Get("code")}, &up)
		if up.SignInWithRedirectCode.User.ID != anon.SignInAnonymously.User.ID || up.SignInWithRedirectCode.User.Anonymous {
			t.Errorf("anonymous caller: got %+v, want account %s upgraded", up.SignInWithRedirectCode.User, anon.SignInAnonymously.User.ID)
		}

		// With a second factor, the exchange answers the MFA challenge.
		var en struct{ EnrollTotp struct{ Secret string } }
		tok := up.SignInWithRedirectCode.AccessToken
		s.MustDoAs(t, tok, `mutation { enrollTotp { secret } }`, nil, &en)
		s.MustDoAs(t, tok, `mutation($c: String!) { confirmTotp(code: $c) { recoveryCodes } }`, map[string]any{"c": totpCode(t, en.EnrollTotp.Secret, time.Now())}, nil)
		r = s.DoAs(t, "", redirectCode, map[string]any{"c": toApp(t, atProvider(t, startFlow(t, s, nil))).Get("code")})
		if r.Code() != "MFA_REQUIRED" || r.Errors[0].Extensions["mfaToken"] == nil {
			t.Errorf("redirect sign-in with a factor: %s %+v", r.Code(), r.Errors)
		}
	})
}
