// Package auth is Kiln's account and session service: email/password and
// anonymous accounts, short-lived access tokens (EdDSA-signed JWTs) and
// rotating refresh tokens, password changes and resets by email, roles, and
// rate limiting of credential attempts. It holds no GraphQL code; the API
// layer calls it and maps errors through their Code method:
//
//   - ErrInvalidCredentials, ErrInvalidToken: "UNAUTHENTICATED"
//   - *InputError (ErrInvalidEmail, ErrWeakPassword, ...): "BAD_USER_INPUT"
//   - *RateLimitedError: "RATE_LIMITED"
//   - ErrUserNotFound: "NOT_FOUND"; ErrAlreadyLinked: "CONFLICT"
//
// # Storage
//
// Accounts live in the built-in ent tables kiln_users, kiln_sessions,
// kiln_roles and kiln_tokens. Passwords are argon2id hashes in PHC format.
// Refresh tokens and reset tokens are random 32-byte values of which only
// the SHA-256 is stored.
//
// # Refresh tokens
//
// A sign-in starts a family of refresh tokens; each Refresh rotates the
// presented token (marks it rotated) and issues its child, so a family has
// exactly one live token. Presenting a rotated token again within
// Config.RefreshGrace (concurrent refreshes by one client) yields a new pair
// rotated from the family's current token; after the grace it is taken as
// theft and the whole family is revoked.
//
// # Access tokens
//
// Access tokens carry iss, sub, iat, exp, jti, roles, anon and tv (the
// account's token version) and a kid header. Verify checks them without
// touching the database except for the account's token version, cached per
// instance for at most 5 seconds: sign-out-everywhere, password changes and
// resets bump the version, so older access tokens stop working on every
// instance within seconds.
package auth
