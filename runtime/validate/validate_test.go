package validate

import (
	"errors"
	"testing"

	"kiln/runtime/apierror"
)

func TestValidators(t *testing.T) {
	min0, max10 := Ptr(0), Ptr(10)
	for _, c := range []struct {
		name string
		err  error
		want string // "" for valid
	}{
		{"length ok", Length("bio", 1, 3)("abc"), ""},
		{"length counts runes", Length("bio", 1, 3)("ééé"), ""},
		{"too short", Length("bio", 2, -1)("a"), "bio must be at least 2 characters"},
		{"too long", Length("bio", -1, 2)("abc"), "bio must be at most 2 characters"},
		{"pattern", Pattern("handle", "^[a-z]+$")("ab1"), "handle must match ^[a-z]+$"},
		{"email", Email("email")("Ada <ada@example.com>"), "email must be an email address"},
		{"email ok", Email("email")("ada@example.com"), ""},
		{"int range", IntRange("n", min0, max10)(11), "n must be at most 10"},
		{"float range", FloatRange("x", min0, nil)(-0.5), "x must be at least 0"},
		{"list", ListLength("tags", 3, -1, 2), "tags must have at most 2 items"},
	} {
		got := ""
		if c.err != nil {
			got = c.err.Error()
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		var ae apierror.Error
		if c.err != nil && (!errors.As(c.err, &ae) || ae.Code() != apierror.CodeBadUserInput || ae.Extensions()["field"] == "") {
			t.Errorf("%s: not a BAD_USER_INPUT naming the field", c.name)
		}
	}
	if _, err := UnmarshalUUID("nope"); err == nil {
		t.Error("a bad UUID was accepted")
	}
}
