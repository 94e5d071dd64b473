package apierror

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// TestContract: every error of the package is found through wrapping and
// gives its code and extensions.
func TestContract(t *testing.T) {
	id := uuid.New()
	for _, c := range []struct {
		err  error
		code string
		ext  map[string]any
	}{
		{Input("email", "email is invalid"), CodeBadUserInput, map[string]any{"field": "email"}},
		{&NotFoundError{Type: "Post", ID: id}, CodeNotFound, nil},
		{&ConflictError{Type: "Post", ID: id, Current: 3}, CodeConflict, map[string]any{"currentVersion": 3}},
		{&ConflictError{Type: "Post", ID: id, Current: -1}, CodeConflict, nil},
		{New(CodeRateLimited, "slow down", map[string]any{"retryAfter": 2}), CodeRateLimited, map[string]any{"retryAfter": 2}},
	} {
		var e Error
		if !errors.As(fmt.Errorf("wrapped: %w", c.err), &e) {
			t.Fatalf("%v: not found through wrapping", c.err)
		}
		if e.Code() != c.code || fmt.Sprint(e.Extensions()) != fmt.Sprint(c.ext) {
			t.Errorf("%v: code %s ext %v, want %s %v", c.err, e.Code(), e.Extensions(), c.code, c.ext)
		}
	}
	if !errors.Is(&ConflictError{}, ErrConflict) {
		t.Error("ConflictError does not wrap ErrConflict")
	}
}
