package config

import (
	"strings"
	"testing"
)

// TestRedirectSignInSettings: KILN_AUTH_REDIRECT_URIS is read and each bad
// entry reported; mail templates load from KILN_MAIL_TEMPLATES; in
// production a redirect client needs KILN_PUBLIC_URL (the callback the
// providers know).
func TestRedirectSignInSettings(t *testing.T) {
	base := map[string]string{
		"KILN_DATA_DIR":              t.TempDir(),
		"KILN_AUTH_OIDC_PROVIDERS":   "acme|https://id.acme.example|app",
		"KILN_AUTH_REDIRECT_CLIENTS": "acme|web|secret",
		"KILN_AUTH_REDIRECT_URIS":    "com.example.app:/auth, https://app.example/auth",
	}
	c, err := Load(nil, envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RedirectURIs) != 2 || c.RedirectURIs[0] != "com.example.app:/auth" || c.Providers[0].Redirect == nil || c.MailTemplates != nil {
		t.Fatalf("got %+v %+v %v", c.RedirectURIs, c.Providers, c.MailTemplates)
	}

	bad := map[string]string{"KILN_ENV": "production", "KILN_JWT_KEYS": "x", "KILN_AUTH_REDIRECT_URIS": "javascript:alert(1),http://app.example/cb",
		"KILN_MAIL_TEMPLATES": t.TempDir() + "/missing"}
	for k, v := range base {
		if _, ok := bad[k]; !ok {
			bad[k] = v
		}
	}
	_, err = Load(nil, envOf(bad))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, w := range []string{
		`KILN_AUTH_REDIRECT_URIS: redirect URI "javascript:alert(1)"`,
		`KILN_AUTH_REDIRECT_URIS: redirect URI "http://app.example/cb" must use https`,
		"KILN_AUTH_REDIRECT_CLIENTS needs KILN_PUBLIC_URL in production",
		"KILN_MAIL_TEMPLATES: mail templates:",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
}
