package auth

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Error codes returned by the Code method of this package's errors.
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeRateLimited     = "RATE_LIMITED"
	CodeNotFound        = "NOT_FOUND"
	CodeConflict        = "CONFLICT"
	CodeForbidden       = "FORBIDDEN"
)

// Error is a sentinel error of this package with a stable code. Compare with
// errors.Is against the Err* variables.
type Error struct {
	code string
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable error code (e.g. "UNAUTHENTICATED").
func (e *Error) Code() string { return e.code }

// Extensions are none (apierror.Error).
func (e *Error) Extensions() map[string]any { return nil }

var (
	// ErrInvalidCredentials: wrong email or password, or unknown email. The
	// message is the same in every case.
	ErrInvalidCredentials = &Error{CodeUnauthenticated, "invalid email or password"}
	// ErrInvalidToken: a malformed, expired, revoked or reused refresh,
	// access or reset token.
	ErrInvalidToken = &Error{CodeUnauthenticated, "invalid or expired token"}
	// ErrUserNotFound: no account with that id (user-id based operations).
	ErrUserNotFound = &Error{CodeNotFound, "user not found"}
	// ErrAlreadyLinked: LinkAccount on an account that is not anonymous.
	ErrAlreadyLinked = &Error{CodeConflict, "account already has an email and password"}
)

// InputError is a problem with one input field. Its code is "BAD_USER_INPUT".
type InputError struct {
	Field   string
	Message string
	is      error // the sentinel this error is a case of, if any
}

func (e *InputError) Error() string { return e.Field + " " + e.Message }

// Is reports whether e is a case of target (for instance a password
// rejected for a reason of its own is ErrWeakPassword).
func (e *InputError) Is(target error) bool { return e.is != nil && e.is == target }

// Code returns "BAD_USER_INPUT".
func (e *InputError) Code() string { return CodeBadUserInput }

// Extensions name the field (apierror.Error).
func (e *InputError) Extensions() map[string]any { return map[string]any{"field": e.Field} }

// Input errors returned as they are (compare with errors.Is, or use
// errors.As to read Field and Message).
var (
	// ErrInvalidEmail: the email is not a valid address.
	ErrInvalidEmail = &InputError{Field: "email", Message: "is not a valid email address"}
	// ErrWeakPassword: a new password that the PasswordPolicy refuses. The
	// errors returned are *InputError values naming the field ("password",
	// or "newPassword" for ChangePassword and ResetPassword) and the reason
	// (too short, too long, too easy to guess); errors.Is matches them with
	// ErrWeakPassword.
	ErrWeakPassword = &InputError{Field: "password", Message: "is too weak"}
	// ErrInvalidRole: an empty or overlong role name.
	ErrInvalidRole = &InputError{Field: "role", Message: "must be 1 to 64 characters"}
)

// RateLimitedError is returned when an IP address or an account made too
// many attempts. Its code is "RATE_LIMITED".
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many attempts, retry in %d s", int(math.Ceil(e.RetryAfter.Seconds())))
}

// Code returns "RATE_LIMITED".
func (e *RateLimitedError) Code() string { return CodeRateLimited }

// Extensions give retryAfter in whole seconds (apierror.Error).
func (e *RateLimitedError) Extensions() map[string]any {
	return map[string]any{"retryAfter": int(math.Ceil(e.RetryAfter.Seconds()))}
}

// ErrorCode returns the code of the first error in err's chain that has a
// Code method, or "" (an internal error).
func ErrorCode(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}
