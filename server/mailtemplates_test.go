package server

import (
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// TestMailTemplatesConfigured: a server started with KILN_MAIL_TEMPLATES
// mails, through a real SMTP server, the configured subject and HTML (as
// multipart/alternative, the magic link in the HTML) with the built-in
// text; a server given a bad template does not start and says which file
// is wrong and why.
func TestMailTemplatesConfigured(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"email_code.subject.txt": "Acme sign-in code {{.Code}}",
		"email_code.html":        `<p>Hello {{.Email}}: <a href="{{.Link}}">sign in to Acme</a>, code {{.Code}}</p>`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	smtp := kilntest.StartSMTP(t)
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_SMTP_ADDR="+smtp.Addr,
		"KILN_MAIL_TEMPLATES="+dir, "KILN_AUTH_REDIRECT_URIS="+appRedirect)
	const addr = "nina@example.com"
	s.MustDoAs(t, "", `mutation($e: String!, $r: String) { requestEmailCode(email: $e, redirectTo: $r) }`, map[string]any{"e": addr, "r": appRedirect}, nil)
	m := smtp.WaitFor(t, addr, 1)
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	text, html := mailParts(t, m)
	code := mailCode.FindStringSubmatch(text)
	if code == nil {
		t.Fatalf("no code in the text part:\n%s", text)
	}
	if got := msg.Header.Get("Subject"); got != "Acme sign-in code "+code[1] {
		t.Errorf("subject %q, want the configured one with the code %s", got, code[1])
	}
	link := magicLinkRE.FindString(text)
	if link == "" || !strings.Contains(text, "Open this link") {
		t.Errorf("the text part is not the built-in one with the link:\n%s", text)
	}
	if want := `<p>Hello nina@example.com: <a href="` + strings.ReplaceAll(link, "&", "&amp;") + `">sign in to Acme</a>, code ` + code[1] + `</p>`; html != want {
		t.Errorf("html part:\n%s\nwant\n%s", html, want)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "reset.html"), []byte(`<p>{{.Token}}</p>`), 0o600); err != nil {
		t.Fatal(err)
	}
	started, err := kilntest.StartE(serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_MAIL_TEMPLATES="+bad)
	if err == nil {
		_ = started.Stop()
		t.Fatal("the server started with a bad template")
	}
	for _, w := range []string{"KILN_MAIL_TEMPLATES", "reset.html", "can't evaluate field Token"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the startup error does not say %q:\n%v", w, err)
		}
	}
}
