package auth

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	texttemplate "text/template"
)

// Mail kinds: each has a subject, a text and an HTML template.
const (
	MailVerification = "verification"  // the email verification code
	MailReset        = "reset"         // the password reset link or code
	MailEmailCode    = "email_code"    // the sign-in code, with the magic link when asked
	MailSignupNotice = "signup_notice" // someone signed up with an address that has an account
)

var mailKinds = []string{MailVerification, MailReset, MailEmailCode, MailSignupNotice}

//go:embed mail
var defaultMail embed.FS

// MailData is what a mail template may use: .Email (the recipient), .Code
// (a 6-digit code, or the reset token when there is no reset link) and
// .Link (the magic link or the reset link; empty when there is none).
type MailData struct {
	Email string
	Code  string
	Link  string
}

// Message is a rendered mail.
type Message struct {
	Subject string
	Text    string
	HTML    string // empty: a text-only mail
}

// MessageMailer is a Mailer that also sends a text and HTML message
// (multipart/alternative); a Mailer without it gets the text alone.
type MessageMailer interface {
	SendMessage(ctx context.Context, to string, m Message) error
}

type mailTemplate struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
}

// MailTemplates are the subject, text and HTML templates of Kiln's mails.
type MailTemplates struct {
	kinds map[string]*mailTemplate
}

// LoadMailTemplates returns the built-in templates with those of dir in
// their place: files named <kind>.subject.txt, <kind>.txt (Go
// text/template) and <kind>.html (html/template), kind being
// verification, reset, email_code or signup_notice; a file left out keeps
// the built-in one. dir "" means the built-in templates only. Every
// template is parsed and rendered with sample data, so an unknown file, a
// syntax error, an unknown field or a subject that is empty or spans lines
// is an error here (naming the file), not when a mail goes out.
func LoadMailTemplates(dir string) (*MailTemplates, error) {
	t := &MailTemplates{kinds: map[string]*mailTemplate{}}
	var errs []error
	for _, k := range mailKinds {
		mt := &mailTemplate{}
		for _, part := range []string{".subject.txt", ".txt", ".html"} {
			name := k + part
			src, err := fs.ReadFile(defaultMail, "mail/"+name)
			if err != nil {
				return nil, fmt.Errorf("built-in mail template %s: %w", name, err)
			}
			if err := mt.parse(name, string(src)); err != nil {
				return nil, fmt.Errorf("built-in mail template %w", err)
			}
		}
		t.kinds[k] = mt
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || strings.HasPrefix(name, ".") {
				continue
			}
			kind, part := splitTemplateName(name)
			if !slices.Contains(mailKinds, kind) || part == "" {
				errs = append(errs, fmt.Errorf("%s: not a mail template name: want <kind>.subject.txt, <kind>.txt or <kind>.html, kind one of %s",
					filepath.Join(dir, name), strings.Join(mailKinds, ", ")))
				continue
			}
			src, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				errs = append(errs, fmt.Errorf("mail templates: %w", err))
				continue
			}
			if err := t.kinds[kind].parse(name, string(src)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", dir, err))
			}
		}
	}
	for _, k := range mailKinds {
		for _, d := range []MailData{
			{Email: "ada@example.com", Code: "123456"},
			{Email: "ada@example.com", Code: "123456", Link: "com.example.app:/auth?code=123456"},
		} {
			if _, err := t.Render(k, d); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", dir, err))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mail templates: %w", err)
	}
	return t, nil
}

// splitTemplateName splits verification.subject.txt into verification and
// .subject.txt.
func splitTemplateName(name string) (kind, part string) {
	for _, p := range []string{".subject.txt", ".txt", ".html"} {
		if k, ok := strings.CutSuffix(name, p); ok {
			return k, p
		}
	}
	return name, ""
}

// parse replaces the part of mt that name is with src; on an error mt
// keeps what it had.
func (mt *mailTemplate) parse(name, src string) error {
	if strings.HasSuffix(name, ".html") {
		h, err := htmltemplate.New(name).Option("missingkey=error").Parse(src)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		mt.html = h
		return nil
	}
	tt, err := texttemplate.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if strings.HasSuffix(name, ".subject.txt") {
		mt.subject = tt
	} else {
		mt.text = tt
	}
	return nil
}

// Render renders the mail of kind with d.
func (t *MailTemplates) Render(kind string, d MailData) (Message, error) {
	mt, ok := t.kinds[kind]
	if !ok {
		return Message{}, fmt.Errorf("no mail template %q", kind)
	}
	var subject, text, html bytes.Buffer
	if err := mt.subject.Execute(&subject, d); err != nil {
		return Message{}, err
	}
	if err := mt.text.Execute(&text, d); err != nil {
		return Message{}, err
	}
	// Links are Kiln's own (the reset URL setting, an allow-listed
	// redirect): html/template may put an app's custom scheme in href.
	hd := struct {
		Email, Code string
		Link        htmltemplate.URL
	}{d.Email, d.Code, htmltemplate.URL(d.Link)}
	if err := mt.html.Execute(&html, hd); err != nil {
		return Message{}, err
	}
	s := strings.TrimSpace(subject.String())
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return Message{}, fmt.Errorf("%s.subject.txt: the subject must be one line, not empty", kind)
	}
	return Message{Subject: s, Text: text.String(), HTML: html.String()}, nil
}
