package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// idEnv is a server with two OpenID Connect providers running inside the
// test: "test" (audiences ios-app and web-app) and "other" (ios-app), and
// an SMTP server that receives its mails.
type idEnv struct {
	s           *kilntest.Server
	test, other *kilntest.OIDCProvider
	mail        *kilntest.SMTPServer
}

// idBackends runs fn against fresh providers and a fresh server on SQLite
// and on PostgreSQL.
func idBackends(t *testing.T, fn func(t *testing.T, e idEnv)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			e := idEnv{test: kilntest.StartOIDCProvider(t), other: kilntest.StartOIDCProvider(t), mail: kilntest.StartSMTP(t)}
			env := []string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret, "KILN_SMTP_ADDR=" + e.mail.Addr,
				"KILN_AUTH_OIDC_PROVIDERS=test|" + e.test.URL + "|ios-app,web-app; other|" + e.other.URL + "|ios-app",
				"KILN_AUTH_REDIRECT_URIS=" + appRedirect}
			if db == "postgres" {
				env = append(env, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			e.s = kilntest.Start(t, serverBin, env...)
			fn(t, e)
		})
	}
}

const idPayload = `accessToken refreshToken user { id email emailVerified anonymous identities { provider email emailVerified } }`

type idSession struct {
	AccessToken, RefreshToken string
	User                      struct {
		ID            string
		Email         *string
		EmailVerified bool
		Anonymous     bool
		Identities    []struct {
			Provider      string
			Email         *string
			EmailVerified bool
		}
	}
}

const signInWithIDToken = `mutation($p: String!, $t: String!, $n: String) { signInWithIdToken(input: {provider: $p, idToken: $t, nonce: $n}) { ` + idPayload + ` } }`

// idSignIn signs in with an ID token as token's bearer ("" for none) and
// returns the session, or fails.
func idSignIn(t *testing.T, s *kilntest.Server, bearer, provider, idToken, nonce string) idSession {
	t.Helper()
	var out struct{ SignInWithIDToken idSession }
	s.MustDoAs(t, bearer, signInWithIDToken, map[string]any{"p": provider, "t": idToken, "n": nonce}, &out)
	return out.SignInWithIDToken
}

// refused checks that r failed with code and extensions.reason (reason ""
// skips the reason).
func refused(t *testing.T, what string, r *kilntest.Response, code, reason string) {
	t.Helper()
	if len(r.Errors) == 0 {
		t.Errorf("%s: accepted, want %s %s", what, code, reason)
		return
	}
	got, _ := r.Errors[0].Extensions["reason"].(string)
	if r.Code() != code || (reason != "" && got != reason) {
		t.Errorf("%s: got %s %q (%s), want %s %s", what, r.Code(), got, r.Errors[0].Message, code, reason)
	}
}

func appleNonce(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// tokenClaims decodes an access token's payload (no verification: the
// server that issued it is the one under test).
func tokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignInWithIDToken: ID tokens of a real provider (discovery and JWKS
// over HTTP, RS256) sign in, in Apple's nonce form (SHA-256 of the raw
// nonce) and Google's (the raw nonce), to one account per identity; every
// way a token can be wrong is refused with its own reason; after the
// provider rotates its keys the new kid is fetched once, and a kid the
// provider never published stays refused.
func TestSignInWithIDToken(t *testing.T) {
	idBackends(t, func(t *testing.T, e idEnv) {
		s, p := e.s, e.test
		claims := func(extra kilntest.Claims) kilntest.Claims {
			c := kilntest.Claims{"sub": "alice-1", "aud": "ios-app", "nonce": appleNonce("n-1"), "email": "Alice@Example.com", "email_verified": "true"}
			for k, v := range extra {
				c[k] = v
			}
			return c
		}
		first := idSignIn(t, s, "", "test", p.IDToken(t, claims(nil)), "n-1")
		u := first.User
		if u.Email == nil || *u.Email != "alice@example.com" || !u.EmailVerified || u.Anonymous ||
			len(u.Identities) != 1 || u.Identities[0].Provider != "test" || !u.Identities[0].EmailVerified {
			t.Fatalf("first sign-in: %+v", u)
		}
		if c := tokenClaims(t, first.AccessToken); c["email_verified"] != true {
			t.Errorf("access token email_verified = %v, want true", c["email_verified"])
		}
		// Google's form: the raw nonce in the token, another audience of
		// the same provider, several audiences with azp.
		again := idSignIn(t, s, "", "test", p.IDToken(t, claims(kilntest.Claims{"nonce": "n-2", "aud": []string{"web-app", "x"}, "azp": "web-app"})), "n-2")
		if again.User.ID != u.ID {
			t.Errorf("the same identity signed in to %s, then %s", u.ID, again.User.ID)
		}
		var v struct {
			Viewer struct {
				ID         string
				Identities []struct{ Provider string }
			}
		}
		s.MustDoAs(t, again.AccessToken, `{ viewer { id identities { provider } } }`, nil, &v)
		if v.Viewer.ID != u.ID || len(v.Viewer.Identities) != 1 {
			t.Errorf("viewer: %+v", v.Viewer)
		}

		try := func(provider, token string, nonce any) *kilntest.Response {
			return s.DoAs(t, "", signInWithIDToken, map[string]any{"p": provider, "t": token, "n": nonce})
		}
		refused(t, "wrong audience", try("test", p.IDToken(t, claims(kilntest.Claims{"aud": "someone-else"})), "n-1"), "UNAUTHENTICATED", "INVALID_AUDIENCE")
		refused(t, "several audiences, azp not ours", try("test", p.IDToken(t, claims(kilntest.Claims{"aud": []string{"ios-app", "x"}, "azp": "x"})), "n-1"), "UNAUTHENTICATED", "INVALID_AUDIENCE")
		refused(t, "wrong issuer", try("test", p.IDToken(t, claims(kilntest.Claims{"iss": "https://evil.example"})), "n-1"), "UNAUTHENTICATED", "INVALID_ISSUER")
		past := time.Now().Add(-time.Hour)
		refused(t, "expired", try("test", p.IDToken(t, claims(kilntest.Claims{"exp": past.Unix(), "iat": past.Add(-10 * time.Minute).Unix()})), "n-1"), "UNAUTHENTICATED", "TOKEN_EXPIRED")
		refused(t, "wrong nonce", try("test", p.IDToken(t, claims(nil)), "n-other"), "UNAUTHENTICATED", "NONCE_MISMATCH")
		refused(t, "nonce missing from the input", try("test", p.IDToken(t, claims(nil)), nil), "UNAUTHENTICATED", "NONCE_MISSING")
		refused(t, "nonce missing from the token", try("test", p.IDToken(t, claims(kilntest.Claims{"nonce": nil})), "n-1"), "UNAUTHENTICATED", "NONCE_MISSING")
		refused(t, "another provider's token", try("test", e.other.IDToken(t, claims(kilntest.Claims{"iss": p.URL})), "n-1"), "UNAUTHENTICATED", "INVALID_SIGNATURE")
		refused(t, "garbage", try("test", "not.a.token", "n-1"), "UNAUTHENTICATED", "INVALID_SIGNATURE")
		if r := try("nope", p.IDToken(t, claims(nil)), "n-1"); r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "provider" {
			t.Errorf("unknown provider: %+v", r.Errors)
		}

		// Key rotation: the new kid is unknown to the server's cached key
		// set, which fetches the JWKS again and accepts the token.
		fetches := p.JWKSFetches.Load()
		p.Rotate(t)
		rotated := idSignIn(t, s, "", "test", p.IDToken(t, claims(nil)), "n-1")
		if rotated.User.ID != u.ID {
			t.Errorf("after rotation: signed in to %s, want %s", rotated.User.ID, u.ID)
		}
		if got := p.JWKSFetches.Load(); got != fetches+1 {
			t.Errorf("JWKS fetched %d times for the rotated key, want 1", got-fetches)
		}
		idSignIn(t, s, "", "test", p.IDToken(t, claims(nil)), "n-1")
		if got := p.JWKSFetches.Load(); got != fetches+1 {
			t.Errorf("JWKS fetched again for a cached key (%d fetches)", got-fetches)
		}
		// A kid the provider never published: refused after a fetch.
		refused(t, "unpublished kid", try("test", p.IDTokenWithUnpublishedKey(t, claims(nil)), "n-1"), "UNAUTHENTICATED", "INVALID_SIGNATURE")
	})
}

// TestIdentityLinking: an identity links to an existing account only when
// the provider asserts verified the email the account holds verified, or
// when the signed-in user links it explicitly; an anonymous user keeps
// their data; identities are listed and unlinked, never the last way to
// sign in; an account with a second factor answers an ID token with the
// MFA challenge.
func TestIdentityLinking(t *testing.T) {
	idBackends(t, func(t *testing.T, e idEnv) {
		s := e.s
		tok := func(p *kilntest.OIDCProvider, sub, email string, verified bool) string {
			c := kilntest.Claims{"sub": sub, "aud": "ios-app", "nonce": "n"}
			if email != "" {
				c["email"], c["email_verified"] = email, verified
			}
			return p.IDToken(t, c)
		}
		try := func(bearer, provider, token string) *kilntest.Response {
			return s.DoAs(t, bearer, signInWithIDToken, map[string]any{"p": provider, "t": token, "n": "n"})
		}

		// A provider account with a verified email; another provider
		// asserting the same verified email signs in to it.
		carol := idSignIn(t, s, "", "test", tok(e.test, "carol-t", "carol@example.com", true), "n")
		viaOther := idSignIn(t, s, "", "other", tok(e.other, "carol-o", "carol@example.com", true), "n")
		if viaOther.User.ID != carol.User.ID || len(viaOther.User.Identities) != 2 {
			t.Errorf("verified email to verified email: %+v, want carol's account %s with two identities", viaOther.User, carol.User.ID)
		}
		// email_verified false never links to the account holding the email.
		refused(t, "unverified email of a verified account", try("", "other", tok(e.other, "mallory-1", "carol@example.com", false)), "CONFLICT", "EMAIL_NOT_VERIFIED")

		// A password account's email is unverified: a provider asserting
		// it verified does not take the account over, nor does an
		// unverified one.
		bob := signUp(t, s, "bob@example.com")
		refused(t, "verified email of an unverified account", try("", "test", tok(e.test, "bob-t", "bob@example.com", true)), "CONFLICT", "ACCOUNT_EXISTS")
		refused(t, "unverified email of an unverified account", try("", "test", tok(e.test, "bob-t", "bob@example.com", false)), "CONFLICT", "EMAIL_NOT_VERIFIED")
		var none struct{ Viewer struct{ Identities []any } }
		s.MustDoAs(t, bob.AccessToken, `{ viewer { identities { provider } } }`, nil, &none)
		if len(none.Viewer.Identities) != 0 {
			t.Errorf("bob got identities from refused sign-ins: %+v", none.Viewer.Identities)
		}
		// Bob links it himself; then the identity signs in to his account.
		link := `mutation($p: String!, $t: String!) { linkIdentity(input: {provider: $p, idToken: $t, nonce: "n"}) { ` + idPayload + ` } }`
		var linked struct{ LinkIdentity idSession }
		s.MustDoAs(t, bob.AccessToken, link, map[string]any{"p": "test", "t": tok(e.test, "bob-t", "bob@example.com", true)}, &linked)
		if linked.LinkIdentity.User.ID != bob.User.ID || len(linked.LinkIdentity.User.Identities) != 1 {
			t.Errorf("linkIdentity: %+v", linked.LinkIdentity.User)
		}
		if got := idSignIn(t, s, "", "test", tok(e.test, "bob-t", "bob@example.com", true), "n"); got.User.ID != bob.User.ID {
			t.Errorf("bob's linked identity signed in to %s", got.User.ID)
		}
		// An identity of another account cannot be linked.
		r := s.DoAs(t, bob.AccessToken, link, map[string]any{"p": "test", "t": tok(e.test, "carol-t", "carol@example.com", true)})
		refused(t, "linking carol's identity to bob", r, "CONFLICT", "IDENTITY_IN_USE")
		refused(t, "linkIdentity without signing in", s.DoAs(t, "", link, map[string]any{"p": "test", "t": tok(e.test, "x", "", false)}), "UNAUTHENTICATED", "")

		// An anonymous user who signs in with a new identity keeps their
		// id and data; their anonymous tokens stop working.
		var anon struct{ SignInAnonymously session }
		s.MustDoAs(t, "", `mutation { signInAnonymously { `+authFields+` } }`, nil, &anon)
		myProfile(t, s, anon.SignInAnonymously.AccessToken, "dave")
		dave := idSignIn(t, s, anon.SignInAnonymously.AccessToken, "test", tok(e.test, "dave-t", "dave@example.com", true), "n")
		if dave.User.ID != anon.SignInAnonymously.User.ID || dave.User.Anonymous || !dave.User.EmailVerified {
			t.Errorf("anonymous upgrade: %+v, want the anonymous account %s", dave.User, anon.SignInAnonymously.User.ID)
		}
		var mine struct {
			Viewer struct{ Profile *struct{ Handle string } }
		}
		s.MustDoAs(t, dave.AccessToken, `{ viewer { profile { handle } } }`, nil, &mine)
		if mine.Viewer.Profile == nil || mine.Viewer.Profile.Handle != "dave" {
			t.Errorf("the upgraded account lost its profile: %+v", mine.Viewer.Profile)
		}
		if r := s.DoAs(t, anon.SignInAnonymously.AccessToken, `{ viewer { id } }`, nil); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("the anonymous access token still works after the upgrade: %s %s", r.Code(), r.Data)
		}

		// Unlinking: carol has two identities and no password.
		unlink := `mutation($p: String!) { unlinkIdentity(provider: $p) }`
		s.MustDoAs(t, carol.AccessToken, unlink, map[string]any{"p": "other"}, nil)
		refused(t, "unlinking the last way to sign in", s.DoAs(t, carol.AccessToken, unlink, map[string]any{"p": "test"}), "CONFLICT", "LAST_SIGN_IN_METHOD")
		refused(t, "unlinking a provider not linked", s.DoAs(t, carol.AccessToken, unlink, map[string]any{"p": "other"}), "NOT_FOUND", "PROVIDER_NOT_LINKED")
		// Bob keeps his password: his only identity can go.
		s.MustDoAs(t, bob.AccessToken, unlink, map[string]any{"p": "test"}, nil)
		signIn(t, s, "bob@example.com")

		// With a second factor, an ID token sign-in answers the MFA
		// challenge instead of tokens.
		var en struct{ EnrollTotp struct{ Secret string } }
		s.MustDoAs(t, carol.AccessToken, `mutation { enrollTotp { secret } }`, nil, &en)
		base := time.Now()
		s.MustDoAs(t, carol.AccessToken, `mutation($c: String!) { confirmTotp(code: $c) { recoveryCodes } }`, map[string]any{"c": totpCode(t, en.EnrollTotp.Secret, base)}, nil)
		r = try("", "test", tok(e.test, "carol-t", "carol@example.com", true))
		mfaToken, _ := func() (string, bool) {
			if len(r.Errors) == 0 {
				return "", false
			}
			s, ok := r.Errors[0].Extensions["mfaToken"].(string)
			return s, ok
		}()
		if r.Code() != "MFA_REQUIRED" || mfaToken == "" {
			t.Fatalf("ID token sign-in with a factor: %s %+v", r.Code(), r.Errors)
		}
		var done struct{ CompleteMfaSignIn idSession }
		s.MustDoAs(t, "", `mutation($t: String!, $c: String!) { completeMfaSignIn(mfaToken: $t, code: $c) { `+idPayload+` } }`,
			map[string]any{"t": mfaToken, "c": totpCode(t, en.EnrollTotp.Secret, base.Add(30*time.Second))}, &done)
		if done.CompleteMfaSignIn.User.ID != carol.User.ID || tokenClaims(t, done.CompleteMfaSignIn.AccessToken)["aal"] != "aal2" {
			t.Errorf("completeMfaSignIn after an ID token: %+v", done.CompleteMfaSignIn.User)
		}
	})
}
