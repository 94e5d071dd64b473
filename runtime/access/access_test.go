package access

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"kiln/runtime/apierror"
)

func TestBypass(t *testing.T) {
	ctx := context.Background()
	if v, skip := Bypass(ctx); v != nil || skip {
		t.Error("a visitor bypasses rules")
	}
	user := &Viewer{ID: uuid.New()}
	if v, skip := Bypass(With(ctx, user)); v != user || skip {
		t.Error("a user bypasses rules")
	}
	if _, skip := Bypass(With(ctx, &Viewer{Admin: true})); !skip {
		t.Error("an admin does not bypass rules")
	}
	if v, skip := Bypass(System(With(ctx, user))); v != user || !skip {
		t.Error("the system context does not bypass rules")
	}
}

// TestMatch: comparisons follow SQL, across the Go types records use.
func TestMatch(t *testing.T) {
	s, n := "a", 3
	id := uuid.New()
	now := time.Now()
	for _, c := range []struct {
		a    any
		op   string
		b    any
		want bool
	}{
		{"a", "eq", "a", true}, {&s, "eq", "a", true}, {"a", "lt", "b", true}, {"a", "neq", "a", false},
		{3, "eq", 3.0, true}, {&n, "gte", 3, true}, {int64(2), "lt", 3, true},
		{id, "eq", id.String(), true}, {now, "lt", now.Add(time.Second), true},
		{true, "eq", true, true}, {true, "neq", false, true},
		{nil, "eq", nil, false}, {(*string)(nil), "neq", "a", false}, {"a", "eq", nil, false}, // null never matches
		{"1", "eq", 1, false}, // no cross-type equality
	} {
		if got := Match(c.a, c.op, c.b); got != c.want {
			t.Errorf("Match(%v, %s, %v) = %v", c.a, c.op, c.b, got)
		}
	}
	if !MatchAny("b", "a", "b") || MatchAny("c", "a", "b") || !IsNil((*int)(nil)) || IsNil(0) {
		t.Error("MatchAny or IsNil")
	}
	v := &Viewer{Roles: []string{"editor"}, Claims: map[string]any{"tenant": "t1"}}
	if !v.HasAnyRole("admin", "editor") || v.HasRole("admin") || !v.HasClaim("tenant") || (*Viewer)(nil).HasClaim("tenant") {
		t.Error("roles or claims")
	}
}

func TestDenied(t *testing.T) {
	var ae apierror.Error
	if err := Denied(nil, OpCreate, "Post"); !errors.As(err, &ae) || ae.Code() != apierror.CodeUnauthenticated {
		t.Errorf("a visitor: %v", err)
	}
	if err := Denied(&Viewer{}, OpDelete, "Post"); !errors.As(err, &ae) || ae.Code() != apierror.CodeForbidden {
		t.Errorf("a user: %v", err)
	}
	if err := error(&ActorError{Field: "authorID", Type: "Profile"}); !errors.As(err, &ae) || ae.Extensions()["field"] != "authorID" {
		t.Errorf("actor: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	p := MustPolicy("p, moderator, Post, read\np, moderator, Post, delete\np, support, Profile.email, read\n")
	mod := &Viewer{Roles: []string{"moderator"}}
	for _, c := range []struct {
		v         *Viewer
		obj, op   string
		ruleRoles []string
		want      bool
	}{
		{mod, "Post", OpRead, []string{"moderator"}, true},
		{mod, "Post", OpUpdate, []string{"moderator"}, false}, // not in the policy
		{mod, "Post", OpRead, []string{"editor"}, false},      // the rule names other roles
		{&Viewer{Roles: []string{"support"}}, "Profile.email", OpRead, []string{"support"}, true},
		{nil, "Post", OpRead, []string{"moderator"}, false},
	} {
		if got := p.RoleAllows(c.v, c.obj, c.op, c.ruleRoles...); got != c.want {
			t.Errorf("RoleAllows(%v, %s, %s, %v) = %v", c.v, c.obj, c.op, c.ruleRoles, got)
		}
	}
	if MustPolicy("").RoleAllows(mod, "Post", OpRead, "moderator") {
		t.Error("an empty policy allows a role")
	}
}

func TestUsesField(t *testing.T) {
	type where struct {
		Email       *string
		EmailNEQ    *string
		EmailIn     []string
		EmailSuffix *string // not a predicate of Email
		Emails      *string // another field
	}
	x := "a"
	for _, c := range []struct {
		w    where
		want bool
	}{
		{where{}, false}, {where{Email: &x}, true}, {where{EmailNEQ: &x}, true}, {where{EmailIn: []string{"a"}}, true},
		{where{EmailSuffix: &x}, false}, {where{Emails: &x}, false},
	} {
		if got := UsesField(&c.w, "Email"); got != c.want {
			t.Errorf("UsesField(%+v) = %v", c.w, got)
		}
	}
}

func TestFieldAuth(t *testing.T) {
	dir := FieldAuth(func(_ context.Context, obj any, field string) bool { return obj == "mine" })
	ctx := graphql.WithFieldContext(context.Background(), &graphql.FieldContext{Object: "Profile", Field: graphql.CollectedField{Field: &ast.Field{Name: "email"}}})
	next := func(context.Context) (any, error) { return "a@example.com", nil }
	if v, err := dir(ctx, "mine", next); err != nil || v != "a@example.com" {
		t.Errorf("allowed: %v %v", v, err)
	}
	var forb *ForbiddenError
	if v, err := dir(ctx, "theirs", next); v != nil || !errors.As(err, &forb) {
		t.Errorf("hidden: %v %v", v, err)
	}
}
