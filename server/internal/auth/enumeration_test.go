package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"kiln/runtime/store"
	"kiln/runtime/store/authuser"
)

// mailbox records the mails a service sends.
type mailbox struct {
	mu   sync.Mutex
	msgs []sentMail
}

type sentMail struct{ To, Subject, Body string }

func (m *mailbox) Send(_ context.Context, to, subject, body string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, sentMail{to, subject, body})
	return nil
}

// to returns the subjects of the mails sent to addr, after waiting for the
// background deliveries of svc.
func (m *mailbox) to(svc *Service, addr string) []string {
	svc.mail.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, msg := range m.msgs {
		if msg.To == addr {
			out = append(out, msg.Subject)
		}
	}
	return out
}

func withMailbox(box *mailbox) func(*Config) {
	return func(c *Config) {
		c.Mailer = box
		c.ResetURL = "https://app.example/reset?token=%s"
	}
}

const otherPw = "another secret phrase"

func TestSignUpTakenEmailMakesPendingAccount(t *testing.T) {
	forEachDB(t, func(e *env) {
		box := &mailbox{}
		svc := e.newService(withMailbox(box))
		owner, err := svc.SignUp(e.ctx, "grace@example.com", pw, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		before, err := e.client.AuthUser.Get(e.ctx, owner.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := box.to(svc, "grace@example.com"); len(got) != 0 {
			t.Fatalf("mails after a plain sign-up: %v", got)
		}

		// Another password: a new account, answered like a new sign-up.
		p, err := svc.SignUp(e.ctx, "Grace@example.com", otherPw, "192.0.2.2")
		if err != nil {
			t.Fatalf("sign-up with a taken email: %v", err)
		}
		if p.User.ID == owner.User.ID || p.User.Email == nil || *p.User.Email != "grace@example.com" || p.User.Anonymous || p.AccessToken == "" {
			t.Fatalf("pending session user = %+v", p.User)
		}
		row, err := e.client.AuthUser.Get(e.ctx, p.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.Email != nil || row.PendingEmail == nil || *row.PendingEmail != "grace@example.com" {
			t.Fatalf("pending row: email %v, pending %v", row.Email, row.PendingEmail)
		}
		if u, err := svc.User(e.ctx, p.User.ID); err != nil || *u.Email != "grace@example.com" {
			t.Fatalf("User(pending) = %+v, %v", u, err)
		}
		if got := box.to(svc, "grace@example.com"); len(got) != 1 || got[0] != "Someone signed up with your email address" {
			t.Fatalf("mails to the address: %v, want the sign-up notice", got)
		}

		// Both passwords open their own account; the owner's is untouched.
		in, err := svc.SignIn(e.ctx, "grace@example.com", otherPw, "192.0.2.2")
		if err != nil || in.User.ID != p.User.ID {
			t.Fatalf("sign in to the pending account: %v", err)
		}
		in, err = svc.SignIn(e.ctx, "grace@example.com", pw, "192.0.2.1")
		if err != nil || in.User.ID != owner.User.ID {
			t.Fatalf("sign in to the owner's account: %v", err)
		}
		after, err := e.client.AuthUser.Get(e.ctx, owner.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after.PasswordHash != before.PasswordHash || after.Email == nil || *after.Email != "grace@example.com" || after.PendingEmail != nil {
			t.Fatal("the owner's account changed")
		}
		// Signing up again with the pending password signs in to it.
		again, err := svc.SignUp(e.ctx, "grace@example.com", otherPw, "192.0.2.2")
		if err != nil || again.User.ID != p.User.ID {
			t.Fatalf("sign-up again with the pending password: %v", err)
		}
		// A pending account works like any other: refresh, change password.
		r, err := svc.Refresh(e.ctx, again.RefreshToken)
		if err != nil || *r.User.Email != "grace@example.com" {
			t.Fatalf("refresh pending: %+v, %v", r, err)
		}
		if _, err := svc.ChangePassword(e.ctx, p.User.ID, otherPw, "a third secret phrase"); err != nil {
			t.Fatal(err)
		}
		if in, err := svc.SignIn(e.ctx, "grace@example.com", "a third secret phrase", ""); err != nil || in.User.ID != p.User.ID {
			t.Fatalf("sign in to the pending account after a password change: %v", err)
		}
		_, err = svc.SignIn(e.ctx, "grace@example.com", otherPw, "")
		wantErr(t, err, ErrInvalidCredentials)
		if err := svc.DeleteAccount(e.ctx, p.User.ID, "a third secret phrase"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.SignIn(e.ctx, "grace@example.com", pw, ""); err != nil {
			t.Fatalf("owner after the pending account's deletion: %v", err)
		}
	})
}

// TestSignUpDoesNotRevealEmails: whatever an attacker does with sign-up and
// sign-in, an email held by someone else and a free one answer alike.
func TestSignUpDoesNotRevealEmails(t *testing.T) {
	forEachDB(t, func(e *env) {
		e.signUp("held@example.com", pw)
		// Returns what each attacker step gave: who it signed in as
		// (first, second, ...), or the error code.
		probe := func(addr string) []string {
			seen := map[uuid.UUID]string{}
			who := func(s *Session, err error) string {
				if err != nil {
					return ErrorCode(err)
				}
				if s.User.Email == nil || *s.User.Email != addr {
					return "wrong email"
				}
				if _, ok := seen[s.User.ID]; !ok {
					seen[s.User.ID] = fmt.Sprint("account ", len(seen)+1)
				}
				return seen[s.User.ID]
			}
			var out []string
			for _, step := range []struct {
				up bool
				pw string
			}{{true, "first secret phrase"}, {true, "second secret phrase"}, {false, "first secret phrase"},
				{false, "second secret phrase"}, {false, "third secret phrase"}, {true, "first secret phrase"}} {
				if step.up {
					out = append(out, who(e.svc.SignUp(e.ctx, addr, step.pw, "")))
				} else {
					out = append(out, who(e.svc.SignIn(e.ctx, addr, step.pw, "")))
				}
			}
			return out
		}
		held, free := probe("held@example.com"), probe("free@example.com")
		if strings.Join(held, ",") != strings.Join(free, ",") {
			t.Fatalf("held email: %v\nfree email: %v", held, free)
		}
		if strings.Join(free, ",") != "account 1,account 2,account 1,account 2,UNAUTHENTICATED,account 1" {
			t.Fatalf("steps: %v", free)
		}
	})
}

// TestEqualArgon2Work: every path of SignIn, SignUp and LinkAccount runs
// the same number of argon2 computations, whether the email is free, held,
// or has pending accounts.
func TestEqualArgon2Work(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		e.signUp("held@example.com", pw)
		if _, err := e.svc.SignUp(e.ctx, "held@example.com", otherPw, ""); err != nil { // a pending account
			t.Fatal(err)
		}
		count := func(f func() error) int64 {
			t.Helper()
			before := e.svc.argonOps.Load()
			if err := f(); err != nil && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatal(err)
			}
			return e.svc.argonOps.Load() - before
		}
		signIn := func(addr, p string) func() error {
			return func() error { _, err := e.svc.SignIn(e.ctx, addr, p, ""); return err }
		}
		signUp := func(addr, p string) func() error {
			return func() error { _, err := e.svc.SignUp(e.ctx, addr, p, ""); return err }
		}
		link := func(addr string) func() error {
			return func() error {
				anon, err := e.svc.SignInAnonymously(e.ctx, "")
				if err != nil {
					return err
				}
				_, err = e.svc.LinkAccount(e.ctx, anon.User.ID, addr, "linked secret phrase", "")
				return err
			}
		}
		for _, c := range []struct {
			name string
			f    func() error
			want int64
		}{
			{"sign in, free email", signIn("free@example.com", pw), 2},
			{"sign in, held, wrong password", signIn("held@example.com", "wrong password"), 2},
			{"sign in, held, right password", signIn("held@example.com", pw), 2},
			{"sign in, pending password", signIn("held@example.com", otherPw), 2},
			{"sign up, free email", signUp("new@example.com", pw), 3},
			{"sign up, held, right password", signUp("held@example.com", pw), 3},
			{"sign up, held, other password", signUp("held@example.com", "yet another phrase"), 3},
			{"sign up, pending password", signUp("held@example.com", otherPw), 3},
			{"link, free email", link("linked@example.com"), 2},
			{"link, held email", link("held@example.com"), 2},
		} {
			if got := count(c.f); got != c.want {
				t.Errorf("%s: %d argon2 computations, want %d", c.name, got, c.want)
			}
		}
	})
}

func TestLinkAccountTakenEmail(t *testing.T) {
	forEachDB(t, func(e *env) {
		box := &mailbox{}
		svc := e.newService(withMailbox(box))
		owner, err := svc.SignUp(e.ctx, "taken@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		anon, err := svc.SignInAnonymously(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		linked, err := svc.LinkAccount(e.ctx, anon.User.ID, "Taken@example.com", otherPw, "")
		if err != nil {
			t.Fatalf("link to a taken email: %v", err)
		}
		if linked.User.ID != anon.User.ID || linked.User.Anonymous || *linked.User.Email != "taken@example.com" {
			t.Fatalf("linked user = %+v", linked.User)
		}
		if got := box.to(svc, "taken@example.com"); len(got) != 1 || got[0] != "Someone signed up with your email address" {
			t.Fatalf("mails: %v", got)
		}
		if in, err := svc.SignIn(e.ctx, "taken@example.com", otherPw, ""); err != nil || in.User.ID != anon.User.ID {
			t.Fatalf("sign in to the linked pending account: %v", err)
		}
		if in, err := svc.SignIn(e.ctx, "taken@example.com", pw, ""); err != nil || in.User.ID != owner.User.ID {
			t.Fatalf("owner: %v", err)
		}
		_, err = svc.LinkAccount(e.ctx, anon.User.ID, "other@example.com", otherPw, "")
		wantErr(t, err, ErrAlreadyLinked)
	})
}

func TestPendingAccountNeverGetsReset(t *testing.T) {
	forEachDB(t, func(e *env) {
		box := &mailbox{}
		svc := e.newService(withMailbox(box))
		owner, err := svc.SignUp(e.ctx, "mine@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := svc.SignUp(e.ctx, "mine@example.com", otherPw, "")
		if err != nil {
			t.Fatal(err)
		}
		// An address with only a pending account gets no reset mail.
		if err := svc.DeleteAccount(e.ctx, owner.User.ID, pw); err != nil {
			t.Fatal(err)
		}
		if err := svc.RequestPasswordReset(e.ctx, "mine@example.com", ""); err != nil {
			t.Fatal(err)
		}
		if err := svc.RequestPasswordReset(e.ctx, "nobody@example.com", ""); err != nil {
			t.Fatal(err)
		}
		svc.mail.Wait()
		box.mu.Lock()
		for _, m := range box.msgs {
			if m.Subject == "Reset your password" {
				t.Errorf("reset mail to %s with only a pending account", m.To)
			}
		}
		box.mu.Unlock()
		if in, err := svc.SignIn(e.ctx, "mine@example.com", otherPw, ""); err != nil || in.User.ID != p.User.ID {
			t.Fatalf("pending account: %v", err)
		}
		// Once claimed again, the reset goes to the holding account only.
		again, err := svc.SignUp(e.ctx, "mine@example.com", "holder secret phrase", "")
		if err != nil || again.User.ID == p.User.ID {
			t.Fatalf("claim: %v", err)
		}
		if err := svc.RequestPasswordReset(e.ctx, "mine@example.com", ""); err != nil {
			t.Fatal(err)
		}
		svc.mail.Wait()
		n, err := e.client.AuthToken.Query().Count(e.ctx)
		if err != nil || n != 1 {
			t.Fatalf("%d reset tokens, %v", n, err)
		}
		tok, err := e.client.AuthToken.Query().Only(e.ctx)
		if err != nil || tok.UserID != again.User.ID {
			t.Fatalf("reset token for %v, want the holder %v", tok.UserID, again.User.ID)
		}
	})
}

func TestPasswordPolicy(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		for _, c := range []struct{ pw, reason string }{
			{"12345678", "guess"}, {"password", "guess"}, {"P@ssw0rd123", "guess"}, {"qwertyuiop", "guess"},
			{"iloveyou", "guess"}, {"aaaaaaaaaaaa", "guess"}, {"hunter2hunter2", "guess"},
			{"policy@example.com", "guess"}, // the email itself
			{strings.Repeat(" ", 8), "at least 8"}, {"  abc12  ", "at least 8"}, {"\tx7#q\n  ", "at least 8"},
			{strings.Repeat("x", 129), "at most 128"},
		} {
			_, err := e.svc.SignUp(e.ctx, "policy@example.com", c.pw, "")
			var ie *InputError
			if !errors.Is(err, ErrWeakPassword) || !errors.As(err, &ie) || ie.Field != "password" || !strings.Contains(ie.Message, c.reason) {
				t.Errorf("SignUp(%q) = %v, want a weak-password error containing %q", c.pw, err, c.reason)
			}
		}
		if n, _ := e.client.AuthUser.Query().Count(e.ctx); n != 0 {
			t.Fatalf("%d accounts created with weak passwords", n)
		}
		a := e.signUp("policy@example.com", "Kiln is great!")
		// changePassword and resetPassword name their own field.
		_, err := e.svc.ChangePassword(e.ctx, a.User.ID, "Kiln is great!", "12345678")
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != "newPassword" || ErrorCode(err) != "BAD_USER_INPUT" {
			t.Fatalf("ChangePassword(weak) = %v", err)
		}
		anon, err := e.svc.SignInAnonymously(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.LinkAccount(e.ctx, anon.User.ID, "anon@example.com", "football", "")
		wantErr(t, err, ErrWeakPassword)

		// Configurable: longer minimum, check off.
		strict := e.newService(func(c *Config) { c.Passwords = PasswordPolicy{MinLength: 12} })
		_, err = strict.SignUp(e.ctx, "strict@example.com", "Kiln is gr8", "")
		wantErr(t, err, ErrWeakPassword)
		if _, err := strict.SignUp(e.ctx, "strict@example.com", "Kiln is great!", ""); err != nil {
			t.Fatal(err)
		}
		lax := e.newService(func(c *Config) { c.Passwords = PasswordPolicy{NoStrengthCheck: true} })
		if _, err := lax.SignUp(e.ctx, "lax@example.com", "12345678", ""); err != nil {
			t.Fatalf("check off: %v", err)
		}
		_, err = lax.SignUp(e.ctx, "lax2@example.com", " 1234567 ", "")
		wantErr(t, err, ErrWeakPassword)
		// Sign-in accepts passwords set under an older policy.
		if _, err := e.svc.SignIn(e.ctx, "lax@example.com", "12345678", ""); err != nil {
			t.Fatalf("sign in with an old weak password: %v", err)
		}
	})
}

func TestPasswordPolicyFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	p, err := PasswordPolicyFromEnv(env())
	if err != nil || p != DefaultPasswordPolicy || p.MinLength != 8 || p.MinScore != 2 {
		t.Fatalf("defaults: %+v, %v", p, err)
	}
	p, err = PasswordPolicyFromEnv(env("KILN_PASSWORD_MIN_LENGTH", "12", "KILN_PASSWORD_MIN_SCORE", "0"))
	if err != nil || p.MinLength != 12 || !p.NoStrengthCheck {
		t.Fatalf("12, off: %+v, %v", p, err)
	}
	p, err = PasswordPolicyFromEnv(env("KILN_PASSWORD_MIN_SCORE", "4"))
	if err != nil || p.MinScore != 4 || p.NoStrengthCheck {
		t.Fatalf("4: %+v, %v", p, err)
	}
	for _, bad := range [][]string{{"KILN_PASSWORD_MIN_LENGTH", "0"}, {"KILN_PASSWORD_MIN_LENGTH", "129"},
		{"KILN_PASSWORD_MIN_LENGTH", "x"}, {"KILN_PASSWORD_MIN_SCORE", "5"}, {"KILN_PASSWORD_MIN_SCORE", "-1"}} {
		if _, err := PasswordPolicyFromEnv(env(bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v", bad[0], bad[1], err)
		}
	}
}

func TestOnDeleteAccountHook(t *testing.T) {
	forEachDB(t, func(e *env) {
		fail := errors.New("cannot delete the user's things")
		var hookErr error
		var calls []uuid.UUID
		svc := e.newService(func(c *Config) {
			c.OnDeleteAccount = func(ctx context.Context, tx *store.Client, userID uuid.UUID) error {
				calls = append(calls, userID)
				// The hook runs in the deletion's transaction: what it
				// writes commits or rolls back with the account.
				if err := tx.AuthRole.Create().SetUserID(userID).SetRole("hook-ran").Exec(ctx); err != nil {
					return err
				}
				if err := tx.AuthUser.UpdateOneID(userID).SetPendingEmail("hook@example.com").Exec(ctx); err != nil {
					return err
				}
				return hookErr
			}
		})
		a, err := svc.SignUp(e.ctx, "hook@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		hookErr = fail
		if err := svc.DeleteAccount(e.ctx, a.User.ID, pw); !errors.Is(err, fail) {
			t.Fatalf("DeleteAccount with a failing hook = %v, want the hook's error", err)
		}
		u, err := e.client.AuthUser.Get(e.ctx, a.User.ID)
		if err != nil {
			t.Fatalf("the account is gone after a failed hook: %v", err)
		}
		if u.PendingEmail != nil {
			t.Fatal("the hook's write survived its error")
		}
		if n, _ := e.client.AuthRole.Query().Count(e.ctx); n != 0 {
			t.Fatal("the hook's row survived its error")
		}
		if _, err := svc.Refresh(e.ctx, a.RefreshToken); err != nil {
			t.Fatalf("sessions lost after a failed hook: %v", err)
		}
		hookErr = nil
		if err := svc.DeleteAccount(e.ctx, a.User.ID, pw); err != nil {
			t.Fatal(err)
		}
		if ok, _ := e.client.AuthUser.Query().Where(authuser.ID(a.User.ID)).Exist(e.ctx); ok {
			t.Fatal("account not deleted")
		}
		if len(calls) != 2 || calls[0] != a.User.ID || calls[1] != a.User.ID {
			t.Fatalf("hook calls: %v", calls)
		}
	})
}
