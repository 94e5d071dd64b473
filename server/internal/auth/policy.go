package auth

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
)

// PasswordPolicy says which new passwords are accepted: by SignUp,
// LinkAccount, ChangePassword and ResetPassword. SignIn accepts any
// password, so accounts made under an older policy keep working. The zero
// value is the default policy.
type PasswordPolicy struct {
	// MinLength is the minimum number of characters, not counting
	// whitespace at either end (default 8; at most 128, the maximum length).
	MinLength int
	// MinScore is the minimum zxcvbn score, 1 to 4 (default 2). zxcvbn
	// estimates how many guesses an attacker needs, knowing common
	// passwords, words, names, dates, keyboard patterns, repeats and the
	// account's email; score 2 means at least about 10^6 guesses, which
	// rejects every password of its common-password lists (about 30,000)
	// and simple variations of them such as "Password1".
	MinScore int
	// NoStrengthCheck turns the zxcvbn check off (the length rules stay).
	NoStrengthCheck bool
}

// DefaultPasswordPolicy is the policy of a zero PasswordPolicy.
var DefaultPasswordPolicy = PasswordPolicy{MinLength: minPasswordLen, MinScore: 2}

func (p PasswordPolicy) withDefaults() PasswordPolicy {
	if p.MinLength <= 0 {
		p.MinLength = DefaultPasswordPolicy.MinLength
	}
	if p.MinScore <= 0 {
		p.MinScore = DefaultPasswordPolicy.MinScore
	}
	return p
}

func (p PasswordPolicy) validate() error {
	if p.MinLength > maxPasswordLen {
		return fmt.Errorf("auth: PasswordPolicy.MinLength %d is over the maximum length %d", p.MinLength, maxPasswordLen)
	}
	if p.MinScore > 4 {
		return fmt.Errorf("auth: PasswordPolicy.MinScore %d is not a zxcvbn score (0 to 4)", p.MinScore)
	}
	return nil
}

// PasswordPolicyFromEnv reads KILN_PASSWORD_MIN_LENGTH (1 to 128, default
// 8) and KILN_PASSWORD_MIN_SCORE (a zxcvbn score 0 to 4, default 2; 0
// turns the strength check off).
func PasswordPolicyFromEnv(getenv func(string) string) (PasswordPolicy, error) {
	p := DefaultPasswordPolicy
	var errs []string
	if v := getenv("KILN_PASSWORD_MIN_LENGTH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPasswordLen {
			errs = append(errs, fmt.Sprintf("KILN_PASSWORD_MIN_LENGTH must be an integer from 1 to %d, got %q", maxPasswordLen, v))
		} else {
			p.MinLength = n
		}
	}
	if v := getenv("KILN_PASSWORD_MIN_SCORE"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0 || n > 4:
			errs = append(errs, fmt.Sprintf("KILN_PASSWORD_MIN_SCORE must be a zxcvbn score from 0 (no check) to 4, got %q", v))
		case n == 0:
			p.NoStrengthCheck = true
		default:
			p.MinScore = n
		}
	}
	if len(errs) > 0 {
		return p, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return p, nil
}

// weakPassword is an ErrWeakPassword for field with a reason.
func weakPassword(field, msg string) *InputError {
	return &InputError{Field: field, Message: msg, is: ErrWeakPassword}
}

// check returns nil when pw is acceptable as a new password for the
// account of email (may be ""), or an *InputError for field that matches
// ErrWeakPassword and says why.
func (p PasswordPolicy) check(field, pw, email string) error {
	if !utf8.ValidString(pw) {
		return weakPassword(field, "is not valid UTF-8")
	}
	if utf8.RuneCountInString(pw) > maxPasswordLen {
		return weakPassword(field, fmt.Sprintf("must be at most %d characters", maxPasswordLen))
	}
	if utf8.RuneCountInString(strings.TrimSpace(pw)) < p.MinLength {
		return weakPassword(field, fmt.Sprintf("must be at least %d characters, not counting spaces at either end", p.MinLength))
	}
	if p.NoStrengthCheck {
		return nil
	}
	var inputs []string
	if email != "" {
		local, domain, _ := strings.Cut(email, "@")
		inputs = append(inputs, email, local)
		inputs = append(inputs, strings.Split(domain, ".")...)
	}
	if zxcvbn.PasswordStrength(pw, inputs).Score < p.MinScore {
		return weakPassword(field, "is too easy to guess (a common password, word, name, date, keyboard pattern or repeat, or your email): use a longer passphrase of unrelated words")
	}
	return nil
}
