package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/store"
	"kiln/runtime/store/authuser"
)

// leeway is the clock skew tolerated when checking exp and iat.
const leeway = 30 * time.Second

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles"`
	Anon  bool     `json:"anon"`
	TV    int      `json:"tv"`
	// EmailVerified: the account's email is held and verified.
	EmailVerified bool `json:"email_verified"`
	// AAL is the assurance level of the sign-in: aal1, or aal2 after a
	// second factor.
	AAL string `json:"aal"`
	// SID is the session family of the sign-in (push devices registered
	// with the token are removed when it signs out).
	SID string `json:"sid,omitempty"`
}

// sign returns an access token for u issued at now, and its expiry.
func (s *Service) sign(u *store.AuthUser, roles []string, now time.Time, aal int, family uuid.UUID) (string, time.Time, error) {
	iat := jwt.NewNumericDate(now)
	exp := jwt.NewNumericDate(now.Add(s.access))
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   u.ID.String(),
			IssuedAt:  iat,
			ExpiresAt: exp,
			ID:        uuid.NewString(),
		},
		Roles: roles,
		Anon:  u.Anonymous,
		TV:    u.TokenVersion,

		EmailVerified: u.EmailVerified && u.Email != nil,
		AAL:           fmt.Sprintf("aal%d", max(aal, 1)),
	}
	if family != uuid.Nil {
		claims.SID = family.String()
	}
	key := s.keys.signing()
	var t *jwt.Token
	if len(u.Claims) == 0 {
		t = jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	} else {
		// Custom claims sit at the top level next to the standard ones
		// (SetClaims refuses reserved names).
		m := jwt.MapClaims{}
		for k, v := range u.Claims {
			m[k] = v
		}
		b, err := json.Marshal(claims)
		if err != nil {
			return "", time.Time{}, err
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return "", time.Time{}, err
		}
		t = jwt.NewWithClaims(jwt.SigningMethodEdDSA, m)
	}
	t.Header["kid"] = key.kid
	signed, err := t.SignedString(key.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, exp.Time, nil
}

// Verify checks an access token and returns its viewer. The algorithm is
// pinned to EdDSA; the kid header must name a key of the KeySet; iss, exp
// and iat are checked with 30 s of leeway. The only database read is the
// user's token version (cached for at most 5 s): a token whose "tv" claim
// is below it (after a sign-out-everywhere, password change or reset, or
// role revocation), or whose user no longer exists, is rejected. Roles come
// from the token's "roles" claim. Any failure is ErrInvalidToken, except
// database errors.
//
// A token that verified is remembered by its SHA-256 (up to verifiedTokens
// of them, least recently used first out) until it expires: the next
// request with it skips the parse and the EdDSA verification (about 5% of
// a read's CPU), not the token-version check.
func (s *Service) Verify(ctx context.Context, accessToken string) (*access.Viewer, error) {
	key := sha256.Sum256([]byte(accessToken))
	if c, ok := s.verified.Get(key); ok {
		if s.now().After(c.expires) {
			s.verified.Remove(key)
			return nil, ErrInvalidToken
		}
		return s.current(ctx, c.viewer)
	}
	v, expires, err := s.parse(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	s.verified.Add(key, verifiedToken{viewer: v, expires: expires})
	return s.current(ctx, v)
}

// verifiedTokens bounds the cache of verified access tokens (about 1 KiB
// each).
const verifiedTokens = 10_000

// verifiedToken is a cached verified access token: its viewer (shared,
// never modified) and when it stops being valid (exp plus the leeway).
type verifiedToken struct {
	viewer  *access.Viewer
	expires time.Time
}

// current returns a copy of v if its token version is still the user's
// (and the user exists), else ErrInvalidToken.
func (s *Service) current(ctx context.Context, v *access.Viewer) (*access.Viewer, error) {
	cur, exists, err := s.tokenVersion(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	if !exists || v.TokenVersion < cur {
		return nil, ErrInvalidToken
	}
	out := *v
	return &out, nil
}

// parse verifies the token's signature and claims and returns its viewer
// and when it expires (exp plus the leeway).
func (s *Service) parse(ctx context.Context, accessToken string) (*access.Viewer, time.Time, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(s.issuer),
		jwt.WithLeeway(leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	claims := jwt.MapClaims{}
	_, err := p.ParseWithClaims(accessToken, claims, func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok || kid == "" {
			return nil, errors.New("missing kid")
		}
		pub, ok := s.keys.lookup(kid)
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return pub, nil
	})
	if err != nil {
		s.log.DebugContext(ctx, "auth: access token rejected", "reason", err)
		return nil, time.Time{}, ErrInvalidToken
	}
	if _, ok := claims["iat"]; !ok {
		return nil, time.Time{}, ErrInvalidToken
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	sub, _ := claims["sub"].(string)
	id, err := uuid.Parse(sub)
	if err != nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	tvf, ok := claims["tv"].(float64)
	if !ok || tvf != math.Trunc(tvf) || tvf < 0 || tvf > math.MaxInt32 {
		return nil, time.Time{}, ErrInvalidToken
	}
	tv := int(tvf)
	anon, _ := claims["anon"].(bool)
	roles := []string{}
	if raw, ok := claims["roles"].([]any); ok {
		for _, r := range raw {
			if rs, ok := r.(string); ok {
				roles = append(roles, rs)
			}
		}
	} else if claims["roles"] != nil {
		return nil, time.Time{}, ErrInvalidToken
	}
	aal := 1
	if claims["aal"] == "aal2" {
		aal = 2
	}
	var sid uuid.UUID
	if raw, ok := claims["sid"].(string); ok {
		if sid, err = uuid.Parse(raw); err != nil {
			return nil, time.Time{}, ErrInvalidToken
		}
	}
	v := &access.Viewer{ID: id, Anonymous: anon, Roles: roles, Claims: map[string]any(claims), TokenVersion: tv, AAL: aal, Session: sid}
	return v, exp.Time.Add(leeway), nil
}

// recheckBatch is how many users' token versions one Recheck query loads.
const recheckBatch = 500

// Recheck re-checks viewers that Verify returned earlier, for long-lived
// connections: a viewer whose token has expired (exp, with the same
// leeway), whose user no longer exists, or whose token version is below
// the user's current one gets ErrInvalidToken in the same position of the
// result; nil entries (admins, anonymous connections without a token) and
// valid viewers get nil. The signature is not verified again (the token
// has not changed), and the token versions of all viewers are read in one
// query per recheckBatch users, not one per viewer, bypassing the version
// cache (which they refresh): a sign-out everywhere or password change on
// any instance is seen by the next Recheck. A database error is returned
// for every viewer whose version it could not read.
func (s *Service) Recheck(ctx context.Context, viewers []*access.Viewer) []error {
	errs := make([]error, len(viewers))
	now := s.now()
	var ids []uuid.UUID
	seen := make(map[uuid.UUID]bool)
	for i, v := range viewers {
		if v == nil || v.Admin {
			continue
		}
		if exp, ok := v.Claims["exp"].(float64); !ok || now.After(time.Unix(int64(exp), 0).Add(leeway)) {
			errs[i] = ErrInvalidToken
			continue
		}
		if !seen[v.ID] {
			seen[v.ID] = true
			ids = append(ids, v.ID)
		}
	}
	current := make(map[uuid.UUID]int, len(ids))
	failed := make(map[uuid.UUID]error)
	for chunk := range slices.Chunk(ids, recheckBatch) {
		users, err := s.client.AuthUser.Query().Where(authuser.IDIn(chunk...)).
			Select(authuser.FieldID, authuser.FieldTokenVersion).All(ctx)
		if err != nil {
			err = fmt.Errorf("load token versions: %w", err)
			for _, id := range chunk {
				failed[id] = err
			}
			continue
		}
		for _, u := range users {
			current[u.ID] = u.TokenVersion
			s.versions.set(u.ID, u.TokenVersion, true, now)
		}
		for _, id := range chunk {
			if _, ok := current[id]; !ok {
				s.versions.set(id, 0, false, now)
			}
		}
	}
	for i, v := range viewers {
		if v == nil || v.Admin || errs[i] != nil {
			continue
		}
		if err := failed[v.ID]; err != nil {
			errs[i] = err
			continue
		}
		if cur, ok := current[v.ID]; !ok || v.TokenVersion < cur {
			errs[i] = ErrInvalidToken
		}
	}
	return errs
}
