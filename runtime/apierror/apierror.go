// Package apierror is the one error contract between Kiln's runtime, the
// generated code and the API: an error that knows its GraphQL
// extensions.code and extensions. The API presents every error that
// implements Error as it says (found with errors.As, so wrapping keeps it);
// anything else is an internal error, logged and masked.
package apierror

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Error is an error the API shows to clients.
type Error interface {
	error
	// Code is extensions.code, such as BAD_USER_INPUT.
	Code() string
	// Extensions are more extensions (field, retryAfter, ...); may be nil.
	Extensions() map[string]any
}

// Codes used across Kiln.
const (
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeConflict        = "CONFLICT"
	CodeNotFound        = "NOT_FOUND"
	CodeForbidden       = "FORBIDDEN"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeRateLimited     = "RATE_LIMITED"
	CodeUnavailable     = "UNAVAILABLE"
	CodeInternal        = "INTERNAL_SERVER_ERROR"
)

// coded is the plain Error of New.
type coded struct {
	code, msg string
	ext       map[string]any
}

func (e *coded) Error() string              { return e.msg }
func (e *coded) Code() string               { return e.code }
func (e *coded) Extensions() map[string]any { return e.ext }

// New returns an Error with a code, a message and extensions (may be nil).
func New(code, msg string, ext map[string]any) Error { return &coded{code: code, msg: msg, ext: ext} }

// Input is a BAD_USER_INPUT error naming the field.
func Input(field, msg string) Error {
	return New(CodeBadUserInput, msg, map[string]any{"field": field})
}

// NotFoundError says a record does not exist (or is not the viewer's to see).
type NotFoundError struct {
	Type string
	ID   uuid.UUID
}

func (e *NotFoundError) Error() string              { return fmt.Sprintf("%s %s not found", e.Type, e.ID) }
func (e *NotFoundError) Code() string               { return CodeNotFound }
func (e *NotFoundError) Extensions() map[string]any { return nil }

// ErrConflict is wrapped by ConflictError: an update named a version that is
// not the record's current version.
var ErrConflict = errors.New("the record was changed by someone else; reload it and try again")

// ConflictError says which record was stale; Current is its version, or -1
// when unknown (changed or deleted between the read and the write).
type ConflictError struct {
	Type    string
	ID      uuid.UUID
	Current int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %s is at version %d: %v", e.Type, e.ID, e.Current, ErrConflict)
}

func (e *ConflictError) Unwrap() error { return ErrConflict }
func (e *ConflictError) Code() string  { return CodeConflict }

// Extensions carry currentVersion when it is known.
func (e *ConflictError) Extensions() map[string]any {
	if e.Current < 0 {
		return nil
	}
	return map[string]any{"currentVersion": e.Current}
}
