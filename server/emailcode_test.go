package server

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"kiln/server/kilntest"
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

// mailParts decodes a received mail: its text part, and its HTML part
// when it has one (multipart/alternative), quoted-printable undone.
func mailParts(t *testing.T, m kilntest.Mail) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	read := func(h textproto.MIMEHeader, r io.Reader) string {
		if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(r)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return read(textproto.MIMEHeader(msg.Header), msg.Body), ""
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for range 10 {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			text = read(p.Header, p)
		case strings.HasPrefix(ct, "text/html"):
			html = read(p.Header, p)
		}
	}
	return text, html
}

var magicLinkRE = regexp.MustCompile(`com\.example\.app:/auth\?[^\s"<>]+`)

// TestMagicLink: requestEmailCode with redirectTo mails, through a real
// SMTP server, a link to the allow-listed redirect carrying the address
// and the same single-use code, which signs in through
// signInWithEmailCode; answers are the same for registered and unknown
// addresses, and a redirectTo off the allow-list is refused for both
// alike, before anything is mailed.
func TestMagicLink(t *testing.T) {
	idBackends(t, func(t *testing.T, e idEnv) {
		s := e.s
		const known, unknown = "lena@example.com", "mike@example.com"
		lena := signUp(t, s, known)
		e.mail.WaitFor(t, known, 1) // the verification code, mailed in the background
		req := `mutation($e: String!, $r: String) { requestEmailCode(email: $e, redirectTo: $r) }`
		_, kb := acctDo(t, s, "", "", req, map[string]any{"e": known, "r": appRedirect})
		_, ub := acctDo(t, s, "", "", req, map[string]any{"e": unknown, "r": appRedirect})
		if !bytes.Equal(kb, ub) {
			t.Errorf("requestEmailCode answers differ: %s vs %s", kb, ub)
		}
		link := func(addr string, n int) url.Values {
			t.Helper()
			text, _ := mailParts(t, e.mail.WaitFor(t, addr, n))
			m := magicLinkRE.FindString(text)
			if m == "" {
				t.Fatalf("no magic link in the mail to %s:\n%s", addr, text)
			}
			u, err := url.Parse(m)
			if err != nil {
				t.Fatal(err)
			}
			if q := u.Query(); q.Get("email") != addr || len(q.Get("code")) != 6 || !strings.Contains(text, q.Get("code")) {
				t.Fatalf("magic link %s: want email=%s and the mail's 6-digit code", m, addr)
			}
			return u.Query()
		}
		signIn := `mutation($e: String!, $c: String!) { signInWithEmailCode(email: $e, code: $c) { accessToken user { id email emailVerified } } }`
		var out struct {
			SignInWithEmailCode struct{ User struct{ ID, Email string } }
		}
		q := link(known, 2)
		s.MustDoAs(t, "", signIn, map[string]any{"e": q.Get("email"), "c": q.Get("code")}, &out)
		if out.SignInWithEmailCode.User.ID != lena.User.ID {
			t.Errorf("magic link signed in to %s, want %s", out.SignInWithEmailCode.User.ID, lena.User.ID)
		}
		refused(t, "magic link reused", s.DoAs(t, "", signIn, map[string]any{"e": q.Get("email"), "c": q.Get("code")}), "UNAUTHENTICATED", "INVALID_CODE")
		q = link(unknown, 1)
		s.MustDoAs(t, "", signIn, map[string]any{"e": q.Get("email"), "c": q.Get("code")}, &out)
		if out.SignInWithEmailCode.User.Email != unknown {
			t.Errorf("magic link for a new address: %+v", out.SignInWithEmailCode.User)
		}

		// Off the allow-list: the same refusal for both, nothing mailed.
		before := len(e.mail.Messages())
		var answers [][]byte
		for _, addr := range []string{known, "nobody@example.com"} {
			r := s.DoAs(t, "", req, map[string]any{"e": addr, "r": "https://evil.example/steal"})
			if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "redirectTo" {
				t.Errorf("redirectTo off the allow-list for %s: %s %+v", addr, r.Code(), r.Errors)
			}
			b, _ := json.Marshal(r.Errors)
			answers = append(answers, b)
		}
		if !bytes.Equal(answers[0], answers[1]) {
			t.Errorf("refusals differ: %s vs %s", answers[0], answers[1])
		}
		// A request without redirectTo is mailed after the refused ones: if
		// they had been mailed, the next mail to known would not be this.
		acctDo(t, s, "", "", `mutation($e: String!) { requestEmailCode(email: $e) }`, map[string]any{"e": known})
		text, _ := mailParts(t, e.mail.WaitFor(t, known, 3))
		if magicLinkRE.MatchString(text) || strings.Contains(text, "evil.example") {
			t.Errorf("a code requested without redirectTo came with a link:\n%s", text)
		}
		if got := len(e.mail.Messages()) - before; got != 1 {
			t.Errorf("%d mails sent after the refused requests, want 1", got)
		}
	})
}
