package auth

import (
	"errors"
	"regexp"
	"testing"
	"time"
)

var sixDigitRE = regexp.MustCompile(`\b(\d{6})\b`)

// lastCode returns the code of the last mail to addr.
func (m *mailbox) lastCode(t *testing.T, svc *Service, addr string) string {
	t.Helper()
	svc.mail.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.msgs) - 1; i >= 0; i-- {
		if m.msgs[i].To == addr {
			if c := sixDigitRE.FindStringSubmatch(m.msgs[i].Body); c != nil {
				return c[1]
			}
		}
	}
	t.Fatalf("no code mailed to %s", addr)
	return ""
}

// TestEmailCodeExpires: a sign-in code works for ten minutes only, and a
// newer code voids the older one.
func TestEmailCodeExpires(t *testing.T) {
	forEachDB(t, func(e *env) {
		box := &mailbox{}
		svc := e.newService(withMailbox(box))
		const addr = "ida@example.com"
		if err := svc.RequestEmailCode(e.ctx, addr, "", ""); err != nil {
			t.Fatal(err)
		}
		old := box.lastCode(t, svc, addr)
		e.clock.Advance(time.Minute)
		if err := svc.RequestEmailCode(e.ctx, addr, "", ""); err != nil {
			t.Fatal(err)
		}
		code := box.lastCode(t, svc, addr)
		var re *RefusedError
		if old != code {
			if _, err := svc.SignInWithEmailCode(e.ctx, addr, old, ""); !errors.As(err, &re) || re.Reason != ReasonInvalidCode {
				t.Fatalf("a voided code: %v", err)
			}
		}
		e.clock.Advance(emailCodeTTL + time.Second)
		if _, err := svc.SignInWithEmailCode(e.ctx, addr, code, ""); !errors.As(err, &re) || re.Reason != ReasonInvalidCode {
			t.Fatalf("an expired code: %v", err)
		}
		if n, err := e.client.AuthUser.Query().Count(e.ctx); err != nil || n != 0 {
			t.Fatalf("%d accounts after refused codes (%v)", n, err)
		}
	})
}
