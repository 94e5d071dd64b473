package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"kiln/runtime/store/authuser"
)

func limited(t *testing.T, err error) *RateLimitedError {
	t.Helper()
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v, want *RateLimitedError", err)
	}
	if rl.Code() != "RATE_LIMITED" || ErrorCode(err) != "RATE_LIMITED" || rl.RetryAfter <= 0 {
		t.Fatalf("rate-limit error %+v code %q", rl, rl.Code())
	}
	return rl
}

func TestRateLimitPerAccount(t *testing.T) {
	sqliteOnly(t, func(c *Config) {
		c.Limits = Limits{PerIP: rate.Inf, PerAccount: rate.Every(12 * time.Second), AccountBurst: 3, PerEmail: rate.Inf}
	}, func(e *env) {
		// Every attempt on an email from one client address counts,
		// whatever its outcome and method.
		if _, err := e.svc.SignUp(e.ctx, "victim@example.com", pw, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.SignIn(e.ctx, "Victim@example.com", "wrong password", "192.0.2.2")
		wantErr(t, err, ErrInvalidCredentials)
		if err := e.svc.RequestPasswordReset(e.ctx, "victim@example.com", "192.0.2.2"); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.SignUp(e.ctx, "victim@example.com", "wrong password", "192.0.2.2")
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.SignIn(e.ctx, "victim@example.com", pw, "192.0.2.2")
		rl := limited(t, err)
		if rl.RetryAfter > 12*time.Second {
			t.Errorf("RetryAfter = %v", rl.RetryAfter)
		}
		limited(t, e.svc.RequestPasswordReset(e.ctx, "victim@example.com", "192.0.2.2"))
		// Other client addresses, and other emails from the same client,
		// are not affected.
		if _, err := e.svc.SignIn(e.ctx, "victim@example.com", pw, "192.0.2.3"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SignUp(e.ctx, "other@example.com", pw, "192.0.2.2"); err != nil {
			t.Fatal(err)
		}
		// The bucket refills.
		e.clock.Advance(rl.RetryAfter)
		if _, err := e.svc.SignIn(e.ctx, "victim@example.com", pw, "192.0.2.2"); err != nil {
			t.Fatalf("after RetryAfter: %v", err)
		}
	})
}

// TestNoLockoutByOthers: attempts on an email from many client addresses
// exhaust the per-email limit for unknown clients, never for the client
// addresses that signed in to the account before.
func TestNoLockoutByOthers(t *testing.T) {
	sqliteOnly(t, func(c *Config) {
		c.Limits = Limits{PerIP: rate.Inf, PerAccount: rate.Every(12 * time.Second), AccountBurst: 3,
			PerEmail: rate.Every(time.Minute), EmailBurst: 10}
	}, func(e *env) {
		home, attacker := "203.0.113.7", "192.0.2.66"
		if _, err := e.svc.SignUp(e.ctx, "owner@example.com", pw, home); err != nil {
			t.Fatal(err)
		}
		// The attacker's pending account for the email opens from its
		// address, which does not make that address known.
		const other = "another secret phrase"
		pending, err := e.svc.SignUp(e.ctx, "owner@example.com", other, attacker)
		if err != nil {
			t.Fatal(err)
		}
		if in, err := e.svc.SignIn(e.ctx, "owner@example.com", other, attacker); err != nil || in.User.ID != pending.User.ID {
			t.Fatalf("pending sign-in: %v", err)
		}
		limitedSeen := false
		for i := range 40 {
			_, err := e.svc.SignIn(e.ctx, "owner@example.com", "wrong password", fmt.Sprintf("198.51.100.%d", i%20))
			var rl *RateLimitedError
			if errors.As(err, &rl) {
				limitedSeen = true
			} else {
				wantErr(t, err, ErrInvalidCredentials)
			}
		}
		if !limitedSeen {
			t.Fatal("40 attempts from 20 addresses were never limited")
		}
		// A new client address is limited: the email's limit is exhausted.
		_, err = e.svc.SignIn(e.ctx, "owner@example.com", pw, "192.0.2.200")
		limited(t, err)
		_, err = e.svc.SignIn(e.ctx, "owner@example.com", other, attacker)
		limited(t, err)
		// The owner, from where they signed in before, still gets in
		// (within the limit of their own address: 1 + 2 attempts).
		for range 2 {
			if _, err := e.svc.SignIn(e.ctx, "owner@example.com", pw, home); err != nil {
				t.Fatalf("owner locked out: %v", err)
			}
		}
	})
}

func TestRateLimitPerIP(t *testing.T) {
	sqliteOnly(t, func(c *Config) {
		c.Limits = Limits{PerIP: rate.Every(6 * time.Second), IPBurst: 4, PerAccount: rate.Inf}
	}, func(e *env) {
		ip := "198.51.100.7"
		for i := range 4 {
			_, err := e.svc.SignIn(e.ctx, fmt.Sprintf("user%d@example.com", i), pw, ip)
			wantErr(t, err, ErrInvalidCredentials)
		}
		_, err := e.svc.SignIn(e.ctx, "fresh@example.com", pw, ip)
		rl := limited(t, err)
		if rl.RetryAfter > 6*time.Second {
			t.Errorf("RetryAfter = %v", rl.RetryAfter)
		}
		// A port does not make another client.
		_, err = e.svc.SignUp(e.ctx, "new@example.com", pw, ip+":4242")
		limited(t, err)
		limited(t, e.svc.RequestPasswordReset(e.ctx, "x@example.com", ip))
		_, err = e.svc.SignInAnonymously(e.ctx, ip)
		limited(t, err)
		// Limited attempts create nothing.
		if n, _ := e.client.AuthUser.Query().Where(authuser.Email("new@example.com")).Count(e.ctx); n != 0 {
			t.Fatal("limited sign-up created an account")
		}
		// Another IP is fine; IPv6 addresses share their /64.
		if _, err := e.svc.SignUp(e.ctx, "new@example.com", pw, "198.51.100.8"); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			_, err := e.svc.SignIn(e.ctx, "nobody@example.com", pw, fmt.Sprintf("2001:db8:1:2::%x", i+1))
			wantErr(t, err, ErrInvalidCredentials)
		}
		_, err = e.svc.SignIn(e.ctx, "nobody@example.com", pw, "[2001:db8:1:2:ffff::1]:443")
		limited(t, err)
		e.clock.Advance(rl.RetryAfter)
		_, err = e.svc.SignIn(e.ctx, "fresh@example.com", pw, ip)
		wantErr(t, err, ErrInvalidCredentials)
	})
}

func TestRateLimitDefaults(t *testing.T) {
	l := Limits{}.withDefaults()
	if l.PerIP != rate.Every(6*time.Second) || l.IPBurst != 20 || l.PerAccount != rate.Every(12*time.Second) || l.AccountBurst != 10 ||
		l.PerEmail != rate.Every(3*time.Second) || l.EmailBurst != 50 {
		t.Fatalf("defaults = %+v", l)
	}
	now := time.Now()
	m := NewMemoryLimiter(l.PerAccount, l.AccountBurst, func() time.Time { return now })
	for i := range 10 {
		if ok, _ := m.Allow("k"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, wait := m.Allow("k")
	if ok || wait <= 0 || wait > 12*time.Second {
		t.Fatalf("11th attempt: %v %v", ok, wait)
	}
}

// stubLimiter counts calls and refuses one key.
type stubLimiter struct {
	calls []string
	deny  string
}

func (s *stubLimiter) Allow(key string) (bool, time.Duration) {
	s.calls = append(s.calls, key)
	if key == s.deny {
		return false, 42 * time.Second
	}
	return true, 0
}

func TestPluggableLimiter(t *testing.T) {
	ipLim := &stubLimiter{}
	acctLim := &stubLimiter{}
	emailLim := &stubLimiter{deny: "email:blocked@example.com"}
	sqliteOnly(t, func(c *Config) { c.IPLimiter, c.AccountLimiter, c.EmailLimiter = ipLim, acctLim, emailLim }, func(e *env) {
		_, err := e.svc.SignIn(e.ctx, " Blocked@Example.com ", pw, "192.0.2.1")
		if rl := limited(t, err); rl.RetryAfter != 42*time.Second {
			t.Fatalf("RetryAfter = %v", rl.RetryAfter)
		}
		if strings.Join(ipLim.calls, ",") != "ip:192.0.2.1" || strings.Join(acctLim.calls, ",") != "email:blocked@example.com|ip:192.0.2.1" ||
			strings.Join(emailLim.calls, ",") != "email:blocked@example.com" {
			t.Fatalf("calls: ip %v, account %v, email %v", ipLim.calls, acctLim.calls, emailLim.calls)
		}
	})
}

func TestMemoryLimiterBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := newMemoryLimiter(rate.Every(time.Second), 2, 100, func() time.Time { return now })
	for i := range 1000 {
		m.Allow(fmt.Sprint("k", i))
		if m.Len() > 100 {
			t.Fatalf("%d keys tracked, max 100", m.Len())
		}
	}
	// Idle entries (bucket refilled) are dropped first, losing nothing.
	now = now.Add(time.Minute)
	m.Allow("busy")
	m.Allow("busy")
	if ok, _ := m.Allow("busy"); ok {
		t.Fatal("burst exceeded")
	}
	if m.Len() > 2 {
		t.Fatalf("idle entries kept: %d", m.Len())
	}
}

func TestErrors(t *testing.T) {
	for err, code := range map[error]string{
		ErrInvalidCredentials: "UNAUTHENTICATED",
		ErrInvalidToken:       "UNAUTHENTICATED",
		ErrWeakPassword:       "BAD_USER_INPUT",
		ErrInvalidEmail:       "BAD_USER_INPUT",
		ErrUserNotFound:       "NOT_FOUND",
		ErrAlreadyLinked:      "CONFLICT",
		&RateLimitedError{RetryAfter: time.Second}:                 "RATE_LIMITED",
		fmt.Errorf("wrapped: %w", ErrInvalidToken):                 "UNAUTHENTICATED",
		errors.New("internal"):                                     "",
		fmt.Errorf("x: %w", &InputError{Field: "a", Message: "b"}): "BAD_USER_INPUT",
		fmt.Errorf("x: %w", context.Canceled):                      "",
		fmt.Errorf("x: %w", ErrInvalidCredentials):                 "UNAUTHENTICATED",
		fmt.Errorf("x: %w", &RateLimitedError{}):                   "RATE_LIMITED",
		fmt.Errorf("x: %w", ErrWeakPassword):                       "BAD_USER_INPUT",
		fmt.Errorf("x: %w", ErrUserNotFound):                       "NOT_FOUND",
		fmt.Errorf("x: %w", ErrAlreadyLinked):                      "CONFLICT",
		fmt.Errorf("x: %w", ErrInvalidRole):                        "BAD_USER_INPUT",
		fmt.Errorf("x: %w", errors.New("internal")):                "",
	} {
		if got := ErrorCode(err); got != code {
			t.Errorf("ErrorCode(%v) = %q, want %q", err, got, code)
		}
	}
	if !regexp.MustCompile(`retry in 2 s`).MatchString((&RateLimitedError{RetryAfter: 1500 * time.Millisecond}).Error()) {
		t.Error((&RateLimitedError{RetryAfter: 1500 * time.Millisecond}).Error())
	}
}
