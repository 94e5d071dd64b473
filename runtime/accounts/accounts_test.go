package accounts

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/apierror"
)

// calls records which Service methods API reached (embedding a nil Service
// makes any other method panic, which fails the test).
type calls struct {
	Service
	got []string
}

func (c *calls) SignOutEverywhere(context.Context, uuid.UUID) error {
	c.got = append(c.got, "signOutEverywhere")
	return nil
}
func (c *calls) AssignRole(context.Context, uuid.UUID, string) error {
	c.got = append(c.got, "assignRole")
	return nil
}
func (c *calls) User(_ context.Context, id uuid.UUID) (*User, error) {
	c.got = append(c.got, "user")
	return &User{ID: id}, nil
}

// TestAPIGuards: account fields need a signed-in user, role fields an
// admin; refused calls never reach the service.
func TestAPIGuards(t *testing.T) {
	user := access.With(context.Background(), &access.Viewer{ID: uuid.New()})
	admin := access.With(context.Background(), &access.Viewer{Admin: true})
	visitor := context.Background()
	code := func(err error) string {
		var ae apierror.Error
		if errors.As(err, &ae) {
			return ae.Code()
		}
		return ""
	}
	c := &calls{}
	a := API{Service: c}
	if _, err := a.SignOutEverywhere(visitor); code(err) != apierror.CodeUnauthenticated {
		t.Errorf("a visitor signing out everywhere: %v", err)
	}
	if _, err := a.SignOutEverywhere(admin); code(err) != apierror.CodeUnauthenticated {
		t.Errorf("an admin signing out everywhere (no account): %v", err)
	}
	if _, err := a.AssignRole(user, uuid.New(), "moderator"); code(err) != apierror.CodeForbidden {
		t.Errorf("a user assigning a role: %v", err)
	}
	if v, err := a.Viewer(visitor); v != nil || err != nil {
		t.Errorf("a visitor's viewer: %v %v", v, err)
	}
	if len(c.got) != 0 {
		t.Fatalf("refused calls reached the service: %v", c.got)
	}
	if _, err := a.SignOutEverywhere(user); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AssignRole(admin, uuid.New(), "moderator"); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Viewer(user); err != nil || v == nil {
		t.Fatalf("viewer: %v %v", v, err)
	}
	if want := []string{"signOutEverywhere", "assignRole", "user"}; len(c.got) != 3 || c.got[0] != want[0] || c.got[1] != want[1] || c.got[2] != want[2] {
		t.Fatalf("calls %v, want %v", c.got, want)
	}
}
