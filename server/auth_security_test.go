package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// Tests of issue #12 items 9 (account enumeration), 13 (lockout by others)
// and 20 (password policy), over HTTP against the real server on SQLite and
// PostgreSQL.

const (
	acctOwnerPw  = "correct horse battery"
	acctGuessPw  = "guessing secret phrase"
	acctResetURL = "https://app.example/reset?token=%s"
)

// acctBackends runs fn against a fresh server on SQLite and on PostgreSQL
// that trusts X-Forwarded-For (so a test can speak from several client
// addresses) and logs mails in full (development mode).
func acctBackends(t *testing.T, env []string, fn func(t *testing.T, s *kilntest.Server)) {
	env = append([]string{"KILN_ADMIN_SECRET=" + adminSecret, "KILN_TRUST_PROXY=true", "KILN_RESET_URL=" + acctResetURL}, env...)
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, append([]string{"KILN_DATA_DIR=" + t.TempDir()}, env...)...))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, kilntest.Start(t, serverBin, append([]string{"KILN_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + kilntest.PostgresURL(t)}, env...)...))
	})
}

// acctDo posts a GraphQL request from client address ip ("" for none) with
// an optional bearer token, and returns the response and its raw body.
func acctDo(t *testing.T, s *kilntest.Server, ip, token, query string, vars map[string]any) (*kilntest.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("graphql request: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	r := &kilntest.Response{Status: res.StatusCode}
	if err := json.Unmarshal(body, r); err != nil {
		t.Fatalf("response (status %d) is not JSON: %s", res.StatusCode, body)
	}
	return r, body
}

// acctSession is the data of a signUp, signIn or linkAccount answer.
type acctSession struct {
	AccessToken, RefreshToken string
	User                      struct{ ID, Email string }
}

const acctFields = `accessToken refreshToken expiresAt user { id email anonymous roles createdAt }`

func acctCredentials(field, email, pw string) (string, map[string]any) {
	return `mutation($e: String!, $p: String!) { ` + field + `(input: {email: $e, password: $p}) { ` + acctFields + ` } }`,
		map[string]any{"e": email, "p": pw}
}

// acctMust runs a credentials mutation (signUp, signIn, linkAccount) and
// returns its session, failing on any error.
func acctMust(t *testing.T, s *kilntest.Server, ip, token, field, email, pw string) acctSession {
	t.Helper()
	q, vars := acctCredentials(field, email, pw)
	r, body := acctDo(t, s, ip, token, q, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("%s(%s): %s", field, email, body)
	}
	var out map[string]acctSession
	r.Decode(t, &out)
	return out[field]
}

var acctVolatile = map[string]bool{"accessToken": true, "refreshToken": true, "expiresAt": true, "id": true, "createdAt": true}

// acctShape is a response body with ids, tokens and timestamps blanked and
// the email in it replaced by "EMAIL", for comparing two answers.
func acctShape(t *testing.T, status int, body []byte, email string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	var blank func(any) any
	blank = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, val := range x {
				if acctVolatile[k] {
					x[k] = "BLANK"
				} else {
					x[k] = blank(val)
				}
			}
		case []any:
			for i := range x {
				x[i] = blank(x[i])
			}
		case string:
			if x == email {
				return "EMAIL"
			}
		}
		return x
	}
	b, _ := json.Marshal(blank(v))
	return fmt.Sprintf("%d %s", status, b)
}

// acctSame fails unless the answers for a registered and a new email are
// the same once ids, tokens, timestamps and the email are blanked.
func acctSame(t *testing.T, what string, registered, fresh string) {
	t.Helper()
	if registered != fresh {
		t.Fatalf("%s: registered and new emails answer differently:\nregistered: %s\nnew:        %s", what, registered, fresh)
	}
}

var acctMailRE = regexp.MustCompile(`msg="mail \(dev: not sent\)" to=(\S+) subject="([^"]*)"(?: body="((?:[^"\\]|\\.)*)")?`)

type acctMail struct{ To, Subject, Body string }

// acctMails returns the mails the server logged so far.
func acctMails(s *kilntest.Server) []acctMail {
	var out []acctMail
	for _, m := range acctMailRE.FindAllStringSubmatch(s.Logs(), -1) {
		out = append(out, acctMail{To: m[1], Subject: m[2], Body: m[3]})
	}
	return out
}

// acctWaitMails waits (a bounded number of polls) until the server logged
// at least n mails to addr with subject, and returns them.
func acctWaitMails(t *testing.T, s *kilntest.Server, addr, subject string, n int) []acctMail {
	t.Helper()
	var got []acctMail
	for range 200 {
		got = got[:0]
		for _, m := range acctMails(s) {
			if m.To == addr && m.Subject == subject {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%d mails %q to %s logged, want %d; mails: %+v", len(got), subject, addr, n, acctMails(s))
	return nil
}

const (
	acctNoticeSubject = "Someone signed up with your email address"
	acctResetSubject  = "Reset your password"
)

// TestEnumerationSignUpSignIn: signUp and signIn answer a registered email
// exactly like a new one; signUp with a registered email and another
// password makes a separate (pending) account that signIn opens, leaves
// the owner's account untouched and mails the owner a notice.
func TestEnumerationSignUpSignIn(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		const taken, free = "owner@example.com", "newcomer@example.com"
		owner := acctMust(t, s, "", "", "signUp", taken, acctOwnerPw)

		// signUp with another password.
		q, v := acctCredentials("signUp", taken, acctGuessPw)
		r1, b1 := acctDo(t, s, "", "", q, v)
		q, v = acctCredentials("signUp", free, acctGuessPw)
		r2, b2 := acctDo(t, s, "", "", q, v)
		acctSame(t, "signUp", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, free))
		if len(r1.Errors) > 0 {
			t.Fatalf("signUp with a registered email failed: %s", b1)
		}
		var pending map[string]acctSession
		r1.Decode(t, &pending)
		p := pending["signUp"]
		if p.User.ID == owner.User.ID || p.User.Email != taken {
			t.Fatalf("signUp with a registered email gave %+v", p.User)
		}
		var viewer struct{ Viewer struct{ ID, Email string } }
		s.MustDoAs(t, p.AccessToken, `{ viewer { id email } }`, nil, &viewer)
		if viewer.Viewer.ID != p.User.ID || viewer.Viewer.Email != taken {
			t.Fatalf("viewer of the new account: %+v", viewer.Viewer)
		}

		// signUp with the owner's password, and signUp again with the new
		// password: they sign in, as they do for the new email.
		for _, pw := range []string{acctOwnerPw, acctGuessPw} {
			q, v = acctCredentials("signUp", taken, pw)
			r1, b1 = acctDo(t, s, "", "", q, v)
			q, v = acctCredentials("signUp", free, acctGuessPw)
			r2, b2 = acctDo(t, s, "", "", q, v)
			acctSame(t, "signUp again", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, free))
		}

		// signIn: a wrong password and an unknown email.
		q, v = acctCredentials("signIn", taken, "wrong secret phrase")
		r1, b1 = acctDo(t, s, "", "", q, v)
		q, v = acctCredentials("signIn", "nobody@example.com", "wrong secret phrase")
		r2, b2 = acctDo(t, s, "", "", q, v)
		acctSame(t, "signIn", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, "nobody@example.com"))
		if r1.Code() != "UNAUTHENTICATED" {
			t.Fatalf("signIn with a wrong password: %s", b1)
		}
		// A weak password is refused alike.
		q, v = acctCredentials("signUp", taken, "12345678")
		r1, b1 = acctDo(t, s, "", "", q, v)
		q, v = acctCredentials("signUp", free, "12345678")
		r2, b2 = acctDo(t, s, "", "", q, v)
		acctSame(t, "signUp weak", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, free))

		// Each password opens its own account; the owner's is untouched.
		if in := acctMust(t, s, "", "", "signIn", taken, acctGuessPw); in.User.ID != p.User.ID {
			t.Fatalf("signIn with the new password opened %s, want the new account %s", in.User.ID, p.User.ID)
		}
		if in := acctMust(t, s, "", "", "signIn", taken, acctOwnerPw); in.User.ID != owner.User.ID {
			t.Fatalf("signIn with the owner's password opened %s, want %s", in.User.ID, owner.User.ID)
		}
		s.MustDoAs(t, owner.AccessToken, `{ viewer { id } }`, nil, nil) // the owner's sessions live on

		// The owner got one notice; the new email none (only the
		// verification code every new account's address gets).
		acctWaitMails(t, s, taken, acctNoticeSubject, 1)
		for _, m := range acctMails(s) {
			if m.To == free && m.Subject != "Your verification code" {
				t.Errorf("mail to the new email: %+v", m)
			}
			if m.To == taken && m.Subject == acctNoticeSubject && (strings.Contains(m.Body, p.User.ID) || strings.Contains(m.Body, acctGuessPw)) {
				t.Errorf("the notice reveals the new account: %+v", m)
			}
		}
		if n := len(acctWaitMails(t, s, taken, acctNoticeSubject, 1)); n != 1 {
			t.Errorf("%d notices, want 1", n)
		}
	})
}

// TestEnumerationLinkAccount: linkAccount to a registered email answers
// like linkAccount to a new one (it used to answer "email is not
// available"); the linked account opens with its password, the owner's
// stays untouched, and the owner gets a notice.
func TestEnumerationLinkAccount(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		const taken, free = "holder@example.com", "linker@example.com"
		owner := acctMust(t, s, "", "", "signUp", taken, acctOwnerPw)
		anon := func() acctSession {
			var out struct{ SignInAnonymously acctSession }
			s.MustDoAs(t, "", `mutation { signInAnonymously { `+acctFields+` } }`, nil, &out)
			return out.SignInAnonymously
		}
		a, b := anon(), anon()
		q, v := acctCredentials("linkAccount", taken, acctGuessPw)
		r1, b1 := acctDo(t, s, "", a.AccessToken, q, v)
		q, v = acctCredentials("linkAccount", free, acctGuessPw)
		r2, b2 := acctDo(t, s, "", b.AccessToken, q, v)
		acctSame(t, "linkAccount", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, free))
		if len(r1.Errors) > 0 {
			t.Fatalf("linkAccount to a registered email: %s", b1)
		}
		var linked map[string]acctSession
		r1.Decode(t, &linked)
		if l := linked["linkAccount"]; l.User.ID != a.User.ID || l.User.Email != taken {
			t.Fatalf("linked: %+v", l.User)
		}
		if in := acctMust(t, s, "", "", "signIn", taken, acctGuessPw); in.User.ID != a.User.ID {
			t.Fatalf("signIn with the linked password opened %s, want the linked account %s", in.User.ID, a.User.ID)
		}
		if in := acctMust(t, s, "", "", "signIn", taken, acctOwnerPw); in.User.ID != owner.User.ID {
			t.Fatalf("owner: %s", in.User.ID)
		}
		acctWaitMails(t, s, taken, acctNoticeSubject, 1)

		// A weak password is refused alike.
		c := anon()
		q, v = acctCredentials("linkAccount", taken, "password1")
		r1, b1 = acctDo(t, s, "", c.AccessToken, q, v)
		q, v = acctCredentials("linkAccount", free+".org", "password1")
		r2, b2 = acctDo(t, s, "", c.AccessToken, q, v)
		acctSame(t, "linkAccount weak", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, free+".org"))
		if r1.Code() != "BAD_USER_INPUT" {
			t.Fatalf("weak password: %s", b1)
		}

		// linkAccount counts against the client address's limit like
		// signUp: once the address used its burst (20), it is refused.
		d := anon()
		const busy = "203.0.113.50"
		for range 20 {
			acctDo(t, s, busy, "", `mutation { signInAnonymously { accessToken } }`, nil)
		}
		q, v = acctCredentials("linkAccount", "late@example.com", acctGuessPw)
		r, body := acctDo(t, s, busy, d.AccessToken, q, v)
		if r.Code() != "RATE_LIMITED" {
			t.Fatalf("linkAccount from a client address over its limit: %s", body)
		}
	})
}

// TestEnumerationPasswordReset: requestPasswordReset answers alike for a
// registered and an unknown email; only the account holding the email gets
// a reset mail, never a pending account of that email.
func TestEnumerationPasswordReset(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		const taken = "resetter@example.com"
		owner := acctMust(t, s, "", "", "signUp", taken, acctOwnerPw)
		p := acctMust(t, s, "", "", "signUp", taken, acctGuessPw) // pending account
		const q = `mutation($e: String!) { requestPasswordReset(email: $e) }`
		r1, b1 := acctDo(t, s, "", "", q, map[string]any{"e": taken})
		r2, b2 := acctDo(t, s, "", "", q, map[string]any{"e": "unknown@example.com"})
		acctSame(t, "requestPasswordReset", acctShape(t, r1.Status, b1, taken), acctShape(t, r2.Status, b2, "unknown@example.com"))
		if len(r1.Errors) > 0 {
			t.Fatalf("requestPasswordReset: %s", b1)
		}
		mails := acctWaitMails(t, s, taken, acctResetSubject, 1)
		if len(mails) != 1 {
			t.Fatalf("%d reset mails, want 1 (for the holding account only)", len(mails))
		}
		m := regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`).FindStringSubmatch(mails[0].Body)
		if m == nil {
			t.Fatalf("no token in %q", mails[0].Body)
		}
		var ok struct{ ResetPassword bool }
		s.MustDoAs(t, "", `mutation($t: String!) { resetPassword(token: $t, newPassword: "brand new secret phrase") }`, map[string]any{"t": m[1]}, &ok)
		if in := acctMust(t, s, "", "", "signIn", taken, "brand new secret phrase"); in.User.ID != owner.User.ID {
			t.Fatalf("the reset opened %s, want the holder %s", in.User.ID, owner.User.ID)
		}
		if in := acctMust(t, s, "", "", "signIn", taken, acctGuessPw); in.User.ID != p.User.ID {
			t.Fatalf("the pending account changed: %s", in.User.ID)
		}
		for _, m := range acctMails(s) {
			if m.To == "unknown@example.com" {
				t.Errorf("mail to an unknown email: %+v", m)
			}
		}
	})
}

// TestNoLockoutByOthers: an attacker hammering an email from many client
// addresses (one request with many aliases among them) exhausts its own
// limits and the email's limit for unknown addresses, but the owner signing
// in from their own address still gets in (the limit used to be per email
// alone: one wrong attempt per second from anywhere locked the owner out).
func TestNoLockoutByOthers(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		const victim, home = "victim@example.com", "198.51.100.10"
		acctMust(t, s, home, "", "signUp", victim, acctOwnerPw)

		// One attacker address, one request of 12 aliased attempts: each
		// alias counts once, 10 per email and address.
		var b strings.Builder
		b.WriteString("mutation {")
		for i := range 12 {
			fmt.Fprintf(&b, ` a%d: signIn(input: {email: %q, password: "guess-%d-xx"}) { accessToken }`, i, victim, i)
		}
		b.WriteString(" }")
		r, body := acctDo(t, s, "203.0.113.1", "", b.String(), nil)
		codes := map[string]int{}
		for _, e := range r.Errors {
			c, _ := e.Extensions["code"].(string)
			codes[c]++
		}
		if codes["UNAUTHENTICATED"] != 10 || codes["RATE_LIMITED"] != 2 {
			t.Fatalf("12 aliased attempts: %v\n%s", codes, body)
		}
		// Many attacker addresses, one attempt each, until the email's
		// limit (burst 50) is exhausted for unknown addresses.
		limited := false
		for i := range 150 {
			q, v := acctCredentials("signIn", victim, fmt.Sprintf("guess %d secret", i))
			r, _ := acctDo(t, s, fmt.Sprintf("203.0.%d.%d", 100+i/100, i%100+1), "", q, v)
			if r.Code() == "RATE_LIMITED" {
				limited = true
				break
			}
			if r.Code() != "UNAUTHENTICATED" {
				t.Fatalf("attempt %d: %+v", i, r.Errors)
			}
		}
		if !limited {
			t.Fatal("162 attempts from 151 addresses on one email were never limited")
		}
		q, v := acctCredentials("signIn", victim, acctOwnerPw)
		if r, body := acctDo(t, s, "192.0.2.77", "", q, v); r.Code() != "RATE_LIMITED" {
			t.Fatalf("a new address after the flood: %s", body)
		}
		// The owner, from home, gets in.
		for range 3 {
			in := acctMust(t, s, home, "", "signIn", victim, acctOwnerPw)
			if in.User.Email != victim {
				t.Fatalf("owner: %+v", in)
			}
		}
	})
}

// TestPasswordPolicyHTTP: weak new passwords are refused with BAD_USER_INPUT
// naming the field and the reason, on every path that sets a password.
func TestPasswordPolicyHTTP(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		weak := func(what string, r *kilntest.Response, body []byte, field, reason string) {
			t.Helper()
			if r.Code() != "BAD_USER_INPUT" || len(r.Errors) != 1 || r.Errors[0].Extensions["field"] != field ||
				!strings.Contains(r.Errors[0].Message, reason) {
				t.Errorf("%s: %s; want BAD_USER_INPUT on %s (%s)", what, body, field, reason)
			}
		}
		for pw, reason := range map[string]string{
			"12345678": "too easy to guess", "        ": "at least 8 characters", "password": "too easy to guess",
			" abc123 ": "at least 8 characters", "qwertyuiop": "too easy to guess", "Password1": "too easy to guess",
			"strong@example.com": "too easy to guess",
		} {
			q, v := acctCredentials("signUp", "strong@example.com", pw)
			r, body := acctDo(t, s, "", "", q, v)
			weak(fmt.Sprintf("signUp(%q)", pw), r, body, "password", reason)
		}
		u := acctMust(t, s, "", "", "signUp", "strong@example.com", acctOwnerPw)
		r, body := acctDo(t, s, "", u.AccessToken, `mutation { changePassword(currentPassword: "correct horse battery", newPassword: "iloveyou") { accessToken } }`, nil)
		weak("changePassword", r, body, "newPassword", "too easy to guess")
		var anon struct{ SignInAnonymously acctSession }
		s.MustDoAs(t, "", `mutation { signInAnonymously { `+acctFields+` } }`, nil, &anon)
		q, v := acctCredentials("linkAccount", "anon@example.com", "        ")
		r, body = acctDo(t, s, "", anon.SignInAnonymously.AccessToken, q, v)
		weak("linkAccount", r, body, "password", "at least 8 characters")

		// resetPassword, with a real token.
		acctDo(t, s, "", "", `mutation { requestPasswordReset(email: "strong@example.com") }`, nil)
		mails := acctWaitMails(t, s, "strong@example.com", acctResetSubject, 1)
		m := regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`).FindStringSubmatch(mails[0].Body)
		if m == nil {
			t.Fatalf("no token in %q", mails[0].Body)
		}
		r, body = acctDo(t, s, "", "", `mutation($t: String!) { resetPassword(token: $t, newPassword: "monkey123") }`, map[string]any{"t": m[1]})
		weak("resetPassword", r, body, "newPassword", "too easy to guess")
		// The token survives a refused password.
		var ok struct{ ResetPassword bool }
		s.MustDoAs(t, "", `mutation($t: String!) { resetPassword(token: $t, newPassword: "a much better phrase") }`, map[string]any{"t": m[1]}, &ok)
		acctMust(t, s, "", "", "signIn", "strong@example.com", "a much better phrase")
	})
}

// TestPasswordPolicyConfig: KILN_PASSWORD_MIN_LENGTH and
// KILN_PASSWORD_MIN_SCORE change the policy; bad values stop the start.
func TestPasswordPolicyConfig(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_PASSWORD_MIN_LENGTH=10", "KILN_PASSWORD_MIN_SCORE=0")
	if u := acctMust(t, s, "", "", "signUp", "lax@example.com", "1234567890"); u.User.Email != "lax@example.com" {
		t.Fatalf("check off: %+v", u)
	}
	q, v := acctCredentials("signUp", "short@example.com", "Kiln is 9")
	if r, body := acctDo(t, s, "", "", q, v); r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "at least 10") {
		t.Fatalf("minimum length 10: %s", body)
	}
	for _, bad := range []string{"KILN_PASSWORD_MIN_SCORE=5", "KILN_PASSWORD_MIN_LENGTH=0"} {
		started, err := kilntest.StartE(serverBin, "KILN_DATA_DIR="+t.TempDir(), bad)
		if err == nil {
			_ = started.Stop()
			t.Errorf("%s: the server started", bad)
			continue
		}
		if name, _, _ := strings.Cut(bad, "="); !strings.Contains(err.Error(), name) {
			t.Errorf("%s: start error %v", bad, err)
		}
	}
}
