package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"kiln/runtime/store"
	"kiln/runtime/store/authrole"
	"kiln/runtime/store/authsession"
	"kiln/runtime/store/authtoken"
	"kiln/runtime/store/authuser"
)

func userKey(id uuid.UUID) string { return "user:" + id.String() }

func (s *Service) loadUser(ctx context.Context, id uuid.UUID) (*store.AuthUser, error) {
	u, err := s.client.AuthUser.Get(ctx, id)
	if store.IsNotFound(err) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	return u, nil
}

// ChangePassword sets a new password after checking the current one, ends
// every session of the user (revokes all refresh tokens, bumps the token
// version) and returns a fresh session. Errors: ErrWeakPassword (field
// "newPassword"), ErrInvalidCredentials (wrong current password, or an
// anonymous account), ErrUserNotFound, *RateLimitedError (attempts count
// against the account limit).
func (s *Service) ChangePassword(ctx context.Context, userID uuid.UUID, current, next string) (*Session, error) {
	if err := s.limit("", userKey(userID)); err != nil {
		return nil, err
	}
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := s.policy.check("newPassword", next, userEmail(u)); err != nil {
		return nil, err
	}
	if err := s.verifyPassword(ctx, u, current); err != nil {
		return nil, err
	}
	hash, err := s.hashFor(ctx, u, next)
	if err != nil {
		return nil, err
	}
	var out *Session
	var version int
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		n, err := c.AuthUser.Update().Where(authuser.ID(userID), authuser.PasswordHash(u.PasswordHash)).
			SetPasswordHash(hash).Save(ctx)
		if err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		if n == 0 { // changed concurrently
			return ErrInvalidCredentials
		}
		if version, err = s.revokeAll(ctx, c, userID); err != nil {
			return err
		}
		fresh, err := c.AuthUser.Get(ctx, userID)
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		out, err = s.issueAt(ctx, c, fresh, uuid.New(), "", callerAAL(ctx))
		return err
	})
	if err != nil {
		return nil, wrapUnlessAPI("change password", err)
	}
	s.versions.set(userID, version, true, s.now())
	s.log.InfoContext(ctx, "auth: password changed", "user", userID)
	return out, nil
}

// userEmail is u's address (held or pending), or "".
func userEmail(u *store.AuthUser) string {
	switch {
	case u.Email != nil:
		return *u.Email
	case u.PendingEmail != nil:
		return *u.PendingEmail
	}
	return ""
}

// LinkAccount turns an anonymous account into an email account with the
// same id (so its data stays), ends its anonymous sessions and returns a
// fresh session. Like SignUp, the answer never tells whether the email is
// registered: when another account holds the email, the linked account gets
// it as its pending email (see SignUp) and a notice is mailed to the
// address. Every path runs the same two argon2 computations. Errors:
// ErrInvalidEmail, ErrWeakPassword, ErrAlreadyLinked, ErrUserNotFound,
// *RateLimitedError (counted like SignUp: per IP, per email and IP, per
// email).
func (s *Service) LinkAccount(ctx context.Context, userID uuid.UUID, email, password, ip string) (*Session, error) {
	if err := s.limitEmail(ip, email); err != nil {
		return nil, err
	}
	addr, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := s.policy.check("password", password, addr); err != nil {
		return nil, err
	}
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	if !u.Anonymous {
		return nil, ErrAlreadyLinked
	}
	// Both hashes on every path: a holding account's and a pending one's.
	fresh, err := s.hash(ctx, password)
	if err != nil {
		return nil, err
	}
	pendingHash, err := s.pendingHash(ctx, addr, password)
	if err != nil {
		return nil, err
	}
	taken, err := s.client.AuthUser.Query().Where(authuser.Email(addr)).Exist(ctx)
	if err != nil {
		return nil, fmt.Errorf("link account: %w", err)
	}
	out, version, linked, err := s.link(ctx, userID, addr, fresh, pendingHash, taken)
	if !taken && store.IsConstraintError(err) {
		taken = true // claimed concurrently
		out, version, linked, err = s.link(ctx, userID, addr, fresh, pendingHash, taken)
	}
	if err != nil {
		return nil, wrapUnlessAPI("link account", err)
	}
	s.versions.set(userID, version, true, s.now())
	if taken {
		s.log.InfoContext(ctx, "auth: anonymous account linked as a pending account (its address has an account)", "user", userID)
		s.sendNotice(ctx, addr)
	} else {
		s.trustClient(addr, ip)
		s.log.InfoContext(ctx, "auth: anonymous account linked", "user", userID)
		if s.verify {
			s.sendVerification(ctx, linked)
		}
	}
	return out, nil
}

// link gives the anonymous account userID the address addr, held (with
// hash fresh) or, when taken, pending (with pendingHash), and starts its
// session; it returns the linked account too.
func (s *Service) link(ctx context.Context, userID uuid.UUID, addr, fresh, pendingHash string, taken bool) (*Session, int, *store.AuthUser, error) {
	var out *Session
	var version int
	var linked *store.AuthUser
	err := s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		upd := c.AuthUser.Update().Where(authuser.ID(userID), authuser.Anonymous(true)).SetAnonymous(false)
		if taken {
			upd.SetPendingEmail(addr).SetPasswordHash(pendingHash)
		} else {
			upd.SetEmail(addr).SetPasswordHash(fresh)
		}
		n, err := upd.Save(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrAlreadyLinked
		}
		if version, err = s.revokeAll(ctx, c, userID); err != nil {
			return err
		}
		if linked, err = c.AuthUser.Get(ctx, userID); err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		out, err = s.issue(ctx, c, linked, uuid.New(), "")
		return err
	})
	return out, version, linked, err
}

// DeleteAccount deletes the account with its sessions, roles and tokens,
// in one transaction that first runs Config.OnDeleteAccount (when set; its
// error aborts the deletion and nothing is lost). An email account must
// confirm with its password (ErrInvalidCredentials otherwise; attempts
// count against the account limit); an anonymous one, or one that signs
// in through providers only, needs none. An account with an active second
// factor needs an aal2 session (FORBIDDEN AAL2_REQUIRED).
func (s *Service) DeleteAccount(ctx context.Context, userID uuid.UUID, password string) error {
	u, err := s.loadUser(ctx, userID)
	if err != nil {
		return err
	}
	if mfa, err := s.MFAEnabled(ctx, userID); err != nil {
		return err
	} else if mfa && callerAAL(ctx) < 2 {
		return &RefusedError{CodeForbidden, ReasonAAL2Required, "deleting an account with a second factor needs a session signed in with it (aal2)"}
	}
	if !u.Anonymous && u.PasswordHash != "" {
		if err := s.limit("", userKey(userID)); err != nil {
			return err
		}
		if err := s.verifyPassword(ctx, u, password); err != nil {
			return err
		}
	}
	err = s.inTx(ctx, func(tx *store.Tx) error {
		if s.onDelete != nil {
			if err := s.onDelete(ctx, tx.Client(), userID); err != nil {
				return fmt.Errorf("delete what the user owns: %w", err)
			}
		}
		if _, err := tx.AuthSession.Delete().Where(authsession.UserID(userID)).Exec(ctx); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		if _, err := tx.AuthRole.Delete().Where(authrole.UserID(userID)).Exec(ctx); err != nil {
			return fmt.Errorf("delete roles: %w", err)
		}
		if _, err := tx.AuthToken.Delete().Where(authtoken.UserID(userID)).Exec(ctx); err != nil {
			return fmt.Errorf("delete tokens: %w", err)
		}
		n, err := tx.AuthUser.Delete().Where(authuser.ID(userID)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if n == 0 {
			return ErrUserNotFound
		}
		return nil
	})
	if err != nil {
		return wrapUnlessAPI("delete account", err)
	}
	s.versions.set(userID, 0, false, s.now())
	s.log.InfoContext(ctx, "auth: account deleted", "user", userID)
	return nil
}

// RequestPasswordReset mails a single-use reset token (valid 1 hour; only
// its hash is stored) to the account holding that email; pending accounts
// (see SignUp) never get one, as they do not own the mailbox. It returns
// nil whether or not the email has an account, and the account is looked
// up, the token created and mailed in the background, so neither the
// result nor the time taken tells whether the email is registered;
// delivery failures are logged. Errors: ErrInvalidEmail, *RateLimitedError
// (counted like SignIn).
func (s *Service) RequestPasswordReset(ctx context.Context, email, ip string) error {
	if err := s.limitEmail(ip, email); err != nil {
		return err
	}
	addr, err := normalizeEmail(email)
	if err != nil {
		return err
	}
	s.mail.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		if err := s.sendReset(ctx, addr); err != nil {
			s.log.ErrorContext(ctx, "auth: password reset mail failed", "err", err)
		}
	})
	return nil
}

// sendReset mails a reset token to the account holding addr, if any.
func (s *Service) sendReset(ctx context.Context, addr string) error {
	u, err := s.client.AuthUser.Query().Where(authuser.Email(addr)).Only(ctx)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load account: %w", err)
	}
	if u.PasswordHash == "" || u.Anonymous {
		return nil
	}
	userID := u.ID
	token, hash, err := newSecret()
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.client.AuthToken.Create().SetCreatedAt(now).SetUserID(userID).SetKind(kindReset).
		SetTokenHash(hash).SetExpiresAt(now.Add(resetTTL)).Exec(ctx); err != nil {
		return fmt.Errorf("store reset token: %w", err)
	}
	d := MailData{Code: token}
	if s.resetURL != "" {
		d.Link = fmt.Sprintf(s.resetURL, token)
	}
	if err := s.sendMail(ctx, addr, MailReset, d); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "auth: password reset mail sent", "user", userID)
	return nil
}

// ResetPassword sets a new password with a token from a reset mail. The
// token works once; the reset ends every session of the user (revokes all
// refresh tokens, bumps the token version) and voids its other reset
// tokens. Errors: ErrWeakPassword (field "newPassword"), ErrInvalidToken
// (unknown, used or expired token).
func (s *Service) ResetPassword(ctx context.Context, token, newPassword string) error {
	h, ok := secretHash(token)
	if !ok {
		return ErrInvalidToken
	}
	now := s.now()
	t, err := s.client.AuthToken.Query().Where(authtoken.TokenHash(h), authtoken.Kind(kindReset)).Only(ctx)
	if store.IsNotFound(err) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	if t.UsedAt != nil || !now.Before(t.ExpiresAt) {
		return ErrInvalidToken
	}
	u, err := s.client.AuthUser.Get(ctx, t.UserID)
	if store.IsNotFound(err) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	if err := s.policy.check("newPassword", newPassword, userEmail(u)); err != nil {
		return err
	}
	hash, err := s.hashFor(ctx, u, newPassword)
	if err != nil {
		return err
	}
	var version int
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		n, err := c.AuthToken.Update().Where(authtoken.TokenHash(h), authtoken.UsedAtIsNil()).SetUsedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("use token: %w", err)
		}
		if n == 0 { // used concurrently
			return ErrInvalidToken
		}
		if _, err := c.AuthToken.Update().
			Where(authtoken.UserID(t.UserID), authtoken.Kind(kindReset), authtoken.UsedAtIsNil()).
			SetUsedAt(now).Save(ctx); err != nil {
			return fmt.Errorf("void reset tokens: %w", err)
		}
		// The reset mail reached the address: it is the user's.
		if err := c.AuthUser.UpdateOneID(t.UserID).SetPasswordHash(hash).SetEmailVerified(u.Email != nil).Exec(ctx); err != nil {
			if store.IsNotFound(err) {
				return ErrInvalidToken
			}
			return fmt.Errorf("set password: %w", err)
		}
		version, err = s.revokeAll(ctx, c, t.UserID)
		if errors.Is(err, ErrUserNotFound) {
			return ErrInvalidToken
		}
		return err
	})
	if err != nil {
		return wrapUnlessAPI("reset password", err)
	}
	s.versions.set(t.UserID, version, true, s.now())
	s.log.InfoContext(ctx, "auth: password reset", "user", t.UserID)
	return nil
}

const maxRoleLen = 64

func validRole(role string) bool {
	return role != "" && strings.TrimSpace(role) == role && utf8.RuneCountInString(role) <= maxRoleLen
}

// AssignRole gives the user a role (idempotent). Access tokens carry the
// roles of their issue time; the token version is bumped so older tokens
// stop working within seconds and the client's refresh brings the role.
// Errors: ErrInvalidRole, ErrUserNotFound.
func (s *Service) AssignRole(ctx context.Context, userID uuid.UUID, role string) error {
	if !validRole(role) {
		return ErrInvalidRole
	}
	if _, err := s.loadUser(ctx, userID); err != nil {
		return err
	}
	has, err := s.client.AuthRole.Query().Where(authrole.UserID(userID), authrole.Role(role)).Exist(ctx)
	if err != nil {
		return fmt.Errorf("assign role: %w", err)
	}
	if has {
		return nil
	}
	err = s.inTx(ctx, func(tx *store.Tx) error {
		if err := tx.AuthRole.Create().SetCreatedAt(s.now()).SetUserID(userID).SetRole(role).Exec(ctx); err != nil {
			return err
		}
		// Like a revocation, a grant ends older access tokens within seconds
		// on every instance; clients refresh and get tokens with the role.
		u, err := tx.AuthUser.UpdateOneID(userID).AddTokenVersion(1).SetUpdatedAt(s.now()).Save(ctx)
		if err == nil {
			s.versions.set(userID, u.TokenVersion, true, s.now())
		}
		return err
	})
	if store.IsConstraintError(err) {
		// Assigned concurrently, or the user was deleted meanwhile.
		if has, qerr := s.client.AuthRole.Query().Where(authrole.UserID(userID), authrole.Role(role)).Exist(ctx); qerr == nil && has {
			return nil
		}
		return ErrUserNotFound
	}
	if err != nil {
		return fmt.Errorf("assign role: %w", err)
	}
	return nil
}

// RevokeRole takes a role from the user (idempotent). When the user had it,
// the token version is bumped so access tokens still carrying the role are
// rejected within seconds; clients then refresh (refresh tokens stay valid)
// and get tokens without it. Errors: ErrInvalidRole, ErrUserNotFound.
func (s *Service) RevokeRole(ctx context.Context, userID uuid.UUID, role string) error {
	if !validRole(role) {
		return ErrInvalidRole
	}
	var version int
	removed := false
	err := s.inTx(ctx, func(tx *store.Tx) error {
		exists, err := tx.AuthUser.Query().Where(authuser.ID(userID)).Exist(ctx)
		if err != nil {
			return err
		}
		if !exists {
			return ErrUserNotFound
		}
		n, err := tx.AuthRole.Delete().Where(authrole.UserID(userID), authrole.Role(role)).Exec(ctx)
		if err != nil || n == 0 {
			return err
		}
		removed = true
		u, err := tx.AuthUser.UpdateOneID(userID).AddTokenVersion(1).SetUpdatedAt(s.now()).Save(ctx)
		if err != nil {
			return err
		}
		version = u.TokenVersion
		return nil
	})
	if err != nil {
		return wrapUnlessAPI("revoke role", err)
	}
	if removed {
		s.versions.set(userID, version, true, s.now())
	}
	return nil
}

// wrapUnlessAPI returns this package's API errors as they are and wraps
// anything else with context.
func wrapUnlessAPI(op string, err error) error {
	if ErrorCode(err) != "" {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Shutdown waits until the reset mails being sent in the background are
// delivered (or failed), or ctx ends. Call it when the server stops.
func (s *Service) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.mail.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: pending reset mails: %w", ctx.Err())
	}
}

// reservedClaims are JWT claims Kiln sets itself.
var reservedClaims = map[string]bool{"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true,
	"jti": true, "roles": true, "anon": true, "tv": true, "kid": true, "email_verified": true, "aal": true, "sid": true}

// SetClaims replaces the user's custom claims (admins only, enforced by the
// caller). Rules read them as $viewer.claims.<name>. The token version is
// bumped so tokens with the old claims stop working within seconds; clients
// refresh and get the new ones. Errors: *InputError for a reserved or empty
// name, ErrUserNotFound.
func (s *Service) SetClaims(ctx context.Context, userID uuid.UUID, claims map[string]any) error {
	for k := range claims {
		if k == "" || reservedClaims[k] {
			return &InputError{Field: "claims", Message: fmt.Sprintf("%q is a reserved claim name", k)}
		}
	}
	u, err := s.client.AuthUser.UpdateOneID(userID).SetClaims(claims).AddTokenVersion(1).SetUpdatedAt(s.now()).Save(ctx)
	if store.IsNotFound(err) {
		return ErrUserNotFound
	}
	if err != nil {
		return fmt.Errorf("set claims: %w", err)
	}
	s.versions.set(userID, u.TokenVersion, true, s.now())
	return nil
}
