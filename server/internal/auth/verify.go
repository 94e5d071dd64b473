package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/store"
	"kiln/runtime/store/authtoken"
	"kiln/runtime/store/authuser"
)

const (
	kindVerify = "email_verification"
	// verifyTTL is how long a verification code works.
	verifyTTL = time.Hour
	// verifyMaxAttempts wrong codes void a verification code.
	verifyMaxAttempts = 5
)

// ReasonNoEmail: the account holds no email address to verify.
const ReasonNoEmail = "NO_EMAIL"

// sixDigits returns a uniformly random 6-digit code.
func sixDigits() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("random code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// verifyHash is the stored form of a verification code: bound to the user
// and the address it was sent to, so a code sent to an address the
// account no longer holds verifies nothing.
func verifyHash(userID uuid.UUID, addr, code string) string {
	return hashSecret("verify:" + userID.String() + ":" + addr + ":" + code)
}

// sendVerification mails a new verification code to the address u holds
// (in the background; delivery failures are logged), voiding earlier
// codes. Accounts without a held address, or with a verified one, get
// none.
func (s *Service) sendVerification(ctx context.Context, u *store.AuthUser) {
	if u.Email == nil || u.EmailVerified {
		return
	}
	addr, userID := *u.Email, u.ID
	s.mail.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		if err := s.mailVerification(ctx, userID, addr); err != nil {
			s.log.ErrorContext(ctx, "auth: verification mail failed", "user", userID, "err", err)
		}
	})
}

func (s *Service) mailVerification(ctx context.Context, userID uuid.UUID, addr string) error {
	code, err := sixDigits()
	if err != nil {
		return err
	}
	now := s.now()
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		if _, err := c.AuthToken.Delete().Where(authtoken.UserID(userID), authtoken.Kind(kindVerify)).Exec(ctx); err != nil {
			return fmt.Errorf("void codes: %w", err)
		}
		return c.AuthToken.Create().SetCreatedAt(now).SetUserID(userID).SetKind(kindVerify).
			SetTokenHash(verifyHash(userID, addr, code)).SetExpiresAt(now.Add(verifyTTL)).Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("store verification code: %w", err)
	}
	return s.sendMail(ctx, addr, MailVerification, MailData{Code: code})
}

// RequestEmailVerification mails the user a new verification code for the
// address the account holds (nothing when it is verified already).
// Errors: *RefusedError (CONFLICT NO_EMAIL: anonymous and provider-only
// accounts without an address, and pending accounts, which never hold
// theirs), ErrUserNotFound, *RateLimitedError (per user, like the other
// mails: a burst of 3, then one per 10 minutes).
func (s *Service) RequestEmailVerification(ctx context.Context, userID uuid.UUID) error {
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return err
	}
	if u.Email == nil {
		return &RefusedError{CodeConflict, ReasonNoEmail, "the account holds no email address to verify"}
	}
	if u.EmailVerified {
		return nil
	}
	if ok, d := s.noticeLim.Allow("verify:" + userKey(userID)); !ok {
		return &RateLimitedError{RetryAfter: max(d, time.Second)}
	}
	s.sendVerification(ctx, u)
	return nil
}

// VerifyEmail checks a verification code of the user and marks the email
// the account holds verified, answering with a new session whose access
// token says so (email_verified). A code works once, for one hour, for the
// address it was mailed to; five wrong codes void it. Errors:
// *RefusedError (UNAUTHENTICATED INVALID_CODE or TOO_MANY_ATTEMPTS),
// *RateLimitedError (per user).
func (s *Service) VerifyEmail(ctx context.Context, userID uuid.UUID, code string) (*Session, error) {
	if err := s.limit("", "verify:"+userKey(userID)); err != nil {
		return nil, err
	}
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	invalid := &RefusedError{CodeUnauthenticated, ReasonInvalidCode, "wrong, used or expired code: request a new one"}
	if u.Email == nil {
		return nil, invalid
	}
	now := s.now()
	tok, err := s.client.AuthToken.Query().
		Where(authtoken.UserID(userID), authtoken.Kind(kindVerify), authtoken.UsedAtIsNil(), authtoken.ExpiresAtGT(now)).
		Order(store.Desc(authtoken.FieldCreatedAt)).First(ctx)
	if store.IsNotFound(err) {
		return nil, invalid
	}
	if err != nil {
		return nil, fmt.Errorf("verify email: %w", err)
	}
	want := verifyHash(userID, *u.Email, strings.TrimSpace(code))
	if subtle.ConstantTimeCompare([]byte(want), []byte(tok.TokenHash)) != 1 {
		upd, err := s.client.AuthToken.UpdateOneID(tok.ID).AddAttempts(1).Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("verify email: count attempt: %w", err)
		}
		if upd.Attempts >= verifyMaxAttempts {
			if err := s.client.AuthToken.UpdateOneID(tok.ID).SetUsedAt(now).Exec(ctx); err != nil {
				return nil, fmt.Errorf("verify email: void code: %w", err)
			}
			return nil, &RefusedError{CodeUnauthenticated, ReasonTooManyAttempts, "too many wrong codes: request a new one"}
		}
		return nil, invalid
	}
	var out *Session
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		n, err := c.AuthToken.Update().Where(authtoken.ID(tok.ID), authtoken.UsedAtIsNil()).SetUsedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("use code: %w", err)
		}
		if n == 0 {
			return invalid
		}
		n, err = c.AuthUser.Update().Where(authuser.ID(userID), authuser.Email(*u.Email)).
			SetEmailVerified(true).SetUpdatedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("mark verified: %w", err)
		}
		if n == 0 { // the address changed meanwhile
			return invalid
		}
		fresh, err := c.AuthUser.Get(ctx, userID)
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		out, err = s.issueAt(ctx, c, fresh, uuid.New(), "", callerAAL(ctx))
		return err
	})
	if err != nil {
		return nil, wrapUnlessAPI("verify email", err)
	}
	s.log.InfoContext(ctx, "auth: email verified", "user", userID)
	return out, nil
}
