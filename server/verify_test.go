package server

import (
	"regexp"
	"testing"

	"kiln/server/kilntest"
)

var mailCode = regexp.MustCompile(`\b(\d{6})\b`)

// mailedCode returns the 6-digit code of the n-th mail to address.
func mailedCode(t *testing.T, e idEnv, address string, n int) string {
	t.Helper()
	m := e.mail.WaitFor(t, address, n)
	c := mailCode.FindStringSubmatch(m.Data)
	if c == nil {
		t.Fatalf("no code in the mail to %s:\n%s", address, m.Data)
	}
	return c[1]
}

// TestEmailVerification: sign-up mails a verification code through a real
// SMTP server; the code verifies the email once (viewer and token say so),
// wrong codes are refused and five void it; a provider asserting the same
// verified email then signs in to the account, which it could not before.
func TestEmailVerification(t *testing.T) {
	idBackends(t, func(t *testing.T, e idEnv) {
		s := e.s
		const addr = "frank@example.com"
		frank := signUp(t, s, addr)
		code := mailedCode(t, e, addr, 1)
		var v struct{ Viewer struct{ EmailVerified bool } }
		s.MustDoAs(t, frank.AccessToken, `{ viewer { emailVerified } }`, nil, &v)
		if v.Viewer.EmailVerified {
			t.Fatal("emailVerified before the code was used")
		}
		idTok := func() string {
			return e.test.IDToken(t, kilntest.Claims{"sub": "frank-t", "aud": "ios-app", "nonce": "n", "email": addr, "email_verified": true})
		}
		refused(t, "provider sign-in to an unverified account", s.DoAs(t, "", signInWithIDToken, map[string]any{"p": "test", "t": idTok(), "n": "n"}), "CONFLICT", "ACCOUNT_EXISTS")

		verify := `mutation($c: String!) { verifyEmail(code: $c) { accessToken user { emailVerified } } }`
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		refused(t, "wrong code", s.DoAs(t, frank.AccessToken, verify, map[string]any{"c": wrong}), "UNAUTHENTICATED", "INVALID_CODE")
		var ok struct {
			VerifyEmail struct {
				AccessToken string
				User        struct{ EmailVerified bool }
			}
		}
		s.MustDoAs(t, frank.AccessToken, verify, map[string]any{"c": code}, &ok)
		if !ok.VerifyEmail.User.EmailVerified || tokenClaims(t, ok.VerifyEmail.AccessToken)["email_verified"] != true {
			t.Errorf("after verifyEmail: %+v, token %v", ok.VerifyEmail.User, tokenClaims(t, ok.VerifyEmail.AccessToken)["email_verified"])
		}
		refused(t, "code reused", s.DoAs(t, frank.AccessToken, verify, map[string]any{"c": code}), "UNAUTHENTICATED", "INVALID_CODE")
		// Verified on both sides: the provider's identity joins frank's account.
		if got := idSignIn(t, s, "", "test", idTok(), "n"); got.User.ID != frank.User.ID {
			t.Errorf("verified email to verified email signed in to %s, want frank %s", got.User.ID, frank.User.ID)
		}

		// Five wrong codes void a code; a new one can be requested.
		const gina = "gina@example.com"
		g := signUp(t, s, gina)
		first := mailedCode(t, e, gina, 1)
		wrong = "000000"
		if first == wrong {
			wrong = "111111"
		}
		for range 4 {
			refused(t, "wrong code", s.DoAs(t, g.AccessToken, verify, map[string]any{"c": wrong}), "UNAUTHENTICATED", "INVALID_CODE")
		}
		refused(t, "fifth wrong code", s.DoAs(t, g.AccessToken, verify, map[string]any{"c": wrong}), "UNAUTHENTICATED", "TOO_MANY_ATTEMPTS")
		refused(t, "right code after five wrong ones", s.DoAs(t, g.AccessToken, verify, map[string]any{"c": first}), "UNAUTHENTICATED", "INVALID_CODE")
		s.MustDoAs(t, g.AccessToken, `mutation { requestEmailVerification }`, nil, nil)
		s.MustDoAs(t, g.AccessToken, verify, map[string]any{"c": mailedCode(t, e, gina, 2)}, nil)

		// Accounts without an address have nothing to verify.
		var anon struct{ SignInAnonymously session }
		s.MustDoAs(t, "", `mutation { signInAnonymously { `+authFields+` } }`, nil, &anon)
		refused(t, "anonymous requestEmailVerification", s.DoAs(t, anon.SignInAnonymously.AccessToken, `mutation { requestEmailVerification }`, nil), "CONFLICT", "NO_EMAIL")
	})
}
