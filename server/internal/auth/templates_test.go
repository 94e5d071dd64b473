package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func templateDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMailTemplates: a directory's templates replace the built-in ones
// file by file; HTML is escaped, yet an app's custom-scheme link stays a
// link; every kind of bad template is refused when loading, naming the
// file.
func TestMailTemplates(t *testing.T) {
	def, err := LoadMailTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range mailKinds {
		m, err := def.Render(k, MailData{Email: "ada@example.com", Code: "123456", Link: "com.example.app:/auth?code=123456"})
		if err != nil || m.Subject == "" || m.Text == "" || !strings.Contains(m.HTML, "<html>") {
			t.Errorf("built-in %s: %+v, %v", k, m, err)
		}
	}

	dir := templateDir(t, map[string]string{
		"email_code.subject.txt": "Sign in to Acme: {{.Code}}",
		"email_code.html":        `<p>Hi {{.Email}}, <a href="{{.Link}}">tap here</a> or type {{.Code}}</p>`,
	})
	mt, err := LoadMailTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mt.Render(MailEmailCode, MailData{Email: "<b>eve</b>@example.com", Code: "654321", Link: "com.example.app:/auth?code=654321&email=x"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Sign in to Acme: 654321" {
		t.Errorf("subject %q", m.Subject)
	}
	if !strings.Contains(m.HTML, `href="com.example.app:/auth?code=654321&amp;email=x"`) || !strings.Contains(m.HTML, "&lt;b&gt;eve&lt;/b&gt;") {
		t.Errorf("html not escaped as it should be:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, "Open this link") { // the built-in text stays
		t.Errorf("text:\n%s", m.Text)
	}

	for _, c := range []struct{ file, src, want string }{
		{"reset.txt", "{{.Code", "reset.txt: template: reset.txt:1: unclosed action"},
		{"verification.html", "<p>{{.Nope}}</p>", "verification.html"},
		{"welcome.txt", "hi", "welcome.txt: not a mail template name"},
		{"email_code.subject.txt", "two\nlines {{.Code}}", "email_code.subject.txt: the subject must be one line"},
		{"signup_notice.subject.txt", "  ", "signup_notice.subject.txt: the subject must be one line, not empty"},
	} {
		_, err := LoadMailTemplates(templateDir(t, map[string]string{c.file: c.src}))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: got %v, want an error saying %q", c.file, c.src, err, c.want)
		}
	}
	if _, err := LoadMailTemplates(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing directory was accepted")
	}
}
