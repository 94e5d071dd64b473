package server

import (
	"bytes"
	"testing"
)

// TestEmailCodeSignIn: passwordless sign-in through a real SMTP server.
// requestEmailCode answers the same for a registered and an unknown
// address and mails both; the code creates the unknown address's account
// (verified) and signs in to the registered one (marking it verified);
// codes work once, wrong codes are limited, and an unknown address is
// answered like a wrong code.
func TestEmailCodeSignIn(t *testing.T) {
	idBackends(t, func(t *testing.T, e idEnv) {
		s := e.s
		const known, unknown = "jack@example.com", "kate@example.com"
		jack := signUp(t, s, known) // also mails jack a verification code (mail #1)
		req := `mutation($e: String!) { requestEmailCode(email: $e) }`
		_, kb := acctDo(t, s, "", "", req, map[string]any{"e": known})
		_, ub := acctDo(t, s, "", "", req, map[string]any{"e": unknown})
		if !bytes.Equal(kb, ub) {
			t.Errorf("requestEmailCode answers differ: %s vs %s", kb, ub)
		}
		jackCode := mailedCode(t, e, known, 2)
		kateCode := mailedCode(t, e, unknown, 1)

		signIn := `mutation($e: String!, $c: String!) { signInWithEmailCode(email: $e, code: $c) { accessToken user { id email emailVerified } } }`
		type out struct {
			SignInWithEmailCode struct {
				AccessToken string
				User        struct {
					ID            string
					Email         *string
					EmailVerified bool
				}
			}
		}
		var k out
		s.MustDoAs(t, "", signIn, map[string]any{"e": unknown, "c": kateCode}, &k)
		if u := k.SignInWithEmailCode.User; u.Email == nil || *u.Email != unknown || !u.EmailVerified {
			t.Errorf("new account by email code: %+v", u)
		}
		refused(t, "code reused", s.DoAs(t, "", signIn, map[string]any{"e": unknown, "c": kateCode}), "UNAUTHENTICATED", "INVALID_CODE")

		// Wrong codes: four INVALID_CODE, the fifth voids the code.
		wrong := "000000"
		if wrong == jackCode {
			wrong = "111111"
		}
		for range 4 {
			refused(t, "wrong code", s.DoAs(t, "", signIn, map[string]any{"e": known, "c": wrong}), "UNAUTHENTICATED", "INVALID_CODE")
		}
		refused(t, "fifth wrong code", s.DoAs(t, "", signIn, map[string]any{"e": known, "c": wrong}), "UNAUTHENTICATED", "TOO_MANY_ATTEMPTS")
		refused(t, "right code after five wrong", s.DoAs(t, "", signIn, map[string]any{"e": known, "c": jackCode}), "UNAUTHENTICATED", "INVALID_CODE")
		// A new code signs in to jack's password account and verifies it.
		acctDo(t, s, "", "", req, map[string]any{"e": known})
		var j out
		s.MustDoAs(t, "", signIn, map[string]any{"e": known, "c": mailedCode(t, e, known, 3)}, &j)
		if u := j.SignInWithEmailCode.User; u.ID != jack.User.ID || !u.EmailVerified {
			t.Errorf("email code to a password account: %+v, want %s verified", u, jack.User.ID)
		}
		// An address nobody requested a code for: the same refusal.
		refused(t, "no code requested", s.DoAs(t, "", signIn, map[string]any{"e": "nobody@example.com", "c": "123456"}), "UNAUTHENTICATED", "INVALID_CODE")
	})
}
