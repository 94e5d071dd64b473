package auth

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"kiln/runtime/store/authuser"
)

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestArgon2Format(t *testing.T) {
	ctx := context.Background()
	h, err := hashPassword(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(h) {
		t.Fatalf("hash %q is not the OWASP argon2id PHC string", h)
	}
	h2, _ := hashPassword(ctx, pw)
	if h == h2 {
		t.Fatal("same salt twice")
	}
	p, salt, key, err := parseHash(h)
	if err != nil || p != defaultArgon || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("parse: %+v %d %d %v", p, len(salt), len(key), err)
	}
	if ok, rehash, err := checkPassword(ctx, h, pw); !ok || rehash || err != nil {
		t.Fatalf("check right: %v %v %v", ok, rehash, err)
	}
	if ok, _, err := checkPassword(ctx, h, pw+"x"); ok || err != nil {
		t.Fatalf("check wrong: %v %v", ok, err)
	}
}

func TestArgon2ParamsFromHash(t *testing.T) {
	ctx := context.Background()
	old := argonParams{Memory: 8 * 1024, Time: 1, Threads: 2, SaltLen: 8, KeyLen: 16}
	h, err := hashPasswordParams(ctx, pw, old)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=2$") {
		t.Fatalf("hash %q", h)
	}
	p, _, _, err := parseHash(h)
	if err != nil || p != old {
		t.Fatalf("parsed %+v, %v", p, err)
	}
	ok, rehash, err := checkPassword(ctx, h, pw)
	if !ok || !rehash || err != nil {
		t.Fatalf("verify with stored params: ok %v rehash %v err %v", ok, rehash, err)
	}
	valid := strings.Split(h, "$")
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=8192,t=1,p=2$" + valid[4] + "$" + valid[5],
		"$argon2id$v=16$m=8192,t=1,p=2$" + valid[4] + "$" + valid[5],
		"$argon2id$v=19$m=8192,t=1$" + valid[4] + "$" + valid[5],
		"$argon2id$v=19$m=8192,t=1,p=2,x=1$" + valid[4] + "$" + valid[5],
		"$argon2id$v=19$m=99999999,t=1,p=2$" + valid[4] + "$" + valid[5],
		"$argon2id$v=19$m=8192,t=0,p=2$" + valid[4] + "$" + valid[5],
		"$argon2id$v=19$m=8192,t=1,p=0$" + valid[4] + "$" + valid[5],
		"$argon2id$v=19$m=8192,t=1,p=2$!!!$" + valid[5],
		"$argon2id$v=19$m=8192,t=1,p=2$" + valid[4] + "$AAAA",
		h + "$extra",
	} {
		if _, _, _, err := parseHash(bad); err == nil {
			t.Errorf("parseHash(%q) accepted", bad)
		}
	}
}

func TestSignInRehashesOldParams(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		s := e.signUp("old@example.com", pw)
		old, err := hashPasswordParams(e.ctx, pw, argonParams{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.client.AuthUser.UpdateOneID(s.User.ID).SetPasswordHash(old).Exec(e.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SignIn(e.ctx, "old@example.com", pw, ""); err != nil {
			t.Fatalf("sign in with old-parameter hash: %v", err)
		}
		u, err := e.client.AuthUser.Query().Where(authuser.ID(s.User.ID)).Only(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !phcRE.MatchString(u.PasswordHash) {
			t.Fatalf("hash not upgraded: %s", u.PasswordHash)
		}
		if strings.Contains(u.String(), u.PasswordHash) {
			t.Fatal("hash in String()")
		}
	})
}
