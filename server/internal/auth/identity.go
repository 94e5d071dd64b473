package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/store"
	"kiln/runtime/store/authidentity"
	"kiln/runtime/store/authuser"
)

// Identity is an account at a sign-in provider that signs in to a user.
type Identity struct {
	Provider      string
	Email         *string
	EmailVerified bool
	CreatedAt     time.Time
}

// SignInWithIDToken signs in with an ID token of a configured provider
// (see verifyIDToken for what is checked):
//
//   - the token's identity (provider and subject) is known: its account;
//   - else, when the token asserts a verified email that an account holds
//     as its verified email: that account, which gets the identity;
//   - else, when the caller is an anonymous user: the caller's account
//     becomes a provider account with the identity, keeping its id and
//     data (its anonymous sessions end);
//   - else a new account with the identity, holding the email when the
//     provider asserts it verified and no account holds it.
//
// An email held by another account refuses the sign-in: EMAIL_NOT_VERIFIED
// when the provider does not assert it verified, ACCOUNT_EXISTS when the
// holding account's email is not verified (its owner signs in and calls
// LinkIdentity). caller is the signed-in user making the call, or
// uuid.Nil. An account with an active second factor answers
// *MFARequiredError instead of a session. Attempts count against the
// client address's rate limit. Errors: *RefusedError, ErrUnknownProvider,
// *RateLimitedError.
func (s *Service) SignInWithIDToken(ctx context.Context, caller uuid.UUID, provider, idToken, nonce, ip string) (*Session, error) {
	if err := s.limit(ip, ""); err != nil {
		return nil, err
	}
	a, err := s.verifyIDToken(ctx, provider, idToken, nonce)
	if err != nil {
		return nil, err
	}
	return s.signInAsserted(ctx, caller, a, "sign in with ID token")
}

// signInAsserted signs in with what a verified ID token asserted (see
// SignInWithIDToken); op names the operation in errors.
func (s *Service) signInAsserted(ctx context.Context, caller uuid.UUID, a *assertion, op string) (*Session, error) {
	for range 2 { // a retry sees the identity or email created concurrently
		out, version, err := s.signInIdentity(ctx, caller, a)
		if store.IsConstraintError(err) {
			continue
		}
		if err != nil {
			return nil, wrapUnlessAPI(op, err)
		}
		if version > 0 {
			s.versions.set(caller, version, true, s.now())
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: the identity was created and removed concurrently", op)
}

// signInIdentity does SignInWithIDToken's work in one transaction; version
// is the caller's new token version when its anonymous account was
// upgraded (0 otherwise).
func (s *Service) signInIdentity(ctx context.Context, caller uuid.UUID, a *assertion) (out *Session, version int, _ error) {
	var mfaUser uuid.UUID // an account with a second factor: no session yet
	// issue starts u's session, unless u has an active second factor.
	issue := func(c *store.Client, u *store.AuthUser) (err error) {
		out, mfaUser, err = s.issueUnlessMFA(ctx, c, u)
		return err
	}
	err := s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		ident, err := c.AuthIdentity.Query().
			Where(authidentity.Provider(a.provider), authidentity.Subject(a.subject)).Only(ctx)
		switch {
		case err == nil:
			if err := s.refreshIdentity(ctx, c, ident, a); err != nil {
				return err
			}
			u, err := c.AuthUser.Get(ctx, ident.UserID)
			if err != nil {
				return fmt.Errorf("load user: %w", err)
			}
			return issue(c, u)
		case !store.IsNotFound(err):
			return fmt.Errorf("load identity: %w", err)
		}
		var target *store.AuthUser
		if a.email != "" {
			holder, err := c.AuthUser.Query().Where(authuser.Email(a.email)).Only(ctx)
			switch {
			case store.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("load account: %w", err)
			case holder.ID == caller:
				target = holder
			case !a.emailVerified:
				return &RefusedError{CodeConflict, ReasonEmailNotVerified,
					"an account holds this email and the provider does not assert it verified: sign in to that account and call linkIdentity"}
			case !holder.EmailVerified:
				return &RefusedError{CodeConflict, ReasonAccountExists,
					"an account holds this email but has not verified it: sign in to that account and call linkIdentity"}
			default:
				target = holder
			}
		}
		upgraded := false
		if target == nil && caller != uuid.Nil {
			u, err := c.AuthUser.Get(ctx, caller)
			if err != nil && !store.IsNotFound(err) {
				return fmt.Errorf("load caller: %w", err)
			}
			if u != nil && u.Anonymous {
				if target, err = s.upgrade(ctx, c, u, a); err != nil {
					return err
				}
				upgraded = true
			}
		}
		if target == nil {
			if target, err = s.createProviderUser(ctx, c, a); err != nil {
				return err
			}
		}
		if err := s.addIdentity(ctx, c, target.ID, a); err != nil {
			return err
		}
		if upgraded {
			if version, err = s.revokeAll(ctx, c, target.ID); err != nil {
				return err
			}
			if target, err = c.AuthUser.Get(ctx, target.ID); err != nil {
				return fmt.Errorf("load user: %w", err)
			}
		}
		return issue(c, target)
	})
	if err != nil {
		return nil, 0, err
	}
	if mfaUser != uuid.Nil {
		if err := s.challengeIfMFA(ctx, mfaUser); err != nil {
			return nil, 0, err
		}
		return nil, 0, errors.New("the second factor was removed concurrently")
	}
	s.log.InfoContext(ctx, "auth: signed in with ID token", "user", out.User.ID, "provider", a.provider)
	return out, version, nil
}

// refreshIdentity records the email the provider asserts now.
func (s *Service) refreshIdentity(ctx context.Context, c *store.Client, ident *store.AuthIdentity, a *assertion) error {
	same := ident.EmailVerified == a.emailVerified &&
		((ident.Email == nil && a.email == "") || (ident.Email != nil && *ident.Email == a.email))
	if same {
		return nil
	}
	upd := c.AuthIdentity.UpdateOne(ident).SetEmailVerified(a.emailVerified).SetUpdatedAt(s.now())
	if a.email == "" {
		upd.ClearEmail()
	} else {
		upd.SetEmail(a.email)
	}
	if err := upd.Exec(ctx); err != nil {
		return fmt.Errorf("update identity: %w", err)
	}
	return nil
}

// createProviderUser creates an account for a new identity: it holds the
// email when the provider asserts it verified (the caller checked that no
// account holds it); an unverified email is only shown (pending, never
// held).
func (s *Service) createProviderUser(ctx context.Context, c *store.Client, a *assertion) (*store.AuthUser, error) {
	now := s.now()
	create := c.AuthUser.Create().SetCreatedAt(now).SetUpdatedAt(now)
	switch {
	case a.email != "" && a.emailVerified:
		create.SetEmail(a.email).SetEmailVerified(true)
	case a.email != "":
		create.SetPendingEmail(a.email)
	}
	u, err := create.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	return u, nil
}

// upgrade turns the anonymous account u into a provider account, with the
// email as createProviderUser gives it (when no account holds it).
func (s *Service) upgrade(ctx context.Context, c *store.Client, u *store.AuthUser, a *assertion) (*store.AuthUser, error) {
	upd := c.AuthUser.UpdateOne(u).SetAnonymous(false).SetUpdatedAt(s.now())
	if a.email != "" {
		held, err := c.AuthUser.Query().Where(authuser.Email(a.email)).Exist(ctx)
		if err != nil {
			return nil, fmt.Errorf("load account: %w", err)
		}
		switch {
		case !held && a.emailVerified:
			upd.SetEmail(a.email).SetEmailVerified(true)
		default:
			upd.SetPendingEmail(a.email)
		}
	}
	out, err := upd.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("upgrade anonymous account: %w", err)
	}
	return out, nil
}

func (s *Service) addIdentity(ctx context.Context, c *store.Client, userID uuid.UUID, a *assertion) error {
	now := s.now()
	create := c.AuthIdentity.Create().SetCreatedAt(now).SetUpdatedAt(now).SetUserID(userID).
		SetProvider(a.provider).SetSubject(a.subject).SetEmailVerified(a.emailVerified)
	if a.email != "" {
		create.SetEmail(a.email)
	}
	if err := create.Exec(ctx); err != nil {
		return fmt.Errorf("add identity: %w", err)
	}
	return nil
}

// LinkIdentity adds the identity of a provider's ID token to the user (an
// explicit link: no email rule applies) and returns a fresh session. An
// anonymous user becomes a provider account, keeping its id and data (its
// anonymous sessions end). Linking an identity the user already has is not
// an error. Errors: *RefusedError (the token's, or IDENTITY_IN_USE when
// another account has the identity), ErrUnknownProvider, ErrUserNotFound,
// *RateLimitedError (counted per client address and per user).
func (s *Service) LinkIdentity(ctx context.Context, userID uuid.UUID, provider, idToken, nonce, ip string) (*Session, error) {
	if err := s.limit(ip, userKey(userID)); err != nil {
		return nil, err
	}
	a, err := s.verifyIDToken(ctx, provider, idToken, nonce)
	if err != nil {
		return nil, err
	}
	var out *Session
	version := 0
	err = s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		u, err := c.AuthUser.Get(ctx, userID)
		if store.IsNotFound(err) {
			return ErrUserNotFound
		}
		if err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		ident, err := c.AuthIdentity.Query().
			Where(authidentity.Provider(a.provider), authidentity.Subject(a.subject)).Only(ctx)
		switch {
		case err == nil && ident.UserID != userID:
			return &RefusedError{CodeConflict, ReasonIdentityInUse, "this identity signs in to another account"}
		case err == nil:
			if err := s.refreshIdentity(ctx, c, ident, a); err != nil {
				return err
			}
		case !store.IsNotFound(err):
			return fmt.Errorf("load identity: %w", err)
		default:
			if err := s.addIdentity(ctx, c, userID, a); err != nil {
				return err
			}
			if u.Anonymous {
				if u, err = s.upgrade(ctx, c, u, a); err != nil {
					return err
				}
				if version, err = s.revokeAll(ctx, c, userID); err != nil {
					return err
				}
				if u, err = c.AuthUser.Get(ctx, userID); err != nil {
					return fmt.Errorf("load user: %w", err)
				}
			}
		}
		out, err = s.issueAt(ctx, c, u, uuid.New(), "", callerAAL(ctx))
		return err
	})
	if store.IsConstraintError(err) {
		return nil, &RefusedError{CodeConflict, ReasonIdentityInUse, "this identity signs in to another account"}
	}
	if err != nil {
		return nil, wrapUnlessAPI("link identity", err)
	}
	if version > 0 {
		s.versions.set(userID, version, true, s.now())
	}
	s.log.InfoContext(ctx, "auth: identity linked", "user", userID, "provider", a.provider)
	return out, nil
}

// UnlinkIdentity removes the user's identities at provider, unless that
// would leave the account without a way to sign in (no password and no
// other identity): CONFLICT LAST_SIGN_IN_METHOD. A provider the user has
// no identity at is NOT_FOUND PROVIDER_NOT_LINKED. The user's row is
// locked first, so concurrent unlinks cannot remove the last two ways
// together.
func (s *Service) UnlinkIdentity(ctx context.Context, userID uuid.UUID, provider string) error {
	err := s.inTx(ctx, func(tx *store.Tx) error {
		c := tx.Client()
		u, err := c.AuthUser.UpdateOneID(userID).SetUpdatedAt(s.now()).Save(ctx)
		if store.IsNotFound(err) {
			return ErrUserNotFound
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		mine := c.AuthIdentity.Query().Where(authidentity.UserID(userID))
		n, err := mine.Clone().Where(authidentity.Provider(provider)).Count(ctx)
		if err != nil {
			return fmt.Errorf("count identities: %w", err)
		}
		if n == 0 {
			return &RefusedError{CodeNotFound, ReasonProviderNotLinked, "no identity at this provider signs in to the account"}
		}
		others, err := mine.Clone().Where(authidentity.ProviderNEQ(provider)).Count(ctx)
		if err != nil {
			return fmt.Errorf("count identities: %w", err)
		}
		password := u.PasswordHash != "" && (u.Email != nil || u.PendingEmail != nil)
		if others == 0 && !password {
			return &RefusedError{CodeConflict, ReasonLastSignInMethod, "this identity is the account's only way to sign in"}
		}
		if _, err := c.AuthIdentity.Delete().
			Where(authidentity.UserID(userID), authidentity.Provider(provider)).Exec(ctx); err != nil {
			return fmt.Errorf("delete identity: %w", err)
		}
		return nil
	})
	if err != nil {
		return wrapUnlessAPI("unlink identity", err)
	}
	s.log.InfoContext(ctx, "auth: identity unlinked", "user", userID, "provider", provider)
	return nil
}

// Identities lists the user's identities, oldest first.
func (s *Service) Identities(ctx context.Context, userID uuid.UUID) ([]*Identity, error) {
	rows, err := s.client.AuthIdentity.Query().Where(authidentity.UserID(userID)).
		Order(store.Asc(authidentity.FieldCreatedAt), store.Asc(authidentity.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load identities: %w", err)
	}
	out := make([]*Identity, len(rows))
	for i, r := range rows {
		out[i] = &Identity{Provider: r.Provider, Email: r.Email, EmailVerified: r.EmailVerified, CreatedAt: r.CreatedAt}
	}
	return out, nil
}
