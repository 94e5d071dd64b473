package access

import (
	"fmt"

	"kiln/runtime/apierror"
)

// ForbiddenError is returned when the viewer may see a record but not do
// the operation, or sets a field only admins or the server may set.
type ForbiddenError struct {
	Op, Type, Reason string
}

func (e *ForbiddenError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return fmt.Sprintf("not allowed to %s this %s", e.Op, e.Type)
}

// Code is FORBIDDEN.
func (e *ForbiddenError) Code() string { return apierror.CodeForbidden }

// Extensions are none.
func (e *ForbiddenError) Extensions() map[string]any { return nil }

// ActorError is returned when an @actor relation would point at a record
// the viewer does not own: writing as someone else.
type ActorError struct{ Field, Type string }

func (e *ActorError) Error() string {
	return fmt.Sprintf("%s must be a %s you own: you cannot act as someone else", e.Field, e.Type)
}

// Code is FORBIDDEN.
func (e *ActorError) Code() string { return apierror.CodeForbidden }

// Extensions name the field.
func (e *ActorError) Extensions() map[string]any { return map[string]any{"field": e.Field} }

// UnauthenticatedError is returned when an operation needs a signed-in user.
type UnauthenticatedError struct{ Reason string }

func (e *UnauthenticatedError) Error() string { return e.Reason }

// Code is UNAUTHENTICATED.
func (e *UnauthenticatedError) Code() string { return apierror.CodeUnauthenticated }

// Extensions are none.
func (e *UnauthenticatedError) Extensions() map[string]any { return nil }

// Denied is the error for an operation the rules refuse: unauthenticated
// for visitors, forbidden for signed-in users.
func Denied(v *Viewer, op, typ string) error {
	if v == nil {
		return &UnauthenticatedError{Reason: fmt.Sprintf("sign in to %s a %s", op, typ)}
	}
	return &ForbiddenError{Op: op, Type: typ}
}
