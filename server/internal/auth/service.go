package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"kiln/runtime/access"
	"kiln/runtime/store"
	"kiln/runtime/store/authdevice"
	"kiln/runtime/store/authrole"
	"kiln/runtime/store/authsession"
	"kiln/runtime/store/authuser"
)

// Config configures a Service. Client and Keys are required.
type Config struct {
	Client *store.Client
	Keys   *KeySet // signing keys
	Issuer string  // JWT "iss"; default "kiln"
	// AccessTTL is the lifetime of access tokens (default 15m).
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token; each refresh issues a
	// token with a new full lifetime (default 30 days).
	RefreshTTL time.Duration
	// RefreshGrace (default 10s; negative means none): a refresh token that
	// was rotated less than this long ago may be presented again (concurrent
	// refreshes by one client); it yields a new pair rotated from the
	// family's current token, so the family keeps exactly one live token.
	// Presented later, it revokes the whole family.
	RefreshGrace time.Duration
	// Mailer sends password-reset mail; default LogMailer{Logger}.
	Mailer Mailer
	// MailTemplates are the mails' subjects and bodies; nil: the built-in
	// ones (LoadMailTemplates("")).
	MailTemplates *MailTemplates
	// ResetURL is the link put in reset mails, with %s where the token goes,
	// e.g. "https://app.example/reset?token=%s". Empty: the mail contains the
	// token alone.
	ResetURL string
	// Limits are the rate limits of sign-in, sign-up and reset attempts.
	Limits Limits
	// IPLimiter, AccountLimiter (per email and client address, and per
	// signed-in user) and EmailLimiter (per email from anywhere) replace the
	// in-memory limiters built from Limits (for instance with a
	// Redis-backed Limiter shared by instances).
	IPLimiter      Limiter
	AccountLimiter Limiter
	EmailLimiter   Limiter
	// Passwords is the policy for new passwords (zero: the defaults).
	Passwords PasswordPolicy
	// VerifyEmails mails a verification code (RequestEmailVerification's
	// mail) to the address of every account that comes to hold one: after
	// SignUp and LinkAccount.
	VerifyEmails bool
	// Providers are the OpenID Connect providers whose ID tokens sign in
	// (SignInWithIDToken); none by default.
	Providers []Provider
	// CallbackURL is the absolute URL of the server's CallbackPath, as
	// registered with the providers of the redirect flow (the public URL +
	// CallbackPath). Without it the redirect flow is off.
	CallbackURL string
	// RedirectURIs are the app redirect URIs the redirect flow may send
	// the browser back to (exact matches; see ValidateRedirectURI).
	RedirectURIs []string
	// OnDeleteAccount, when set, runs inside deleteAccount's transaction
	// before the account row is deleted, with the transaction's client: it
	// deletes or anonymises what the user owns. An error aborts the deletion
	// and nothing is lost.
	OnDeleteAccount func(ctx context.Context, tx *store.Client, userID uuid.UUID) error
	Now             func() time.Time // default time.Now
	Logger          *slog.Logger     // default slog.Default()
}

// Service is the account and session service. It is safe for concurrent
// use.
type Service struct {
	client   *store.Client
	keys     *KeySet
	issuer   string
	access   time.Duration
	refresh  time.Duration
	grace    time.Duration
	mailer   Mailer
	mails    *MailTemplates
	resetURL string
	now      func() time.Time
	log      *slog.Logger
	ipLim    Limiter
	acctLim  Limiter
	emailLim Limiter
	// noticeLim bounds the "someone signed up with your address" mails per
	// address.
	noticeLim Limiter
	known     knownClients
	policy    PasswordPolicy
	onDelete  func(ctx context.Context, tx *store.Client, userID uuid.UUID) error
	versions  versionCache
	// verified caches parsed, signature-checked access tokens by their
	// SHA-256 until they expire (see Verify).
	verified  *lru.Cache[[32]byte, verifiedToken]
	providers map[string]*provider
	verify    bool // Config.VerifyEmails
	// callbackURL and redirectURIs: Config.CallbackURL, Config.RedirectURIs.
	callbackURL  string
	redirectURIs map[string]struct{}

	// argonOps counts argon2 computations (hashes and verifications,
	// including those against the dummy hash); tests read it.
	argonOps atomic.Int64
	// lostRotations counts conditional rotations that matched no row
	// because a concurrent refresh rotated the token first.
	lostRotations atomic.Int64
	// mail tracks background mail deliveries.
	mail sync.WaitGroup
}

// Session is the result of a sign-in: an access token (a JWT, valid until
// ExpiresAt), an opaque refresh token, and the user.
type Session struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time // of the access token
	User         *User
}

// User is an account.
type User struct {
	ID uuid.UUID
	// Email is nil for anonymous users. For a pending account (one that
	// signed up with an address another account holds) it is that address.
	Email *string
	// EmailVerified: Email is held (not pending) and proven the user's.
	EmailVerified bool
	Anonymous     bool
	Roles         []string
	CreatedAt     time.Time
}

const (
	resetTTL       = time.Hour
	kindReset      = "password_reset"
	versionTTL     = 5 * time.Second
	mailTimeout    = 30 * time.Second
	refreshRetries = 32
	// Notice mails ("someone signed up with your address"): a burst of
	// noticeBurst per address, then one per noticeEvery.
	noticeBurst = 3
	noticeEvery = 10 * time.Minute
)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Client == nil {
		return nil, errors.New("auth: Config.Client is required")
	}
	if cfg.Keys == nil {
		return nil, errors.New("auth: Config.Keys is required")
	}
	if cfg.ResetURL != "" && strings.Count(cfg.ResetURL, "%s") != 1 {
		return nil, fmt.Errorf("auth: ResetURL %q must contain %%s exactly once", cfg.ResetURL)
	}
	policy := cfg.Passwords.withDefaults()
	if err := policy.validate(); err != nil {
		return nil, err
	}
	providers, err := newProviders(cfg.Providers)
	if err != nil {
		return nil, err
	}
	redirects := make(map[string]struct{}, len(cfg.RedirectURIs))
	var errs []error
	for _, u := range cfg.RedirectURIs {
		if err := ValidateRedirectURI(u); err != nil {
			errs = append(errs, err)
		}
		redirects[u] = struct{}{}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := &Service{
		callbackURL: cfg.CallbackURL, redirectURIs: redirects,
		client: cfg.Client, keys: cfg.Keys, issuer: cfg.Issuer,
		access: cfg.AccessTTL, refresh: cfg.RefreshTTL, grace: cfg.RefreshGrace,
		mailer: cfg.Mailer, mails: cfg.MailTemplates, resetURL: cfg.ResetURL, now: cfg.Now, log: cfg.Logger,
		ipLim: cfg.IPLimiter, acctLim: cfg.AccountLimiter, emailLim: cfg.EmailLimiter,
		policy: policy, onDelete: cfg.OnDeleteAccount, providers: providers, verify: cfg.VerifyEmails,
	}
	if s.issuer == "" {
		s.issuer = "kiln"
	}
	if s.access <= 0 {
		s.access = 15 * time.Minute
	}
	if s.refresh <= 0 {
		s.refresh = 30 * 24 * time.Hour
	}
	if s.grace == 0 {
		s.grace = 10 * time.Second
	} else if s.grace < 0 {
		s.grace = 0
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.mailer == nil {
		s.mailer = LogMailer{Logger: s.log}
	}
	if s.mails == nil {
		if s.mails, err = LoadMailTemplates(""); err != nil {
			return nil, err
		}
	}
	lim := cfg.Limits.withDefaults()
	if s.ipLim == nil {
		s.ipLim = NewMemoryLimiter(lim.PerIP, lim.IPBurst, s.now)
	}
	if s.acctLim == nil {
		s.acctLim = NewMemoryLimiter(lim.PerAccount, lim.AccountBurst, s.now)
	}
	if s.emailLim == nil {
		s.emailLim = NewMemoryLimiter(lim.PerEmail, lim.EmailBurst, s.now)
	}
	s.noticeLim = NewMemoryLimiter(rate.Every(noticeEvery), noticeBurst, s.now)
	s.versions.m = map[uuid.UUID]versionEntry{}
	if s.verified, err = lru.New[[32]byte, verifiedToken](verifiedTokens); err != nil {
		return nil, err
	}
	go dummyHash() // computed once per process, off the start-up path, before the first sign-in needs it
	return s, nil
}

// ---------------------------------------------------------------- helpers ---

// normalizeEmail trims and lower-cases an address and checks its syntax: a
// bare addr-spec (no display name) of at most 254 characters.
func normalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" || len(e) > 254 {
		return "", ErrInvalidEmail
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return "", ErrInvalidEmail
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.HasPrefix(domain, "[") {
		return "", ErrInvalidEmail
	}
	return e, nil
}

// accountKey is the rate-limit key of an email, valid or not.
func accountKey(email string) string {
	return "email:" + strings.ToLower(strings.TrimSpace(email))
}

// ipKey is the rate-limit key of a client address: the address itself for
// IPv4, its /64 for IPv6 (one host usually has a whole /64). A port is
// ignored.
func ipKey(ip string) string {
	ip = strings.TrimSpace(ip)
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "ip:" + ip
	}
	a = a.Unmap()
	if a.Is4() {
		return "ip:" + a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return "ip:" + p.String()
}

// limit counts one attempt against the IP (if any) and the account key (if
// any), failing when either is over its limit.
func (s *Service) limit(ip, account string) error {
	var wait time.Duration
	limited := false
	if ip != "" {
		if ok, d := s.ipLim.Allow(ipKey(ip)); !ok {
			limited, wait = true, d
		}
	}
	if account != "" {
		if ok, d := s.acctLim.Allow(account); !ok {
			limited, wait = true, max(wait, d)
		}
	}
	if limited {
		return &RateLimitedError{RetryAfter: max(wait, time.Second)}
	}
	return nil
}

// clientKey is the key of an email and a client address, for the limit
// per pair and for knownClients.
func clientKey(email, ip string) string {
	return accountKey(email) + "|" + ipKey(ip)
}

// limitEmail counts one attempt on email from ip (see Limits): against the
// IP, against the pair, and against the email from anywhere unless ip
// signed in to the email's account before. It fails when any is over its
// limit.
func (s *Service) limitEmail(ip, email string) error {
	err := s.limit(ip, clientKey(email, ip))
	if s.known.has(clientKey(email, ip), s.now()) {
		return err
	}
	if ok, d := s.emailLim.Allow(accountKey(email)); !ok {
		var rl *RateLimitedError
		if errors.As(err, &rl) {
			d = max(d, rl.RetryAfter)
		}
		return &RateLimitedError{RetryAfter: max(d, time.Second)}
	}
	return err
}

// trustClient records that ip signed in to the account holding addr.
func (s *Service) trustClient(addr, ip string) {
	s.known.add(clientKey(addr, ip), s.now())
}

// newSecret returns a random 32-byte token (base64url) and its SHA-256 hex.
func newSecret() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashSecret(token), nil
}

func hashSecret(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// secretHash validates the shape of a presented token and returns its hash.
func secretHash(token string) (string, bool) {
	if len(token) != 43 {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return "", false
	}
	return hashSecret(token), true
}

// hash returns a new random-salted hash of pw (one argon2 computation).
func (s *Service) hash(ctx context.Context, pw string) (string, error) {
	s.argonOps.Add(1)
	return hashPassword(ctx, pw)
}

// pendingHash returns the pending-account hash of pw for addr (one argon2
// computation); see pendingPasswordHash.
func (s *Service) pendingHash(ctx context.Context, addr, pw string) (string, error) {
	s.argonOps.Add(1)
	return pendingPasswordHash(ctx, addr, pw)
}

// hashFor returns the hash of pw to store for u: a pending account keeps
// its findable pending-account hash.
func (s *Service) hashFor(ctx context.Context, u *store.AuthUser, pw string) (string, error) {
	if u.Email == nil && u.PendingEmail != nil {
		return s.pendingHash(ctx, *u.PendingEmail, pw)
	}
	return s.hash(ctx, pw)
}

// capPassword bounds the input of a verification that is bound to fail.
func capPassword(pw string) string {
	if len(pw) > 4*maxPasswordLen {
		return pw[:4*maxPasswordLen]
	}
	return pw
}

// verifyPassword checks pw against u's hash with one argon2 computation;
// an account without a password (anonymous), no account (nil) or an
// overlong password are checked against the dummy hash and fail.
func (s *Service) verifyPassword(ctx context.Context, u *store.AuthUser, pw string) error {
	if u == nil || u.PasswordHash == "" || utf8.RuneCountInString(pw) > maxPasswordLen {
		return s.failDummy(ctx, pw)
	}
	s.argonOps.Add(1)
	ok, rehash, err := checkPassword(ctx, u.PasswordHash, pw)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.log.ErrorContext(ctx, "auth: stored password hash is unreadable", "user", u.ID, "err", err)
		return ErrInvalidCredentials
	}
	if !ok {
		return ErrInvalidCredentials
	}
	if rehash && u.PendingEmail == nil {
		s.rehash(ctx, u, pw)
	}
	return nil
}

// failDummy spends the time of a real verification, then fails.
func (s *Service) failDummy(ctx context.Context, pw string) error {
	s.argonOps.Add(1)
	if _, _, err := checkPassword(ctx, dummyHash(), capPassword(pw)); err != nil && ctx.Err() != nil {
		return err
	}
	return ErrInvalidCredentials
}

// rehash upgrades a hash made with older parameters (best effort).
func (s *Service) rehash(ctx context.Context, u *store.AuthUser, pw string) {
	h, err := s.hash(ctx, pw)
	if err == nil {
		err = s.client.AuthUser.Update().
			Where(authuser.ID(u.ID), authuser.PasswordHash(u.PasswordHash)).
			SetPasswordHash(h).SetUpdatedAt(s.now()).Exec(ctx)
	}
	if err != nil {
		s.log.WarnContext(ctx, "auth: password rehash failed", "user", u.ID, "err", err)
	}
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Service) inTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *Service) roles(ctx context.Context, c *store.Client, userID uuid.UUID) ([]string, error) {
	roles, err := c.AuthRole.Query().Where(authrole.UserID(userID)).
		Order(store.Asc(authrole.FieldRole)).Select(authrole.FieldRole).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("load roles: %w", err)
	}
	if roles == nil {
		roles = []string{}
	}
	return roles, nil
}

func toUser(u *store.AuthUser, roles []string) *User {
	var email *string
	if u.Email != nil {
		e := *u.Email
		email = &e
	} else if u.PendingEmail != nil {
		e := *u.PendingEmail
		email = &e
	}
	return &User{ID: u.ID, Email: email, EmailVerified: u.EmailVerified && u.Email != nil, Anonymous: u.Anonymous, Roles: roles, CreatedAt: u.CreatedAt}
}

// issue creates a refresh token in family (child of parentHash, if any) and
// signs an access token for u, using c (a transaction's client).
func (s *Service) issue(ctx context.Context, c *store.Client, u *store.AuthUser, family uuid.UUID, parentHash string) (*Session, error) {
	return s.issueAt(ctx, c, u, family, parentHash, 1)
}

// issueAt is issue at assurance level aal (1 or 2), which the family keeps
// through refreshes.
func (s *Service) issueAt(ctx context.Context, c *store.Client, u *store.AuthUser, family uuid.UUID, parentHash string, aal int) (*Session, error) {
	roles, err := s.roles(ctx, c, u.ID)
	if err != nil {
		return nil, err
	}
	token, hash, err := newSecret()
	if err != nil {
		return nil, err
	}
	now := s.now()
	create := c.AuthSession.Create().
		SetCreatedAt(now).SetUserID(u.ID).SetFamilyID(family).
		SetTokenHash(hash).SetExpiresAt(now.Add(s.refresh)).SetAal(aal)
	if parentHash != "" {
		create.SetParentHash(parentHash)
	}
	if err := create.Exec(ctx); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	// The caller's devices follow it into its new session (the old one
	// was revoked, or is left behind), so that signing this one out
	// removes them.
	if old := callerFamily(ctx, u.ID); old != uuid.Nil && old != family {
		if err := c.AuthDevice.Update().Where(authdevice.SessionFamily(old)).SetSessionFamily(family).Exec(ctx); err != nil {
			return nil, fmt.Errorf("move devices: %w", err)
		}
	}
	access, exp, err := s.sign(u, roles, now, aal, family)
	if err != nil {
		return nil, err
	}
	return &Session{AccessToken: access, RefreshToken: token, ExpiresAt: exp, User: toUser(u, roles)}, nil
}

// startSession issues a session in a new family.
func (s *Service) startSession(ctx context.Context, u *store.AuthUser) (*Session, error) {
	var out *Session
	err := s.inTx(ctx, func(tx *store.Tx) (err error) {
		out, err = s.issue(ctx, tx.Client(), u, uuid.New(), "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start session: %w", err)
	}
	return out, nil
}

// revokeAll revokes every live session of a user and bumps its token
// version, returning the new version.
func (s *Service) revokeAll(ctx context.Context, c *store.Client, userID uuid.UUID) (int, error) {
	now := s.now()
	u, err := c.AuthUser.UpdateOneID(userID).AddTokenVersion(1).SetUpdatedAt(now).Save(ctx)
	if store.IsNotFound(err) {
		return 0, ErrUserNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("bump token version: %w", err)
	}
	if _, err := c.AuthSession.Update().
		Where(authsession.UserID(userID), authsession.RevokedAtIsNil()).
		SetRevokedAt(now).Save(ctx); err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	// The revoked sessions' push devices go with them, except the
	// caller's own (a password change, a second factor turned on): they
	// move to the session the caller gets next (issueAt).
	del := c.AuthDevice.Delete().Where(authdevice.UserID(userID))
	if fam := callerFamily(ctx, userID); fam != uuid.Nil {
		del.Where(authdevice.SessionFamilyNEQ(fam))
	}
	if _, err := del.Exec(ctx); err != nil {
		return 0, fmt.Errorf("remove devices: %w", err)
	}
	return u.TokenVersion, nil
}

// callerFamily is the session family of the signed-in caller if the caller
// is userID, else uuid.Nil.
func callerFamily(ctx context.Context, userID uuid.UUID) uuid.UUID {
	if v := access.From(ctx); v != nil && v.ID == userID {
		return v.Session
	}
	return uuid.Nil
}

// ------------------------------------------------------------- sign in/up ---

// match is what a password opens among the accounts of an address.
type match struct {
	claimed *store.AuthUser // the account holding the address, or nil
	// account is the account the password opens: the claimed one, else the
	// newest pending account of the address with that password; or nil.
	account *store.AuthUser
	pending string // the pending-account hash of the password for the address
}

// matchPassword finds the account that pw opens for addr with exactly two
// argon2 computations whatever the case, so that neither the result nor
// the work tells whether addr is held or has pending accounts: a
// verification against the holding account's hash (or the dummy hash), and
// the pending-account hash of pw, looked up among addr's pending accounts.
func (s *Service) matchPassword(ctx context.Context, addr, pw string) (*match, error) {
	m := &match{}
	claimed, err := s.client.AuthUser.Query().Where(authuser.Email(addr)).Only(ctx)
	switch {
	case store.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("load account: %w", err)
	default:
		m.claimed = claimed
	}
	verr := s.verifyPassword(ctx, m.claimed, pw)
	if verr != nil && !errors.Is(verr, ErrInvalidCredentials) {
		return nil, verr
	}
	if m.pending, err = s.pendingHash(ctx, addr, pw); err != nil {
		return nil, err
	}
	pending, err := s.client.AuthUser.Query().
		Where(authuser.EmailIsNil(), authuser.PendingEmail(addr), authuser.PasswordHash(m.pending)).
		Order(store.Desc(authuser.FieldCreatedAt), store.Desc(authuser.FieldID)).First(ctx)
	if err != nil && !store.IsNotFound(err) {
		return nil, fmt.Errorf("load pending account: %w", err)
	}
	switch {
	case verr == nil:
		m.account = m.claimed
	case pending != nil:
		m.account = pending
	}
	return m, nil
}

// signInTo starts a session of the account m opened, remembering ip as a
// known client of addr when that is the account holding addr.
func (s *Service) signInTo(ctx context.Context, m *match, addr, ip string) (*Session, error) {
	if err := s.challengeIfMFA(ctx, m.account.ID); err != nil {
		if m.account == m.claimed {
			s.trustClient(addr, ip)
		}
		return nil, err
	}
	out, err := s.startSession(ctx, m.account)
	if err != nil {
		return nil, err
	}
	if m.account == m.claimed {
		s.trustClient(addr, ip)
	}
	return out, nil
}

// SignUp creates an account with email and password and signs it in, so
// that the answer never tells whether an email is registered:
//
//   - an unclaimed email: a new account holding the email;
//   - the password of the account holding the email, or of the newest
//     pending account of the email with that password: signs in to it;
//   - otherwise (the email is held by an account with another password): a
//     new pending account, with no email of its own but the address as its
//     pending email (shown as its email, good for signing in, never for
//     password resets), and a notice mailed to the address.
//
// Every path runs three argon2 computations (see matchPassword, plus the
// hash of a new holding account). Errors: *InputError (ErrInvalidEmail,
// ErrWeakPassword), *RateLimitedError.
func (s *Service) SignUp(ctx context.Context, email, password, ip string) (*Session, error) {
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
	for range 2 { // a retry finds the address claimed concurrently
		out, retry, err := s.signUp(ctx, addr, password, ip)
		if !retry {
			return out, err
		}
	}
	return nil, errors.New("sign up: the address was claimed and released concurrently")
}

// signUp does SignUp's work; retry reports that a new holding account could
// not be created because the address was claimed concurrently.
func (s *Service) signUp(ctx context.Context, addr, password, ip string) (_ *Session, retry bool, _ error) {
	m, err := s.matchPassword(ctx, addr, password)
	if err != nil {
		return nil, false, fmt.Errorf("sign up: %w", err)
	}
	// Computed on every path, used only by a new holding account.
	fresh, err := s.hash(ctx, password)
	if err != nil {
		return nil, false, fmt.Errorf("sign up: %w", err)
	}
	if m.account != nil {
		out, err := s.signInTo(ctx, m, addr, ip)
		if err != nil {
			return nil, false, fmt.Errorf("sign up: %w", err)
		}
		return out, false, nil
	}
	pending := m.claimed != nil
	var out *Session
	var created *store.AuthUser
	err = s.inTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		create := tx.AuthUser.Create().SetCreatedAt(now).SetUpdatedAt(now)
		if pending {
			create.SetPendingEmail(addr).SetPasswordHash(m.pending)
		} else {
			create.SetEmail(addr).SetPasswordHash(fresh)
		}
		u, err := create.Save(ctx)
		if err != nil {
			return err
		}
		created = u
		out, err = s.issue(ctx, tx.Client(), u, uuid.New(), "")
		return err
	})
	if !pending && store.IsConstraintError(err) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sign up: %w", err)
	}
	if pending {
		s.log.InfoContext(ctx, "auth: pending account created (its address has an account)", "user", out.User.ID)
		s.sendNotice(ctx, addr)
	} else {
		s.trustClient(addr, ip)
		s.log.InfoContext(ctx, "auth: account created", "user", out.User.ID)
		if s.verify {
			s.sendVerification(ctx, created)
		}
	}
	return out, false, nil
}

// sendMail renders the mail of kind and sends it to addr: text and HTML
// when the mailer takes both, else the text.
func (s *Service) sendMail(ctx context.Context, addr, kind string, d MailData) error {
	d.Email = addr
	m, err := s.mails.Render(kind, d)
	if err != nil {
		return fmt.Errorf("render %s mail: %w", kind, err)
	}
	if mm, ok := s.mailer.(MessageMailer); ok {
		return mm.SendMessage(ctx, addr, m)
	}
	return s.mailer.Send(ctx, addr, m.Subject, m.Text)
}

// sendNotice mails addr, in the background, that someone signed up with
// it while it has an account: at most noticeBurst mails per address, then
// one per noticeEvery. Delivery failures are logged.
func (s *Service) sendNotice(ctx context.Context, addr string) {
	if ok, _ := s.noticeLim.Allow(accountKey(addr)); !ok {
		s.log.InfoContext(ctx, "auth: sign-up notice not sent: too many for this address recently")
		return
	}
	s.mail.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
		defer cancel()
		if err := s.sendMail(ctx, addr, MailSignupNotice, MailData{}); err != nil {
			s.log.ErrorContext(ctx, "auth: sign-up notice mail failed", "err", err)
		}
	})
}

// SignIn signs in with email and password: to the account holding the
// email, or to the newest pending account of the email with that password
// (see SignUp). A wrong password and an unknown email give the same
// ErrInvalidCredentials after the same work (two argon2 computations on
// every path; see matchPassword). An account with an active second factor
// answers *MFARequiredError (after the password matched) instead of a
// session. Errors: ErrInvalidEmail, ErrInvalidCredentials,
// *RateLimitedError.
func (s *Service) SignIn(ctx context.Context, email, password, ip string) (*Session, error) {
	if err := s.limitEmail(ip, email); err != nil {
		return nil, err
	}
	addr, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	m, err := s.matchPassword(ctx, addr, password)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	if m.account == nil {
		return nil, ErrInvalidCredentials
	}
	out, err := s.signInTo(ctx, m, addr, ip)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	return out, nil
}

// SignInAnonymously creates an anonymous account (no email) and signs it
// in; LinkAccount later gives it an email and password. Counted against
// the IP rate limit.
func (s *Service) SignInAnonymously(ctx context.Context, ip string) (*Session, error) {
	if err := s.limit(ip, ""); err != nil {
		return nil, err
	}
	var out *Session
	err := s.inTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		u, err := tx.AuthUser.Create().SetCreatedAt(now).SetUpdatedAt(now).SetAnonymous(true).Save(ctx)
		if err != nil {
			return err
		}
		out, err = s.issue(ctx, tx.Client(), u, uuid.New(), "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("anonymous sign in: %w", err)
	}
	return out, nil
}

// ---------------------------------------------------------------- refresh ---

// Refresh exchanges a refresh token for a new pair, rotating it. A token
// that is unknown, expired or revoked gives ErrInvalidToken. A token rotated
// less than RefreshGrace ago (a concurrent refresh) gives a new pair rotated
// from its family's current token; rotated earlier, it is taken as stolen:
// the whole family is revoked and ErrInvalidToken returned.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*Session, error) {
	h, ok := secretHash(refreshToken)
	if !ok {
		return nil, ErrInvalidToken
	}
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return nil, fmt.Errorf("refresh: begin: %w", err)
	}
	out, commit, err := s.refreshTx(ctx, tx, h)
	if !commit {
		_ = tx.Rollback()
		return nil, err
	}
	if cerr := tx.Commit(); cerr != nil {
		return nil, fmt.Errorf("refresh: commit: %w", cerr)
	}
	return out, err
}

// refreshTx does Refresh's work in tx; commit tells whether to commit (a
// revocation is committed although the result is ErrInvalidToken).
func (s *Service) refreshTx(ctx context.Context, tx *store.Tx, h string) (_ *Session, commit bool, _ error) {
	now := s.now()
	sess, err := tx.AuthSession.Query().Where(authsession.TokenHash(h)).Only(ctx)
	if store.IsNotFound(err) {
		return nil, false, ErrInvalidToken
	}
	if err != nil {
		return nil, false, fmt.Errorf("refresh: %w", err)
	}
	if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) {
		return nil, false, ErrInvalidToken
	}
	if sess.RotatedAt == nil {
		out, err := s.rotate(ctx, tx, sess, now)
		if err == nil && out != nil {
			return out, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		// Lost the race to a concurrent refresh of the same token: read
		// what it did (read committed on PostgreSQL; SQLite serialises
		// write transactions, so this does not happen there).
		if sess, err = tx.AuthSession.Query().Where(authsession.TokenHash(h)).Only(ctx); err != nil {
			return nil, false, fmt.Errorf("refresh: %w", err)
		}
		if sess.RevokedAt != nil || sess.RotatedAt == nil {
			return nil, false, ErrInvalidToken
		}
	}
	if now.Sub(*sess.RotatedAt) <= s.grace {
		// A concurrent refresh of the same token: continue from the
		// family's current token rather than forking the family.
		for range refreshRetries {
			cur, err := tx.AuthSession.Query().
				Where(authsession.FamilyID(sess.FamilyID), authsession.RotatedAtIsNil(), authsession.RevokedAtIsNil()).
				Order(store.Desc(authsession.FieldCreatedAt)).First(ctx)
			if store.IsNotFound(err) {
				return nil, false, ErrInvalidToken
			}
			if err != nil {
				return nil, false, fmt.Errorf("refresh: %w", err)
			}
			if !now.Before(cur.ExpiresAt) {
				return nil, false, ErrInvalidToken
			}
			out, err := s.rotate(ctx, tx, cur, now)
			if err != nil {
				return nil, false, err
			}
			if out != nil {
				return out, true, nil
			}
		}
		return nil, false, ErrInvalidToken
	}
	// Reuse of a rotated token after the grace: revoke the family.
	n, err := tx.AuthSession.Update().
		Where(authsession.FamilyID(sess.FamilyID), authsession.RevokedAtIsNil()).
		SetRevokedAt(now).Save(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("refresh: revoke family: %w", err)
	}
	if err := removeDevices(ctx, tx.Client(), sess.FamilyID); err != nil {
		return nil, false, err
	}
	s.log.WarnContext(ctx, "auth: refresh token reused after rotation; session family revoked",
		"user", sess.UserID, "family", sess.FamilyID, "revoked", n)
	return nil, true, ErrInvalidToken
}

// rotate marks sess rotated if nobody did yet (a conditional update) and
// issues its child. It returns nil, nil when the update matched no row.
func (s *Service) rotate(ctx context.Context, tx *store.Tx, sess *store.AuthSession, now time.Time) (*Session, error) {
	n, err := tx.AuthSession.Update().
		Where(authsession.TokenHash(sess.TokenHash), authsession.RotatedAtIsNil(), authsession.RevokedAtIsNil()).
		SetRotatedAt(now).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("refresh: rotate: %w", err)
	}
	if n == 0 {
		s.lostRotations.Add(1)
		return nil, nil
	}
	u, err := tx.AuthUser.Get(ctx, sess.UserID)
	if store.IsNotFound(err) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("refresh: load user: %w", err)
	}
	out, err := s.issueAt(ctx, tx.Client(), u, sess.FamilyID, sess.TokenHash, sess.Aal)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	return out, nil
}

// SignOut revokes the family of refreshToken (that sign-in on that device).
// Signing out twice is not an error; an unknown token is ErrInvalidToken.
func (s *Service) SignOut(ctx context.Context, refreshToken string) error {
	h, ok := secretHash(refreshToken)
	if !ok {
		return ErrInvalidToken
	}
	sess, err := s.client.AuthSession.Query().Where(authsession.TokenHash(h)).Only(ctx)
	if store.IsNotFound(err) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	err = s.inTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.AuthSession.Update().
			Where(authsession.FamilyID(sess.FamilyID), authsession.RevokedAtIsNil()).
			SetRevokedAt(s.now()).Save(ctx); err != nil {
			return err
		}
		return removeDevices(ctx, tx.Client(), sess.FamilyID)
	})
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// SignOutEverywhere revokes every session of the user and bumps its token
// version, so its access tokens are rejected by Verify within seconds on
// every instance.
func (s *Service) SignOutEverywhere(ctx context.Context, userID uuid.UUID) error {
	var v int
	err := s.inTx(ctx, func(tx *store.Tx) (err error) {
		if v, err = s.revokeAll(ctx, tx.Client(), userID); err != nil {
			return err
		}
		// Every sign-in ends: no device of the user gets notifications.
		_, err = tx.AuthDevice.Delete().Where(authdevice.UserID(userID)).Exec(ctx)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrUserNotFound) {
			return err
		}
		return fmt.Errorf("sign out everywhere: %w", err)
	}
	s.versions.set(userID, v, true, s.now())
	return nil
}

// User returns the account with its roles, or ErrUserNotFound.
func (s *Service) User(ctx context.Context, id uuid.UUID) (*User, error) {
	u, err := s.client.AuthUser.Get(ctx, id)
	if store.IsNotFound(err) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	roles, err := s.roles(ctx, s.client, id)
	if err != nil {
		return nil, err
	}
	return toUser(u, roles), nil
}

// -------------------------------------------------------- version cache ---

type versionEntry struct {
	version int
	exists  bool
	at      time.Time
}

// versionCache remembers each user's token version for versionTTL.
type versionCache struct {
	mu sync.Mutex
	m  map[uuid.UUID]versionEntry
}

const maxCachedVersions = 100_000

func (c *versionCache) get(id uuid.UUID, now time.Time) (versionEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || now.Sub(e.at) >= versionTTL || now.Before(e.at) {
		return versionEntry{}, false
	}
	return e, true
}

func (c *versionCache) set(id uuid.UUID, version int, exists bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedVersions {
		for k, e := range c.m {
			if now.Sub(e.at) >= versionTTL {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedVersions {
			clear(c.m)
		}
	}
	c.m[id] = versionEntry{version: version, exists: exists, at: now}
}

// tokenVersion returns the user's current token version (cached for at
// most versionTTL), and whether the user exists.
func (s *Service) tokenVersion(ctx context.Context, id uuid.UUID) (int, bool, error) {
	now := s.now()
	if e, ok := s.versions.get(id, now); ok {
		return e.version, e.exists, nil
	}
	u, err := s.client.AuthUser.Query().Where(authuser.ID(id)).
		Select(authuser.FieldID, authuser.FieldTokenVersion).Only(ctx)
	switch {
	case store.IsNotFound(err):
		s.versions.set(id, 0, false, now)
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("load token version: %w", err)
	}
	s.versions.set(id, u.TokenVersion, true, now)
	return u.TokenVersion, true, nil
}
