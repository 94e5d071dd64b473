// Package validate holds the field validators that the schema's validation
// directives compile to. Each returns an error naming the field and the rule.
package validate

import (
	"fmt"
	"net/mail"
	"regexp"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"kiln/runtime/apierror"
)

// Error is a failed validation of one field: BAD_USER_INPUT naming the
// field (apierror.Error). An empty Field is filled in by the API from the
// error's path.
type Error struct {
	Field string
	Rule  string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "value " + e.Rule
	}
	return fmt.Sprintf("%s %s", e.Field, e.Rule)
}

// Code is BAD_USER_INPUT.
func (e *Error) Code() string { return apierror.CodeBadUserInput }

// Extensions name the field.
func (e *Error) Extensions() map[string]any { return map[string]any{"field": e.Field} }

// MarshalUUID writes a UUID as a GraphQL ID (gqlgen scalar binding).
func MarshalUUID(u uuid.UUID) graphql.Marshaler { return graphql.MarshalUUID(u) }

// UnmarshalUUID reads a GraphQL ID that must be a UUID; a bad value is an
// *Error, reported as BAD_USER_INPUT.
func UnmarshalUUID(v any) (uuid.UUID, error) {
	u, err := graphql.UnmarshalUUID(v)
	if err != nil {
		return uuid.Nil, &Error{Rule: "must be a UUID"}
	}
	return u, nil
}

// Ptr returns a pointer to v.
func Ptr(v float64) *float64 { return &v }

// Length checks a string's length in characters; -1 means no bound.
func Length(field string, minLen, maxLen int) func(string) error {
	return func(s string) error {
		n := utf8.RuneCountInString(s)
		if minLen >= 0 && n < minLen {
			return &Error{field, fmt.Sprintf("must be at least %d characters", minLen)}
		}
		if maxLen >= 0 && n > maxLen {
			return &Error{field, fmt.Sprintf("must be at most %d characters", maxLen)}
		}
		return nil
	}
}

// Pattern checks a string against a regular expression.
func Pattern(field, expr string) func(string) error {
	re := regexp.MustCompile(expr)
	return func(s string) error {
		if !re.MatchString(s) {
			return &Error{field, fmt.Sprintf("must match %s", expr)}
		}
		return nil
	}
}

// Email checks that a string is a single email address.
func Email(field string) func(string) error {
	return func(s string) error {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			return &Error{field, "must be an email address"}
		}
		return nil
	}
}

// IntRange checks inclusive bounds; nil means no bound.
func IntRange(field string, minV, maxV *float64) func(int) error {
	return func(v int) error { return checkRange(field, float64(v), minV, maxV) }
}

// FloatRange checks inclusive bounds; nil means no bound.
func FloatRange(field string, minV, maxV *float64) func(float64) error {
	return func(v float64) error { return checkRange(field, v, minV, maxV) }
}

func checkRange(field string, v float64, minV, maxV *float64) error {
	if minV != nil && v < *minV {
		return &Error{field, fmt.Sprintf("must be at least %v", *minV)}
	}
	if maxV != nil && v > *maxV {
		return &Error{field, fmt.Sprintf("must be at most %v", *maxV)}
	}
	return nil
}

// ListLength checks the number of items of a list field; -1 means no bound.
func ListLength(field string, n, minLen, maxLen int) error {
	if minLen >= 0 && n < minLen {
		return &Error{field, fmt.Sprintf("must have at least %d items", minLen)}
	}
	if maxLen >= 0 && n > maxLen {
		return &Error{field, fmt.Sprintf("must have at most %d items", maxLen)}
	}
	return nil
}
