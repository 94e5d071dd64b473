package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"kiln/runtime/access"
	"kiln/runtime/store"
	"kiln/runtime/store/authfactor"
	"kiln/runtime/store/authtoken"
)

const (
	kindTOTP         = "totp"
	kindMFAChallenge = "mfa_challenge"
	kindRecovery     = "recovery_code"
	// mfaChallengeTTL is how long an MFA challenge waits for its code.
	mfaChallengeTTL = 5 * time.Minute
	// mfaMaxAttempts wrong codes void a challenge (sign in again).
	mfaMaxAttempts = 5
	// recoveryCodes are made at activation, each good once.
	recoveryCodes = 10
	totpPeriod    = 30
	totpSkew      = 1 // steps accepted either side of now
)

// Reasons of MFA refusals (extensions.reason).
const (
	ReasonInvalidCode     = "INVALID_CODE"
	ReasonTooManyAttempts = "TOO_MANY_ATTEMPTS"
	ReasonAAL2Required    = "AAL2_REQUIRED"
	ReasonNoPendingFactor = "NO_PENDING_FACTOR"
	ReasonNoFactor        = "NO_FACTOR"
)

// CodeMFARequired is the code of *MFARequiredError.
const CodeMFARequired = "MFA_REQUIRED"

// MFARequiredError answers a sign-in whose credentials were right when the
// account has an active second factor: no session yet, but a challenge
// token (extensions.mfaToken) that CompleteMFA exchanges, with a code, for
// a session at aal2.
type MFARequiredError struct {
	Token   string
	Factors []string
}

func (e *MFARequiredError) Error() string {
	return "a second factor is required: send a code with completeMfaSignIn"
}

// Code returns "MFA_REQUIRED".
func (e *MFARequiredError) Code() string { return CodeMFARequired }

// Extensions give the challenge token and the factors that can answer it.
func (e *MFARequiredError) Extensions() map[string]any {
	return map[string]any{"mfaToken": e.Token, "factors": e.Factors}
}

// TOTPEnrollment is a new, pending TOTP factor: the secret (base32) and the
// otpauth:// URI an authenticator app scans.
type TOTPEnrollment struct {
	Secret string
	URI    string
}

// callerAAL is the assurance level of the access token of the request in
// ctx (1 without one).
func callerAAL(ctx context.Context) int {
	if v := access.From(ctx); v != nil && v.AAL >= 2 {
		return 2
	}
	return 1
}

// issueUnlessMFA starts u's session in a new family, unless u has an
// active second factor: then it returns no session and u's id, for the
// caller to answer with the challenge (challengeIfMFA) once the
// transaction is over.
func (s *Service) issueUnlessMFA(ctx context.Context, c *store.Client, u *store.AuthUser) (*Session, uuid.UUID, error) {
	kinds, err := s.activeFactors(ctx, c, u.ID)
	if err != nil {
		return nil, uuid.Nil, err
	}
	if len(kinds) > 0 {
		return nil, u.ID, nil
	}
	out, err := s.issue(ctx, c, u, uuid.New(), "")
	return out, uuid.Nil, err
}

// activeFactors lists the kinds of the user's active factors.
func (s *Service) activeFactors(ctx context.Context, c *store.Client, userID uuid.UUID) ([]string, error) {
	kinds, err := c.AuthFactor.Query().
		Where(authfactor.UserID(userID), authfactor.VerifiedAtNotNil()).
		Select(authfactor.FieldKind).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("load factors: %w", err)
	}
	if len(kinds) > 0 {
		kinds = append(kinds, kindRecovery)
	}
	return kinds, nil
}

// challengeIfMFA returns *MFARequiredError with a new challenge when the
// user has an active factor, nil otherwise.
func (s *Service) challengeIfMFA(ctx context.Context, userID uuid.UUID) error {
	kinds, err := s.activeFactors(ctx, s.client, userID)
	if err != nil || len(kinds) == 0 {
		return err
	}
	token, hash, err := newSecret()
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.client.AuthToken.Create().SetCreatedAt(now).SetUserID(userID).SetKind(kindMFAChallenge).
		SetTokenHash(hash).SetExpiresAt(now.Add(mfaChallengeTTL)).Exec(ctx); err != nil {
		return fmt.Errorf("create MFA challenge: %w", err)
	}
	return &MFARequiredError{Token: token, Factors: kinds}
}

// EnrollTOTP starts a TOTP factor for the user: a new secret, pending
// until ConfirmTOTP checks a first code (an earlier pending one is
// replaced). Replacing an active factor needs an aal2 session. Errors:
// ErrUserNotFound, *RefusedError (FORBIDDEN AAL2_REQUIRED; anonymous
// accounts: FORBIDDEN), *RateLimitedError.
func (s *Service) EnrollTOTP(ctx context.Context, userID uuid.UUID) (*TOTPEnrollment, error) {
	if err := s.limit("", userKey(userID)); err != nil {
		return nil, err
	}
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	if u.Anonymous {
		return nil, &RefusedError{CodeForbidden, "ANONYMOUS", "anonymous accounts have no second factor: link an email or a provider first"}
	}
	active, err := s.activeFactors(ctx, s.client, userID)
	if err != nil {
		return nil, err
	}
	if len(active) > 0 && callerAAL(ctx) < 2 {
		return nil, &RefusedError{CodeForbidden, ReasonAAL2Required, "replacing an active factor needs a session signed in with it (aal2)"}
	}
	account := userEmail(u)
	if account == "" {
		account = u.ID.String()
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.issuer, AccountName: account, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("enroll TOTP: %w", err)
	}
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		if _, err := c.AuthFactor.Delete().Where(authfactor.UserID(userID), authfactor.Kind(kindTOTP), authfactor.VerifiedAtIsNil()).Exec(ctx); err != nil {
			return fmt.Errorf("drop pending factor: %w", err)
		}
		return c.AuthFactor.Create().SetCreatedAt(s.now()).SetUserID(userID).SetKind(kindTOTP).SetSecret(key.Secret()).Exec(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("enroll TOTP: %w", err)
	}
	return &TOTPEnrollment{Secret: key.Secret(), URI: key.URL()}, nil
}

// totpStep checks code against secret around now and returns the time
// step it matches (0 when none does).
func totpStep(secret, code string, now time.Time) int64 {
	if len(code) != 6 {
		return 0
	}
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		step := cur + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0),
			totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step
		}
	}
	return 0
}

// useTOTP checks a code against factor f and records its step, so that the
// code (and any earlier one) is good once. It reports whether the code
// was accepted.
func (s *Service) useTOTP(ctx context.Context, c *store.Client, f *store.AuthFactor, code string) (bool, error) {
	step := totpStep(f.Secret, code, s.now())
	if step == 0 || step <= f.LastStep {
		return false, nil
	}
	n, err := c.AuthFactor.Update().Where(authfactor.ID(f.ID), authfactor.LastStepLT(step)).SetLastStep(step).Save(ctx)
	if err != nil {
		return false, fmt.Errorf("record TOTP step: %w", err)
	}
	return n == 1, nil
}

// ConfirmTOTP activates the user's pending TOTP factor with a first code,
// replaces the user's recovery codes with recoveryCodes new ones (returned
// once, stored hashed), ends the user's other sessions and returns a new
// session at aal2. Errors: *RefusedError (NOT_FOUND NO_PENDING_FACTOR,
// UNAUTHENTICATED INVALID_CODE), *RateLimitedError (counted per user).
func (s *Service) ConfirmTOTP(ctx context.Context, userID uuid.UUID, code string) ([]string, *Session, error) {
	if err := s.limit("", userKey(userID)); err != nil {
		return nil, nil, err
	}
	var codes []string
	var out *Session
	var version int
	err := s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		f, err := c.AuthFactor.Query().Where(authfactor.UserID(userID), authfactor.Kind(kindTOTP), authfactor.VerifiedAtIsNil()).
			Order(store.Desc(authfactor.FieldCreatedAt)).First(ctx)
		if store.IsNotFound(err) {
			return &RefusedError{CodeNotFound, ReasonNoPendingFactor, "no TOTP factor is waiting for confirmation: call enrollTotp first"}
		}
		if err != nil {
			return fmt.Errorf("load factor: %w", err)
		}
		ok, err := s.useTOTP(ctx, c, f, strings.TrimSpace(code))
		if err != nil {
			return err
		}
		if !ok {
			return &RefusedError{CodeUnauthenticated, ReasonInvalidCode, "wrong or already used code"}
		}
		if _, err := c.AuthFactor.Delete().Where(authfactor.UserID(userID), authfactor.Kind(kindTOTP), authfactor.IDNEQ(f.ID)).Exec(ctx); err != nil {
			return fmt.Errorf("drop old factors: %w", err)
		}
		if err := c.AuthFactor.UpdateOneID(f.ID).SetVerifiedAt(s.now()).Exec(ctx); err != nil {
			return fmt.Errorf("activate factor: %w", err)
		}
		if codes, err = s.newRecoveryCodes(ctx, c, userID); err != nil {
			return err
		}
		if version, err = s.revokeAll(ctx, c, userID); err != nil {
			return err
		}
		u, err := c.AuthUser.Get(ctx, userID)
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		out, err = s.issueAt(ctx, c, u, uuid.New(), "", 2)
		return err
	})
	if err != nil {
		return nil, nil, wrapUnlessAPI("confirm TOTP", err)
	}
	s.versions.set(userID, version, true, s.now())
	s.log.InfoContext(ctx, "auth: TOTP factor activated", "user", userID)
	return codes, out, nil
}

var recoveryAlphabet = base32.StdEncoding.WithPadding(base32.NoPadding)

// recoveryHash is the stored form of a recovery code: bound to its user,
// case and dashes ignored.
func recoveryHash(userID uuid.UUID, code string) string {
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	return hashSecret("recovery:" + userID.String() + ":" + norm)
}

// newRecoveryCodes replaces the user's recovery codes: recoveryCodes codes
// of 50 random bits (XXXXX-XXXXX), stored as hashes.
func (s *Service) newRecoveryCodes(ctx context.Context, c *store.Client, userID uuid.UUID) ([]string, error) {
	if _, err := c.AuthToken.Delete().Where(authtoken.UserID(userID), authtoken.Kind(kindRecovery)).Exec(ctx); err != nil {
		return nil, fmt.Errorf("drop recovery codes: %w", err)
	}
	now := s.now()
	codes := make([]string, recoveryCodes)
	creates := make([]*store.AuthTokenCreate, recoveryCodes)
	for i := range codes {
		var b [7]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("random recovery code: %w", err)
		}
		raw := recoveryAlphabet.EncodeToString(b[:])[:10]
		codes[i] = raw[:5] + "-" + raw[5:]
		creates[i] = c.AuthToken.Create().SetCreatedAt(now).SetUserID(userID).SetKind(kindRecovery).
			SetTokenHash(recoveryHash(userID, codes[i])).SetExpiresAt(now.AddDate(100, 0, 0))
	}
	if err := c.AuthToken.CreateBulk(creates...).Exec(ctx); err != nil {
		return nil, fmt.Errorf("store recovery codes: %w", err)
	}
	return codes, nil
}

// CompleteMFA answers an MFA challenge (the token of *MFARequiredError)
// with a TOTP code or a recovery code, and returns a session at aal2. A
// TOTP code is good once; a recovery code is used up. A wrong code counts
// against the challenge (mfaMaxAttempts void it: TOO_MANY_ATTEMPTS, sign
// in again) and against the user's and client address's rate limits. An
// unknown, used or expired challenge is ErrInvalidToken.
func (s *Service) CompleteMFA(ctx context.Context, mfaToken, code, ip string) (*Session, error) {
	h, ok := secretHash(mfaToken)
	if !ok {
		return nil, ErrInvalidToken
	}
	ch, err := s.client.AuthToken.Query().Where(authtoken.TokenHash(h), authtoken.Kind(kindMFAChallenge)).Only(ctx)
	if store.IsNotFound(err) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("complete MFA: %w", err)
	}
	if ch.UsedAt != nil || !s.now().Before(ch.ExpiresAt) {
		return nil, ErrInvalidToken
	}
	if err := s.limit(ip, "mfa:"+userKey(ch.UserID)); err != nil {
		return nil, err
	}
	code = strings.TrimSpace(code)
	var out *Session
	wrong := false
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		ok, err := s.checkSecondFactor(ctx, c, ch.UserID, code)
		if err != nil {
			return err
		}
		if !ok {
			wrong = true
			return nil
		}
		n, err := c.AuthToken.Update().Where(authtoken.ID(ch.ID), authtoken.UsedAtIsNil()).SetUsedAt(s.now()).Save(ctx)
		if err != nil {
			return fmt.Errorf("use challenge: %w", err)
		}
		if n == 0 {
			return ErrInvalidToken
		}
		u, err := c.AuthUser.Get(ctx, ch.UserID)
		if store.IsNotFound(err) {
			return ErrInvalidToken
		}
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		out, err = s.issueAt(ctx, c, u, uuid.New(), "", 2)
		return err
	})
	if err != nil {
		return nil, wrapUnlessAPI("complete MFA", err)
	}
	if wrong {
		return nil, s.countWrongCode(ctx, ch)
	}
	s.log.InfoContext(ctx, "auth: signed in with a second factor", "user", ch.UserID)
	return out, nil
}

// countWrongCode counts a wrong code against challenge ch, voiding it at
// mfaMaxAttempts, and returns the refusal.
func (s *Service) countWrongCode(ctx context.Context, ch *store.AuthToken) error {
	upd, err := s.client.AuthToken.UpdateOneID(ch.ID).AddAttempts(1).Save(ctx)
	if err != nil {
		return fmt.Errorf("complete MFA: count attempt: %w", err)
	}
	if upd.Attempts >= mfaMaxAttempts {
		if err := s.client.AuthToken.UpdateOneID(ch.ID).SetUsedAt(s.now()).Exec(ctx); err != nil {
			return fmt.Errorf("complete MFA: void challenge: %w", err)
		}
		return &RefusedError{CodeUnauthenticated, ReasonTooManyAttempts, "too many wrong codes: sign in again"}
	}
	return &RefusedError{CodeUnauthenticated, ReasonInvalidCode, "wrong or already used code"}
}

// checkSecondFactor checks code as a TOTP code of the user's active
// factor (6 digits) or as one of its recovery codes (used up).
func (s *Service) checkSecondFactor(ctx context.Context, c *store.Client, userID uuid.UUID, code string) (bool, error) {
	if len(code) == 6 && strings.Trim(code, "0123456789") == "" {
		f, err := c.AuthFactor.Query().Where(authfactor.UserID(userID), authfactor.Kind(kindTOTP), authfactor.VerifiedAtNotNil()).First(ctx)
		if store.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("load factor: %w", err)
		}
		return s.useTOTP(ctx, c, f, code)
	}
	n, err := c.AuthToken.Update().
		Where(authtoken.UserID(userID), authtoken.Kind(kindRecovery), authtoken.TokenHash(recoveryHash(userID, code)), authtoken.UsedAtIsNil()).
		SetUsedAt(s.now()).Save(ctx)
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	return n == 1, nil
}

// DisableTOTP removes the user's TOTP factor and recovery codes; it needs
// an aal2 session (FORBIDDEN AAL2_REQUIRED), and a user without an active
// factor gets NOT_FOUND NO_FACTOR.
func (s *Service) DisableTOTP(ctx context.Context, userID uuid.UUID) error {
	if callerAAL(ctx) < 2 {
		return &RefusedError{CodeForbidden, ReasonAAL2Required, "turning off a second factor needs a session signed in with it (aal2)"}
	}
	err := s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		n, err := c.AuthFactor.Delete().Where(authfactor.UserID(userID), authfactor.Kind(kindTOTP)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete factor: %w", err)
		}
		if n == 0 {
			return &RefusedError{CodeNotFound, ReasonNoFactor, "no TOTP factor to turn off"}
		}
		if _, err := c.AuthToken.Delete().Where(authtoken.UserID(userID), authtoken.Kind(kindRecovery)).Exec(ctx); err != nil {
			return fmt.Errorf("delete recovery codes: %w", err)
		}
		return nil
	})
	if err != nil {
		return wrapUnlessAPI("disable TOTP", err)
	}
	s.log.InfoContext(ctx, "auth: TOTP factor removed", "user", userID)
	return nil
}

// MFAEnabled reports whether the user has an active second factor.
func (s *Service) MFAEnabled(ctx context.Context, userID uuid.UUID) (bool, error) {
	kinds, err := s.activeFactors(ctx, s.client, userID)
	return len(kinds) > 0, err
}
