package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/store"
	"kiln/runtime/store/authemailcode"
	"kiln/runtime/store/authuser"
)

const (
	// emailCodeTTL is how long a passwordless sign-in code works.
	emailCodeTTL = 10 * time.Minute
	// emailCodeMaxAttempts wrong codes void a code.
	emailCodeMaxAttempts = 5
)

func emailCodeHash(addr, code string) string {
	return hashSecret("email-code:" + addr + ":" + code)
}

// RequestEmailCode mails a 6-digit sign-in code to email, valid ten
// minutes, whether or not an account holds the address (signing in with
// it creates one). With redirectTo (one of the allowed redirect URIs,
// else ErrMagicLinkNotAllowed before anything else) the mail also carries
// a magic link: redirectTo with ?email=&code= of the same single-use code,
// which the app passes to SignInWithEmailCode. It answers nil before anything is looked up or sent,
// and the mail goes out in the background, so neither the answer nor its
// time tells whether the email is registered; a new code voids the
// address's earlier ones. Mails to one address are limited like the
// sign-up notices (a burst of 3, then one per 10 minutes; over it, none is
// sent and the answer is the same). Errors: ErrInvalidEmail,
// *RateLimitedError (counted like SignIn).
func (s *Service) RequestEmailCode(ctx context.Context, email, redirectTo, ip string) error {
	if err := s.limitEmail(ip, email); err != nil {
		return err
	}
	if _, ok := s.redirectURIs[redirectTo]; redirectTo != "" && !ok {
		return ErrMagicLinkNotAllowed
	}
	addr, err := normalizeEmail(email)
	if err != nil {
		return err
	}
	if ok, _ := s.noticeLim.Allow("code:" + accountKey(addr)); !ok {
		s.log.InfoContext(ctx, "auth: sign-in code not sent: too many for this address recently")
		return nil
	}
	s.mail.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		if err := s.mailEmailCode(ctx, addr, redirectTo); err != nil {
			s.log.ErrorContext(ctx, "auth: sign-in code mail failed", "err", err)
		}
	})
	return nil
}

// ErrMagicLinkNotAllowed: requestEmailCode's redirectTo is not on the
// allow-list.
var ErrMagicLinkNotAllowed = &InputError{Field: "redirectTo", Message: "is not one of the allowed redirect URIs (KILN_AUTH_REDIRECT_URIS)"}

// magicLink is redirectTo with the address and code in its query.
func magicLink(redirectTo, addr, code string) (string, error) {
	u, err := url.Parse(redirectTo)
	if err != nil {
		return "", fmt.Errorf("magic link: %w", err)
	}
	q := u.Query()
	q.Set("email", addr)
	q.Set("code", code)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (s *Service) mailEmailCode(ctx context.Context, addr, redirectTo string) error {
	code, err := sixDigits()
	if err != nil {
		return err
	}
	now := s.now()
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		if _, err := c.AuthEmailCode.Update().
			Where(authemailcode.Email(addr), authemailcode.UsedAtIsNil()).SetUsedAt(now).Save(ctx); err != nil {
			return fmt.Errorf("void codes: %w", err)
		}
		// Expired codes of any address go too.
		if _, err := c.AuthEmailCode.Delete().Where(authemailcode.ExpiresAtLT(now.Add(-emailCodeTTL))).Exec(ctx); err != nil {
			return fmt.Errorf("drop expired codes: %w", err)
		}
		return c.AuthEmailCode.Create().SetCreatedAt(now).SetEmail(addr).
			SetCodeHash(emailCodeHash(addr, code)).SetExpiresAt(now.Add(emailCodeTTL)).Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("store sign-in code: %w", err)
	}
	d := MailData{Code: code}
	if redirectTo != "" {
		if d.Link, err = magicLink(redirectTo, addr, code); err != nil {
			return err
		}
	}
	return s.sendMail(ctx, addr, MailEmailCode, d)
}

// SignInWithEmailCode signs in with a code from RequestEmailCode's mail:
// to the account holding the address (its email becomes verified: the
// code reached it), or to a new account holding it, verified, without a
// password. The code works once, for ten minutes; five wrong codes void
// it. An unknown address, a wrong, used or expired code all answer
// INVALID_CODE. An account with an active second factor answers
// *MFARequiredError. Errors: *RefusedError (UNAUTHENTICATED INVALID_CODE,
// TOO_MANY_ATTEMPTS), ErrInvalidEmail, *RateLimitedError (counted like
// SignIn).
func (s *Service) SignInWithEmailCode(ctx context.Context, email, code, ip string) (*Session, error) {
	if err := s.limitEmail(ip, email); err != nil {
		return nil, err
	}
	addr, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	invalid := &RefusedError{CodeUnauthenticated, ReasonInvalidCode, "wrong, used or expired code: request a new one"}
	now := s.now()
	row, err := s.client.AuthEmailCode.Query().
		Where(authemailcode.Email(addr), authemailcode.UsedAtIsNil(), authemailcode.ExpiresAtGT(now)).
		Order(store.Desc(authemailcode.FieldCreatedAt)).First(ctx)
	if store.IsNotFound(err) {
		return nil, invalid
	}
	if err != nil {
		return nil, fmt.Errorf("sign in with email code: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(emailCodeHash(addr, strings.TrimSpace(code))), []byte(row.CodeHash)) != 1 {
		upd, err := s.client.AuthEmailCode.UpdateOneID(row.ID).AddAttempts(1).Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("sign in with email code: count attempt: %w", err)
		}
		if upd.Attempts >= emailCodeMaxAttempts {
			if err := s.client.AuthEmailCode.UpdateOneID(row.ID).SetUsedAt(now).Exec(ctx); err != nil {
				return nil, fmt.Errorf("sign in with email code: void code: %w", err)
			}
			return nil, &RefusedError{CodeUnauthenticated, ReasonTooManyAttempts, "too many wrong codes: request a new one"}
		}
		return nil, invalid
	}
	for range 2 { // a retry finds the account created concurrently
		out, err := s.signInByCode(ctx, row.ID, addr, invalid)
		if store.IsConstraintError(err) {
			continue
		}
		if err != nil {
			return nil, wrapUnlessAPI("sign in with email code", err)
		}
		s.trustClient(addr, ip)
		return out, nil
	}
	return nil, invalid
}

// signInByCode uses code row id and signs in to the account of addr,
// creating it when none holds the address.
func (s *Service) signInByCode(ctx context.Context, id uuid.UUID, addr string, invalid error) (*Session, error) {
	var out *Session
	var mfaUser uuid.UUID
	err := s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		now := s.now()
		n, err := c.AuthEmailCode.Update().Where(authemailcode.ID(id), authemailcode.UsedAtIsNil()).SetUsedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("use code: %w", err)
		}
		if n == 0 {
			return invalid
		}
		u, err := c.AuthUser.Query().Where(authuser.Email(addr)).Only(ctx)
		switch {
		case store.IsNotFound(err):
			u, err = c.AuthUser.Create().SetCreatedAt(now).SetUpdatedAt(now).SetEmail(addr).SetEmailVerified(true).Save(ctx)
			if err != nil {
				return err
			}
			s.log.InfoContext(ctx, "auth: account created by email code", "user", u.ID)
		case err != nil:
			return fmt.Errorf("load account: %w", err)
		case !u.EmailVerified:
			if u, err = c.AuthUser.UpdateOne(u).SetEmailVerified(true).SetUpdatedAt(now).Save(ctx); err != nil {
				return fmt.Errorf("mark verified: %w", err)
			}
		}
		out, mfaUser, err = s.issueUnlessMFA(ctx, c, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	if mfaUser != uuid.Nil {
		if err := s.challengeIfMFA(ctx, mfaUser); err != nil {
			return nil, err
		}
		return nil, invalid // the factor was removed concurrently: ask again
	}
	return out, nil
}
