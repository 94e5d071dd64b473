package auth

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/store/authsession"
	"kiln/runtime/store/authuser"
)

const pw = "correct horse battery"

func TestSignUpSignIn(t *testing.T) {
	forEachDB(t, func(e *env) {
		s := e.signUp("  Ada@Example.COM ", pw)
		if s.AccessToken == "" || s.RefreshToken == "" || s.User == nil {
			t.Fatalf("incomplete session %+v", s)
		}
		if s.User.Email == nil || *s.User.Email != "ada@example.com" || s.User.Anonymous {
			t.Fatalf("user = %+v", s.User)
		}
		if !s.ExpiresAt.Equal(e.clock.Now().Add(15 * time.Minute).Truncate(time.Second)) {
			t.Errorf("ExpiresAt = %v, want now+15m", s.ExpiresAt)
		}
		v, err := e.svc.Verify(e.ctx, s.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if v.ID != s.User.ID || v.Anonymous || v.TokenVersion != 1 || len(v.Roles) != 0 {
			t.Fatalf("viewer = %+v", v)
		}

		in, err := e.svc.SignIn(e.ctx, "ADA@example.com", pw, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if in.User.ID != s.User.ID {
			t.Fatalf("signed in as %v, want %v", in.User.ID, s.User.ID)
		}

		_, errWrong := e.svc.SignIn(e.ctx, "ada@example.com", "wrong password", "192.0.2.1")
		_, errUnknown := e.svc.SignIn(e.ctx, "nobody@example.com", pw, "192.0.2.1")
		for _, err := range []error{errWrong, errUnknown} {
			wantErr(t, err, ErrInvalidCredentials)
			if ErrorCode(err) != "UNAUTHENTICATED" {
				t.Errorf("code = %q", ErrorCode(err))
			}
		}
		if errWrong.Error() != errUnknown.Error() || errWrong != errUnknown {
			t.Errorf("wrong password (%v) and unknown email (%v) differ", errWrong, errUnknown)
		}
		u, err := e.svc.User(e.ctx, s.User.ID)
		if err != nil || *u.Email != "ada@example.com" {
			t.Fatalf("User = %+v, %v", u, err)
		}
		if _, err := e.svc.User(e.ctx, uuid.New()); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("User(unknown) = %v", err)
		}
	})
}

func TestSignUpExistingEmailBehavesLikeSignIn(t *testing.T) {
	forEachDB(t, func(e *env) {
		first := e.signUp("grace@example.com", pw)
		again, err := e.svc.SignUp(e.ctx, "Grace@example.com", pw, "192.0.2.1")
		if err != nil {
			t.Fatalf("sign-up with existing email and right password: %v", err)
		}
		if again.User.ID != first.User.ID {
			t.Fatalf("got user %v, want the existing %v", again.User.ID, first.User.ID)
		}
		// (With another password it makes a pending account: see
		// TestSignUpTakenEmailMakesPendingAccount.)
		n, err := e.client.AuthUser.Query().Count(e.ctx)
		if err != nil || n != 1 {
			t.Fatalf("users = %d, %v; want 1", n, err)
		}
	})
}

func TestUnknownEmailRunsArgon2(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		e.signUp("known@example.com", pw)
		count := func(f func()) int64 {
			before := e.svc.argonOps.Load()
			f()
			return e.svc.argonOps.Load() - before
		}
		unknown := count(func() { _, _ = e.svc.SignIn(e.ctx, "unknown@example.com", pw, "") })
		wrong := count(func() { _, _ = e.svc.SignIn(e.ctx, "known@example.com", "wrong password", "") })
		right := count(func() { _, _ = e.svc.SignIn(e.ctx, "known@example.com", pw, "") })
		if unknown != 2 || wrong != 2 || right != 2 {
			t.Fatalf("argon2 computations: unknown email %d, wrong password %d, right %d; want 2 each", unknown, wrong, right)
		}
		// (Every other path: TestEqualArgon2Work.)
	})
}

func TestInputErrors(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		for _, bad := range []string{"", "plain", "a@", "@b.c", "Ada <ada@example.com>", "a b@example.com", strings.Repeat("a", 250) + "@example.com"} {
			_, err := e.svc.SignUp(e.ctx, bad, pw, "")
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != "email" || ie.Code() != "BAD_USER_INPUT" {
				t.Errorf("SignUp(%q) = %v, want email input error", bad, err)
			}
		}
		for _, p := range []string{"", "1234567", "12345678", strings.Repeat(" ", 8), strings.Repeat("x", 129), strings.Repeat("é", 129)} {
			_, err := e.svc.SignUp(e.ctx, "x@example.com", p, "")
			wantErr(t, err, ErrWeakPassword)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != "password" || ErrorCode(err) != "BAD_USER_INPUT" {
				t.Errorf("password %d chars: %v", len(p), err)
			}
		}
		// Lengths count characters, not bytes: 128 two-byte characters fit.
		var long strings.Builder
		for i := range 128 {
			long.WriteRune(rune(0x100 + i*37%128))
		}
		e.signUp("long@example.com", long.String())
		e.signUp("short@example.com", "vq7#Lm2z")
	})
}

func TestRefreshRotation(t *testing.T) {
	forEachDB(t, func(e *env) {
		s0 := e.signUp("rot@example.com", pw)
		e.clock.Advance(time.Minute)
		s1, err := e.svc.Refresh(e.ctx, s0.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if s1.RefreshToken == s0.RefreshToken || s1.AccessToken == s0.AccessToken || s1.User.ID != s0.User.ID {
			t.Fatal("refresh did not issue a new pair for the same user")
		}
		e.mustVerify(e.svc, s1.AccessToken)
		fam := e.family(s0.RefreshToken)
		if len(fam) != 2 || len(live(fam)) != 1 {
			t.Fatalf("family has %d tokens, %d live; want 2, 1", len(fam), len(live(fam)))
		}
		child, err := e.client.AuthSession.Query().Where(authsession.TokenHash(hashSecret(s1.RefreshToken))).Only(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if child.ParentHash != hashSecret(s0.RefreshToken) || child.RotatedAt != nil {
			t.Fatalf("child = %+v", child)
		}
		if strings.Contains(child.TokenHash, s1.RefreshToken) || len(child.TokenHash) != 64 {
			t.Fatal("token stored in clear")
		}
		s2, err := e.svc.Refresh(e.ctx, s1.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"", "nope", strings.Repeat("A", 43), s2.AccessToken} {
			if _, err := e.svc.Refresh(e.ctx, bad); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Refresh(%q) = %v", bad, err)
			}
		}
		// Refresh tokens expire after RefreshTTL (30 days by default).
		e.clock.Advance(30*24*time.Hour + time.Second)
		_, err = e.svc.Refresh(e.ctx, s2.RefreshToken)
		wantErr(t, err, ErrInvalidToken)
	})
}

func TestRefreshGrace(t *testing.T) {
	forEachDB(t, func(e *env) {
		s0 := e.signUp("grace@example.com", pw)
		s1, err := e.svc.Refresh(e.ctx, s0.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(5 * time.Second)
		// The parent again within the grace: a new pair from the current
		// token, no fork.
		s2, err := e.svc.Refresh(e.ctx, s0.RefreshToken)
		if err != nil {
			t.Fatalf("refresh of the parent within the grace: %v", err)
		}
		if s2.RefreshToken == s1.RefreshToken {
			t.Fatal("same refresh token issued twice")
		}
		fam := e.family(s0.RefreshToken)
		l := live(fam)
		if len(fam) != 3 || len(l) != 1 || l[0].TokenHash != hashSecret(s2.RefreshToken) {
			t.Fatalf("family: %d tokens, %d live; want 3 with s2 live", len(fam), len(l))
		}
		if l[0].ParentHash != hashSecret(s1.RefreshToken) {
			t.Fatal("grace refresh forked the family instead of rotating the current token")
		}
		if _, err := e.svc.Refresh(e.ctx, s2.RefreshToken); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	forEachDB(t, func(e *env) {
		s0 := e.signUp("reuse@example.com", pw)
		other := e.signUp("reuse@example.com", pw) // another device: another family
		fam, otherFam := e.family(s0.RefreshToken)[0].FamilyID, e.family(other.RefreshToken)[0].FamilyID
		userID := e.family(s0.RefreshToken)[0].UserID
		if _, err := e.svc.RegisterDevice(e.ctx, userID, fam, "ios", "reused-family", "com.example.app", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.RegisterDevice(e.ctx, userID, otherFam, "ios", "other-family", "com.example.app", ""); err != nil {
			t.Fatal(err)
		}
		s1, err := e.svc.Refresh(e.ctx, s0.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(11 * time.Second)
		_, err = e.svc.Refresh(e.ctx, s0.RefreshToken)
		wantErr(t, err, ErrInvalidToken)
		_, err = e.svc.Refresh(e.ctx, s1.RefreshToken)
		wantErr(t, err, ErrInvalidToken) // the current token died with its family
		for _, s := range e.family(s0.RefreshToken) {
			if s.RevokedAt == nil {
				t.Fatalf("token %s of the family not revoked", s.ID)
			}
		}
		if _, err := e.svc.Refresh(e.ctx, other.RefreshToken); err != nil {
			t.Fatalf("other family affected: %v", err)
		}
		// The revoked family's push device went with it.
		ds, err := e.svc.Devices(e.ctx, userID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Token != "other-family" {
			t.Fatalf("devices after the family was revoked: %+v, want only other-family", ds)
		}
	})
}

func TestConcurrentRefresh(t *testing.T) {
	forEachDB(t, func(e *env) {
		s0 := e.signUp("race@example.com", pw)
		const n = 20
		var wg sync.WaitGroup
		results := make([]*Session, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = e.svc.Refresh(e.ctx, s0.RefreshToken)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrInvalidToken):
			default:
				t.Errorf("refresh %d: %v", i, err)
			}
		}
		fam := e.family(s0.RefreshToken)
		l := live(fam)
		t.Logf("%d of %d refreshes succeeded (%d conditional rotations lost a race); family has %d tokens, %d live",
			ok, n, e.svc.lostRotations.Load(), len(fam), len(l))
		if ok == 0 {
			t.Fatal("no refresh succeeded")
		}
		if len(l) > 1 {
			t.Fatalf("%d live tokens in the family, want at most 1", len(l))
		}
		if len(l) == 1 {
			// The live token is one that was handed out, and it works.
			var cur *Session
			for _, r := range results {
				if r != nil && hashSecret(r.RefreshToken) == l[0].TokenHash {
					cur = r
				}
			}
			if cur == nil {
				t.Fatal("the live token was not returned to any caller")
			}
			if _, err := e.svc.Refresh(e.ctx, cur.RefreshToken); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestSignOut(t *testing.T) {
	forEachDB(t, func(e *env) {
		a := e.signUp("out@example.com", pw)
		b, err := e.svc.SignIn(e.ctx, "out@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		a1, err := e.svc.Refresh(e.ctx, a.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SignOut(e.ctx, a1.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Refresh(e.ctx, a1.RefreshToken)
		wantErr(t, err, ErrInvalidToken)
		for _, s := range e.family(a.RefreshToken) {
			if s.RevokedAt == nil {
				t.Fatal("family not revoked")
			}
		}
		if err := e.svc.SignOut(e.ctx, a1.RefreshToken); err != nil {
			t.Fatalf("second sign-out: %v", err)
		}
		wantErr(t, e.svc.SignOut(e.ctx, "garbage"), ErrInvalidToken)
		if _, err := e.svc.Refresh(e.ctx, b.RefreshToken); err != nil {
			t.Fatalf("other session signed out too: %v", err)
		}
	})
}

func TestSignOutEverywhere(t *testing.T) {
	forEachDB(t, func(e *env) {
		other := e.newService(nil) // a second instance with its own cache
		a := e.signUp("every@example.com", pw)
		b, err := e.svc.SignIn(e.ctx, "every@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		e.mustVerify(other, a.AccessToken) // caches version 1 on the other instance
		e.clock.Advance(time.Second)
		if err := e.svc.SignOutEverywhere(e.ctx, a.User.ID); err != nil {
			t.Fatal(err)
		}
		// This instance knows at once.
		_, err = e.svc.Verify(e.ctx, a.AccessToken)
		wantErr(t, err, ErrInvalidToken)
		// The other instance within 5 s: advance past the cache lifetime.
		e.clock.Advance(5 * time.Second)
		for _, tok := range []string{a.AccessToken, b.AccessToken} {
			_, err = other.Verify(e.ctx, tok)
			wantErr(t, err, ErrInvalidToken)
		}
		for _, tok := range []string{a.RefreshToken, b.RefreshToken} {
			_, err = e.svc.Refresh(e.ctx, tok)
			wantErr(t, err, ErrInvalidToken)
		}
		c, err := e.svc.SignIn(e.ctx, "every@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		e.mustVerify(other, c.AccessToken)
		v, _ := other.Verify(e.ctx, c.AccessToken)
		if v.TokenVersion != 2 {
			t.Fatalf("token version %d, want 2", v.TokenVersion)
		}
		wantErr(t, e.svc.SignOutEverywhere(e.ctx, uuid.New()), ErrUserNotFound)
	})
}

func TestVersionCacheExpiry(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		other := e.newService(nil)
		a := e.signUp("cache@example.com", pw)
		e.mustVerify(other, a.AccessToken)
		if err := e.svc.SignOutEverywhere(e.ctx, a.User.ID); err != nil {
			t.Fatal(err)
		}
		// Cached on the other instance for less than 5 s...
		e.clock.Advance(4 * time.Second)
		e.mustVerify(other, a.AccessToken)
		// ...and no longer.
		e.clock.Advance(time.Second)
		_, err := other.Verify(e.ctx, a.AccessToken)
		wantErr(t, err, ErrInvalidToken)
	})
}

func TestChangePassword(t *testing.T) {
	forEachDB(t, func(e *env) {
		a := e.signUp("change@example.com", pw)
		b, _ := e.svc.SignIn(e.ctx, "change@example.com", pw, "")
		_, err := e.svc.ChangePassword(e.ctx, a.User.ID, "wrong password", "new password 1")
		wantErr(t, err, ErrInvalidCredentials)
		_, err = e.svc.ChangePassword(e.ctx, a.User.ID, pw, "short")
		wantErr(t, err, ErrWeakPassword)
		e.mustVerify(e.svc, a.AccessToken)

		fresh, err := e.svc.ChangePassword(e.ctx, a.User.ID, pw, "new password 1")
		if err != nil {
			t.Fatal(err)
		}
		e.mustVerify(e.svc, fresh.AccessToken)
		for _, tok := range []string{a.AccessToken, b.AccessToken} {
			_, err = e.svc.Verify(e.ctx, tok)
			wantErr(t, err, ErrInvalidToken)
		}
		for _, tok := range []string{a.RefreshToken, b.RefreshToken} {
			_, err = e.svc.Refresh(e.ctx, tok)
			wantErr(t, err, ErrInvalidToken)
		}
		if _, err := e.svc.Refresh(e.ctx, fresh.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.SignIn(e.ctx, "change@example.com", pw, "")
		wantErr(t, err, ErrInvalidCredentials)
		if _, err := e.svc.SignIn(e.ctx, "change@example.com", "new password 1", ""); err != nil {
			t.Fatal(err)
		}
		anon, err := e.svc.SignInAnonymously(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.ChangePassword(e.ctx, anon.User.ID, "", "new password 1")
		wantErr(t, err, ErrInvalidCredentials)
	})
}

func TestAnonymousLinkAccount(t *testing.T) {
	forEachDB(t, func(e *env) {
		anon, err := e.svc.SignInAnonymously(e.ctx, "192.0.2.9")
		if err != nil {
			t.Fatal(err)
		}
		if !anon.User.Anonymous || anon.User.Email != nil {
			t.Fatalf("anonymous user = %+v", anon.User)
		}
		v, err := e.svc.Verify(e.ctx, anon.AccessToken)
		if err != nil || !v.Anonymous || v.ID != anon.User.ID {
			t.Fatalf("viewer = %+v, %v", v, err)
		}
		_, err = e.svc.LinkAccount(e.ctx, anon.User.ID, "linked@example.com", "short", "192.0.2.9")
		wantErr(t, err, ErrWeakPassword)

		linked, err := e.svc.LinkAccount(e.ctx, anon.User.ID, " Linked@Example.com", pw, "192.0.2.9")
		if err != nil {
			t.Fatal(err)
		}
		if linked.User.ID != anon.User.ID || linked.User.Anonymous || *linked.User.Email != "linked@example.com" {
			t.Fatalf("linked user = %+v", linked.User)
		}
		v, err = e.svc.Verify(e.ctx, linked.AccessToken)
		if err != nil || v.Anonymous || v.ID != anon.User.ID {
			t.Fatalf("viewer after link = %+v, %v", v, err)
		}
		_, err = e.svc.Verify(e.ctx, anon.AccessToken)
		wantErr(t, err, ErrInvalidToken) // the anonymous session ended
		in, err := e.svc.SignIn(e.ctx, "linked@example.com", pw, "")
		if err != nil || in.User.ID != anon.User.ID {
			t.Fatalf("sign in after link: %+v, %v", in, err)
		}
		_, err = e.svc.LinkAccount(e.ctx, anon.User.ID, "again@example.com", pw, "")
		wantErr(t, err, ErrAlreadyLinked)
		_, err = e.svc.LinkAccount(e.ctx, uuid.New(), "ghost@example.com", pw, "")
		wantErr(t, err, ErrUserNotFound)
	})
}

func TestDeleteAccount(t *testing.T) {
	forEachDB(t, func(e *env) {
		a := e.signUp("del@example.com", pw)
		if err := e.svc.AssignRole(e.ctx, a.User.ID, "editor"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, e.svc.DeleteAccount(e.ctx, a.User.ID, "wrong password"), ErrInvalidCredentials)
		if err := e.svc.DeleteAccount(e.ctx, a.User.ID, pw); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.User(e.ctx, a.User.ID)
		wantErr(t, err, ErrUserNotFound)
		_, err = e.svc.Verify(e.ctx, a.AccessToken)
		wantErr(t, err, ErrInvalidToken)
		_, err = e.svc.Refresh(e.ctx, a.RefreshToken)
		wantErr(t, err, ErrInvalidToken)
		_, err = e.svc.SignIn(e.ctx, "del@example.com", pw, "")
		wantErr(t, err, ErrInvalidCredentials)
		if n, _ := e.client.AuthSession.Query().Where(authsession.UserID(a.User.ID)).Count(e.ctx); n != 0 {
			t.Fatalf("%d sessions left", n)
		}
		// The email is free again.
		e.signUp("del@example.com", pw)

		anon, err := e.svc.SignInAnonymously(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.DeleteAccount(e.ctx, anon.User.ID, ""); err != nil {
			t.Fatalf("delete anonymous: %v", err)
		}
		if ok, _ := e.client.AuthUser.Query().Where(authuser.ID(anon.User.ID)).Exist(e.ctx); ok {
			t.Fatal("anonymous user still exists")
		}
		wantErr(t, e.svc.DeleteAccount(e.ctx, anon.User.ID, ""), ErrUserNotFound)
	})
}

func TestRoles(t *testing.T) {
	forEachDB(t, func(e *env) {
		a := e.signUp("roles@example.com", pw)
		for _, r := range []string{"editor", "admin", "editor"} {
			if err := e.svc.AssignRole(e.ctx, a.User.ID, r); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, e.svc.AssignRole(e.ctx, a.User.ID, ""), ErrInvalidRole)
		wantErr(t, e.svc.AssignRole(e.ctx, uuid.New(), "x"), ErrUserNotFound)
		s, err := e.svc.Refresh(e.ctx, a.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.svc.Verify(e.ctx, s.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(v.Roles, ",") != "admin,editor" || !v.HasRole("admin") {
			t.Fatalf("roles = %v", v.Roles)
		}
		if strings.Join(s.User.Roles, ",") != "admin,editor" {
			t.Fatalf("session user roles = %v", s.User.Roles)
		}
		if err := e.svc.RevokeRole(e.ctx, a.User.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		// Tokens still carrying the role are rejected; a refresh gives one
		// without it.
		_, err = e.svc.Verify(e.ctx, s.AccessToken)
		wantErr(t, err, ErrInvalidToken)
		s2, err := e.svc.Refresh(e.ctx, s.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		v, err = e.svc.Verify(e.ctx, s2.AccessToken)
		if err != nil || strings.Join(v.Roles, ",") != "editor" {
			t.Fatalf("roles after revoke = %v, %v", v, err)
		}
		if err := e.svc.RevokeRole(e.ctx, a.User.ID, "admin"); err != nil {
			t.Fatalf("revoke twice: %v", err)
		}
		e.mustVerify(e.svc, s2.AccessToken) // no-op revocation keeps tokens
		u, _ := e.svc.User(e.ctx, a.User.ID)
		if strings.Join(u.Roles, ",") != "editor" {
			t.Fatalf("User roles = %v", u.Roles)
		}
	})
}
