package auth

import (
	"strings"
	"testing"
)

// TestProvidersFromEnv: the presets and KILN_AUTH_OIDC_PROVIDERS give the
// providers; every bad entry is reported at once, naming its setting.
func TestProvidersFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	got, err := ProvidersFromEnv(env(map[string]string{
		"KILN_AUTH_APPLE_CLIENT_IDS":  "com.example.app, com.example.web",
		"KILN_AUTH_GOOGLE_CLIENT_IDS": "1.apps.googleusercontent.com",
		"KILN_AUTH_OIDC_PROVIDERS":    "acme|https://id.acme.example|a,b; dev|http://127.0.0.1:9000|c;",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"apple https://appleid.apple.com [com.example.app com.example.web]",
		"google https://accounts.google.com [1.apps.googleusercontent.com]",
		"acme https://id.acme.example [a b]", "dev http://127.0.0.1:9000 [c]"}
	if len(got) != len(want) {
		t.Fatalf("got %d providers, want %d: %+v", len(got), len(want), got)
	}
	for i, p := range got {
		if s := p.Name + " " + p.Issuer + " [" + strings.Join(p.ClientIDs, " ") + "]"; s != want[i] {
			t.Errorf("provider %d: %s, want %s", i, s, want[i])
		}
	}

	_, err = ProvidersFromEnv(env(map[string]string{
		"KILN_AUTH_APPLE_CLIENT_IDS": "a,,b",
		"KILN_AUTH_OIDC_PROVIDERS":   "acme|https://id.acme.example; Bad Name|https://x.example|a; plain|http://id.example|a; apple|https://x.example|a; q|https://x.example/?a=1|a; e|https://x.example|; d|https://x.example|a; d|https://y.example|a",
	}))
	if err == nil {
		t.Fatal("bad providers accepted")
	}
	for _, w := range []string{
		"KILN_AUTH_APPLE_CLIENT_IDS: provider apple: needs at least one client id, none empty",
		`"acme|https://id.acme.example" must be name|issuerURL|clientID`,
		`provider name "Bad Name"`,
		`"http://id.example" must use https (http only on a loopback host)`,
		"provider apple is a preset: set KILN_AUTH_APPLE_CLIENT_IDS",
		"without query",
		"provider d is configured twice",
		"provider e: needs at least one client id",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
}

// TestRedirectSettings: KILN_AUTH_REDIRECT_CLIENTS gives configured
// providers their redirect client; every bad entry is reported, never
// with its secret; ValidateRedirectURI takes custom schemes, https and
// loopback http, and refuses the rest.
func TestRedirectSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	got, err := ProvidersFromEnv(env(map[string]string{
		"KILN_AUTH_OIDC_PROVIDERS":   "acme|https://id.acme.example|a",
		"KILN_AUTH_REDIRECT_CLIENTS": " acme | web | s3cret ;",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Redirect == nil || *got[0].Redirect != (RedirectClient{ClientID: "web", ClientSecret: "s3cret"}) {
		t.Fatalf("got %+v", got)
	}
	_, err = ProvidersFromEnv(env(map[string]string{
		"KILN_AUTH_OIDC_PROVIDERS":   "acme|https://id.acme.example|a",
		"KILN_AUTH_REDIRECT_CLIENTS": "nope|web|topsecret1; acme|web; acme|web|; acme|web|topsecret2; acme|w2|topsecret3",
	}))
	if err == nil {
		t.Fatal("bad redirect clients accepted")
	}
	for _, w := range []string{
		`provider "nope" is not configured`,
		"each entry must be name|clientID|clientSecret",
		"the redirect flow's client needs an id and a secret",
		"provider acme has two redirect clients",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("the error repeats a secret: %v", err)
	}
	for _, ok := range []string{"com.example.app:/auth", "myapp://cb", "https://app.example/auth", "http://127.0.0.1:3000/cb", "http://localhost/cb"} {
		if err := ValidateRedirectURI(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/relative", "https://app.example/a#f", "http://app.example/cb", "javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "https:///nohost"} {
		if err := ValidateRedirectURI(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
