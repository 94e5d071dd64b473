package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"regexp"
	"strings"
	"time"
)

// Mailer sends a plain-text email.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// LogMailer "sends" mail by logging it: the default, for development. It
// logs the recipient and subject at INFO and the body at DEBUG with tokens
// redacted. With Dev set, it logs the whole body (so the reset link) at
// INFO: never set it in production.
type LogMailer struct {
	Logger *slog.Logger
	Dev    bool
}

// secretRE matches what looks like a token: a token= query parameter or a
// long base64url run (a 32-byte token is 43 characters).
var secretRE = regexp.MustCompile(`(?i)(token=)[^&\s"'<>]+|[A-Za-z0-9_\-]{32,}`)

func redact(s string) string {
	return secretRE.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) > 6 && strings.EqualFold(m[:6], "token=") {
			return m[:6] + "[redacted]"
		}
		return "[redacted]"
	})
}

// Send implements Mailer.
func (m LogMailer) Send(ctx context.Context, to, subject, body string) error {
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	if m.Dev {
		log.InfoContext(ctx, "mail (dev: not sent)", "to", to, "subject", subject, "body", body)
		return nil
	}
	log.InfoContext(ctx, "mail (not sent: no SMTP configured)", "to", to, "subject", subject)
	log.DebugContext(ctx, "mail body", "to", to, "body", redact(body))
	return nil
}

// SMTPMailer sends mail through an SMTP server (net/smtp). It upgrades the
// connection with STARTTLS whenever the server offers it, and authenticates
// (PLAIN) with Username and Password, which net/smtp only allows over TLS or
// to localhost.
type SMTPMailer struct {
	Addr     string // host:port
	From     string // envelope and header sender, e.g. "Kiln <no-reply@example.com>"
	Username string
	Password string
	// TLSConfig is used for STARTTLS; nil means the system roots and
	// ServerName from Addr.
	TLSConfig *tls.Config
}

// Send implements Mailer: a text-only mail.
func (m SMTPMailer) Send(ctx context.Context, to, subject, body string) error {
	return m.SendMessage(ctx, to, Message{Subject: subject, Text: body})
}

// SendMessage implements MessageMailer: text and HTML as
// multipart/alternative (text only when m.HTML is empty).
func (m SMTPMailer) SendMessage(ctx context.Context, to string, msg Message) error {
	if err := m.send(ctx, to, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", m.Addr, err)
	}
	return nil
}

func (m SMTPMailer) send(ctx context.Context, to string, msg Message) error {
	subject := msg.Subject
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return fmt.Errorf("From %q: %w", m.From, err)
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	if strings.ContainsAny(subject, "\r\n") {
		return errors.New("subject contains a line break")
	}
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := m.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		} else if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if m.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("server does not support AUTH")
		}
		// PlainAuth refuses to send credentials unless the connection is
		// TLS or the host is localhost.
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt.Address); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(buildMessage(from, rcpt, msg)); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func buildMessage(from, to *mail.Address, msg Message) []byte {
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := "localhost"
	if _, d, ok := strings.Cut(from.Address, "@"); ok {
		domain = d
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from.String())
	fmt.Fprintf(&b, "To: %s\r\n", to.String())
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", msg.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id[:]), domain)
	b.WriteString("MIME-Version: 1.0\r\n")
	part := func(contentType, body string) {
		fmt.Fprintf(&b, "Content-Type: %s; charset=utf-8\r\n", contentType)
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
		qp := quotedprintable.NewWriter(&b)
		_, _ = qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")))
		_ = qp.Close()
		b.WriteString("\r\n")
	}
	if msg.HTML == "" {
		part("text/plain", msg.Text)
		return b.Bytes()
	}
	// The boundary carries the Message-ID's random bytes: no part can
	// contain it by chance.
	boundary := "kiln-" + hex.EncodeToString(id[:])
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	part("text/plain", msg.Text)
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	part("text/html", msg.HTML)
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}
