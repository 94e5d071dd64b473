package server

import (
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"kiln/server/kilntest"
)

// totpCode is the TOTP code of secret for the 30-second step at t.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestTOTP: enrolling and confirming a TOTP factor, sign-ins answered with
// an MFA challenge and completed with a TOTP code or a recovery code (each
// good once), wrong codes voiding the challenge, aal2 access tokens kept
// through refreshes, an aal2 rule refusing aal1 tokens, and turning the
// factor off. The codes used are those of two consecutive 30-second steps
// computed once: the server accepts a step either side of its own, so
// crossing a step boundary during the test changes nothing.
func TestTOTP(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		const erinEmail, pw = "erin@example.com", "correct horse battery"
		signUp(t, s, erinEmail)
		erin := signIn(t, s, erinEmail)
		var en struct{ EnrollTotp struct{ Secret, URI string } }
		s.MustDoAs(t, erin.AccessToken, `mutation { enrollTotp { secret uri } }`, nil, &en)
		if en.EnrollTotp.Secret == "" || len(en.EnrollTotp.URI) < 15 || en.EnrollTotp.URI[:15] != "otpauth://totp/" {
			t.Fatalf("enrollTotp: %+v", en.EnrollTotp)
		}
		secret := en.EnrollTotp.Secret
		base := time.Now()
		code1, code2 := totpCode(t, secret, base), totpCode(t, secret, base.Add(30*time.Second))
		wrong := "000000"
		if wrong == code1 || wrong == code2 {
			wrong = "999999"
		}

		confirm := `mutation($c: String!) { confirmTotp(code: $c) { recoveryCodes session { accessToken refreshToken } } }`
		refused(t, "confirm with a wrong code", s.DoAs(t, erin.AccessToken, confirm, map[string]any{"c": wrong}), "UNAUTHENTICATED", "INVALID_CODE")
		var act struct {
			ConfirmTotp struct {
				RecoveryCodes []string
				Session       struct{ AccessToken, RefreshToken string }
			}
		}
		s.MustDoAs(t, erin.AccessToken, confirm, map[string]any{"c": code1}, &act)
		codes := act.ConfirmTotp.RecoveryCodes
		if len(codes) != 10 {
			t.Fatalf("recovery codes: %v", codes)
		}
		aal2 := act.ConfirmTotp.Session.AccessToken
		if c := tokenClaims(t, aal2); c["aal"] != "aal2" {
			t.Errorf("the session of confirmTotp has aal %v", c["aal"])
		}
		if r := s.DoAs(t, erin.AccessToken, `{ viewer { id } }`, nil); r.Code() != "UNAUTHENTICATED" {
			t.Errorf("erin's aal1 session survived the activation: %s", r.Code())
		}
		var v struct{ Viewer struct{ MfaEnabled bool } }
		s.MustDoAs(t, aal2, `{ viewer { mfaEnabled } }`, nil, &v)
		if !v.Viewer.MfaEnabled {
			t.Error("viewer.mfaEnabled is false after confirmTotp")
		}
		// Refreshing keeps the level.
		var ref struct{ RefreshSession struct{ AccessToken string } }
		s.MustDoAs(t, "", `mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }`, map[string]any{"r": act.ConfirmTotp.Session.RefreshToken}, &ref)
		if c := tokenClaims(t, ref.RefreshSession.AccessToken); c["aal"] != "aal2" {
			t.Errorf("refreshed aal2 session has aal %v", c["aal"])
		}

		// Sign-in answers a challenge instead of tokens.
		challenge := func() string {
			t.Helper()
			r := s.DoAs(t, "", `mutation($e: String!, $p: String!) { signIn(input: {email: $e, password: $p}) { accessToken } }`, map[string]any{"e": erinEmail, "p": pw})
			tok, _ := func() (string, bool) {
				if len(r.Errors) == 0 {
					return "", false
				}
				s, ok := r.Errors[0].Extensions["mfaToken"].(string)
				return s, ok
			}()
			if r.Code() != "MFA_REQUIRED" || tok == "" || string(r.Data) != "null" {
				t.Fatalf("sign-in with a factor: code %s data %s errors %+v", r.Code(), r.Data, r.Errors)
			}
			return tok
		}
		complete := `mutation($t: String!, $c: String!) { completeMfaSignIn(mfaToken: $t, code: $c) { accessToken } }`
		try := func(tok, code string) *kilntest.Response {
			return s.DoAs(t, "", complete, map[string]any{"t": tok, "c": code})
		}
		aalOf := func(r *kilntest.Response) any {
			t.Helper()
			var out struct{ CompleteMfaSignIn struct{ AccessToken string } }
			if len(r.Errors) > 0 {
				t.Fatalf("completeMfaSignIn: %+v", r.Errors)
			}
			r.Decode(t, &out)
			return tokenClaims(t, out.CompleteMfaSignIn.AccessToken)["aal"]
		}

		// Five wrong codes void the challenge: the right code no longer works.
		ch := challenge()
		for i := 1; i <= 4; i++ {
			refused(t, "wrong code", try(ch, wrong), "UNAUTHENTICATED", "INVALID_CODE")
		}
		refused(t, "fifth wrong code", try(ch, wrong), "UNAUTHENTICATED", "TOO_MANY_ATTEMPTS")
		refused(t, "right code on a voided challenge", try(ch, code2), "UNAUTHENTICATED", "")

		// A recovery code signs in once.
		if got := aalOf(try(challenge(), codes[0])); got != "aal2" {
			t.Errorf("recovery code sign-in: aal %v", got)
		}
		ch = challenge()
		refused(t, "recovery code reused", try(ch, codes[0]), "UNAUTHENTICATED", "INVALID_CODE")
		// A TOTP code signs in once (code1 was used up by confirmTotp).
		refused(t, "TOTP code used by confirmTotp", try(ch, code1), "UNAUTHENTICATED", "INVALID_CODE")
		if got := aalOf(try(ch, code2)); got != "aal2" {
			t.Errorf("TOTP sign-in: aal %v", got)
		}
		refused(t, "TOTP code replayed", try(challenge(), code2), "UNAUTHENTICATED", "INVALID_CODE")

		// The aal2 rule (deleting Settings): refused to an aal1 token,
		// granted to an aal2 one.
		del := `mutation($id: ID!) { deleteSettings(id: $id) }`
		bob := signUp(t, s, "bob@example.com")
		bp := myProfile(t, s, bob.AccessToken, "bob")
		var bs struct{ CreateSettings struct{ ID string } }
		s.MustDoAs(t, bob.AccessToken, `mutation($p: ID!) { createSettings(input: {profileID: $p}) { id } }`, map[string]any{"p": bp}, &bs)
		refused(t, "aal1 token deleting under an aal2 rule", s.DoAs(t, bob.AccessToken, del, map[string]any{"id": bs.CreateSettings.ID}), "FORBIDDEN", "")
		ep := myProfile(t, s, aal2, "erin")
		var es struct{ CreateSettings struct{ ID string } }
		s.MustDoAs(t, aal2, `mutation($p: ID!) { createSettings(input: {profileID: $p}) { id } }`, map[string]any{"p": ep}, &es)
		s.MustDoAs(t, aal2, del, map[string]any{"id": es.CreateSettings.ID}, nil)
		// Turning a factor off needs aal2 (checked before anything else).
		refused(t, "bob turns off a factor with aal1", s.DoAs(t, bob.AccessToken, `mutation { disableTotp }`, nil), "FORBIDDEN", "AAL2_REQUIRED")

		// Turning the factor off: sign-ins give tokens again.
		s.MustDoAs(t, aal2, `mutation { disableTotp }`, nil, nil)
		if got := signIn(t, s, erinEmail); got.AccessToken == "" {
			t.Error("no tokens after disableTotp")
		}
	})
}
