// Package auth is Kiln's account and session service: email/password and
// anonymous accounts, sign-in with OpenID Connect ID tokens (identity.go,
// provider.go), TOTP second factors (mfa.go), short-lived access tokens
// (EdDSA-signed JWTs) and rotating refresh tokens, password changes and
// resets by email, roles, and rate limiting of credential attempts. It holds no GraphQL code; the API
// layer calls it and maps errors through their Code method:
//
//   - ErrInvalidCredentials, ErrInvalidToken: "UNAUTHENTICATED"
//   - *InputError (ErrInvalidEmail, ErrWeakPassword, ...): "BAD_USER_INPUT",
//     with the input field it is about
//   - *RateLimitedError: "RATE_LIMITED"
//   - ErrUserNotFound: "NOT_FOUND"; ErrAlreadyLinked: "CONFLICT"
//
// # Storage
//
// Accounts live in the built-in ent tables kiln_users, kiln_sessions,
// kiln_roles, kiln_tokens (reset tokens, MFA challenges, recovery codes),
// kiln_identities (accounts at sign-in providers) and kiln_factors (TOTP
// secrets). Passwords are argon2id hashes in PHC format.
// Refresh tokens and reset tokens are random 32-byte values of which only
// the SHA-256 is stored.
//
// # Which emails exist is never revealed
//
// SignUp with an email another account holds, and a password that opens
// neither that account nor a pending account of the email, creates a
// pending account: its email column is null and its pending_email is the
// address. It is answered like any sign-up, shows the address as its email,
// and opens with its password through SignIn; it never owns the address: it
// gets no reset mail, and the holder's account is untouched. The holder is
// mailed a notice ("someone signed up with this address"). LinkAccount to a
// held email does the same to the linked account. SignIn and SignUp run the
// same number of argon2 computations on every path (two and three), and
// RequestPasswordReset answers before looking the email up. A pending
// account's password hash is salted with a value derived from its address
// (pendingPasswordHash), so that one computation finds the pending account
// a password opens, however many the address has.
//
// # Rate limits and passwords
//
// Attempts on an email count per client address, per email and client
// address, and per email from anywhere except client addresses that signed
// in to its account before (see Limits), so that nobody can lock an owner
// out. New passwords follow a PasswordPolicy: a minimum length not counting
// whitespace at either end, and a minimum zxcvbn score.
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
// Access tokens carry iss, sub, iat, exp, jti, roles, anon, tv (the
// account's token version), email_verified and aal (aal1, or aal2 for a
// session that passed a second factor, kept through refreshes) and a kid
// header. Verify checks them without
// touching the database except for the account's token version, cached per
// instance for at most 5 seconds: sign-out-everywhere, password changes and
// resets bump the version, so older access tokens stop working on every
// instance within seconds.
package auth
