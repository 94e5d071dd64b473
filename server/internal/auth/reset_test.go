package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpSink is a real SMTP server (go-smtp) on a loopback address that keeps
// the messages it receives.
type smtpSink struct {
	Addr string
	user string
	pass string

	mu   sync.Mutex
	msgs []smtpMsg
}

type smtpMsg struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string
}

func (k *smtpSink) messages() []smtpMsg {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]smtpMsg(nil), k.msgs...)
}

type sinkSession struct {
	sink *smtpSink
	conn *smtp.Conn
	user string
	cur  smtpMsg
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.sink.user || pass != s.sink.pass {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.sink.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.cur = smtpMsg{From: from, TLS: isTLS, User: s.user}
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, s.cur)
	s.sink.mu.Unlock()
	return nil
}

func (s *sinkSession) Reset()        { s.cur = smtpMsg{} }
func (s *sinkSession) Logout() error { return nil }

// startSMTP serves on host:0. With tlsCfg the server offers STARTTLS; with
// user it requires AUTH PLAIN (allowed without TLS only if insecureAuth).
func startSMTP(t *testing.T, host string, tlsCfg *tls.Config, user, pass string, insecureAuth bool) *smtpSink {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("listen on %s: %v", host, err)
	}
	sink := &smtpSink{Addr: l.Addr().String(), user: user, pass: pass}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: sink, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = tlsCfg
	srv.AllowInsecureAuth = insecureAuth
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = slog.NewLogLogger(testLogger.Handler(), slog.LevelDebug)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sink
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_-]{43})\b`)

// mailToken parses a captured message and returns its reset token.
// mailParts returns a mail's text part, and its HTML part when it is
// multipart/alternative, quoted-printable undone.
func mailParts(t *testing.T, msg *mail.Message) (text, html []byte) {
	t.Helper()
	read := func(h textproto.MIMEHeader, r io.Reader) []byte {
		if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(r)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return read(textproto.MIMEHeader(msg.Header), msg.Body), nil
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for range 10 {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = read(p.Header, p)
		} else {
			text = read(p.Header, p)
		}
	}
	return text, html
}

func mailToken(t *testing.T, m smtpMsg) (to, subject, token string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("parse mail: %v\n%s", err, m.Data)
	}
	body, html := mailParts(t, msg)
	match := tokenRE.FindSubmatch(body)
	if match == nil {
		t.Fatalf("no token link in mail body:\n%s", body)
	}
	if html != nil && !bytes.Contains(html, match[0]) {
		t.Errorf("the HTML part lacks the link %s:\n%s", match[0], html)
	}
	if !strings.Contains(string(body), "https://app.example/reset?token=") {
		t.Errorf("link does not follow ResetURL:\n%s", body)
	}
	return msg.Header.Get("To"), msg.Header.Get("Subject"), string(match[1])
}

func TestPasswordResetOverSMTP(t *testing.T) {
	forEachDB(t, func(e *env) {
		sink := startSMTP(t, "127.0.0.1", nil, "", "", false)
		svc := e.newService(func(c *Config) {
			c.Mailer = SMTPMailer{Addr: sink.Addr, From: "Kiln <no-reply@kiln.test>"}
			c.ResetURL = "https://app.example/reset?token=%s"
		})
		a, err := svc.SignUp(e.ctx, "reset@example.com", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		// Unknown email: nil, and nothing is sent.
		if err := svc.RequestPasswordReset(e.ctx, "nobody@example.com", "192.0.2.1"); err != nil {
			t.Fatalf("unknown email: %v", err)
		}
		svc.mail.Wait()
		if n := len(sink.messages()); n != 0 {
			t.Fatalf("%d mails sent for an unknown email", n)
		}
		var ie *InputError
		if err := svc.RequestPasswordReset(e.ctx, "not an email", ""); !errors.As(err, &ie) {
			t.Fatalf("bad email: %v", err)
		}

		if err := svc.RequestPasswordReset(e.ctx, " Reset@Example.com", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if err := svc.Shutdown(e.ctx); err != nil {
			t.Fatal(err)
		}
		msgs := sink.messages()
		if len(msgs) != 1 {
			t.Fatalf("%d mails, want 1", len(msgs))
		}
		if msgs[0].From != "no-reply@kiln.test" || len(msgs[0].To) != 1 || msgs[0].To[0] != "reset@example.com" {
			t.Fatalf("envelope %s -> %v", msgs[0].From, msgs[0].To)
		}
		to, subject, token := mailToken(t, msgs[0])
		if to != "<reset@example.com>" || subject != "Reset your password" {
			t.Errorf("To %q, Subject %q", to, subject)
		}
		// Stored hashed, with a 1 h expiry.
		stored, err := e.client.AuthToken.Query().Only(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stored.TokenHash != hashSecret(token) || stored.Kind != "password_reset" || !stored.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
			t.Fatalf("stored token %+v", stored)
		}

		wantErr(t, svc.ResetPassword(e.ctx, token, "short"), ErrWeakPassword)
		if err := svc.ResetPassword(e.ctx, token, "brand new password"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, svc.ResetPassword(e.ctx, token, "another new password"), ErrInvalidToken)
		wantErr(t, svc.ResetPassword(e.ctx, "garbage", "another new password"), ErrInvalidToken)

		_, err = svc.Refresh(e.ctx, a.RefreshToken)
		wantErr(t, err, ErrInvalidToken)
		_, err = svc.Verify(e.ctx, a.AccessToken)
		wantErr(t, err, ErrInvalidToken)
		_, err = svc.SignIn(e.ctx, "reset@example.com", pw, "")
		wantErr(t, err, ErrInvalidCredentials)
		if _, err := svc.SignIn(e.ctx, "reset@example.com", "brand new password", ""); err != nil {
			t.Fatal(err)
		}

		// A token expires after an hour.
		if err := svc.RequestPasswordReset(e.ctx, "reset@example.com", ""); err != nil {
			t.Fatal(err)
		}
		svc.mail.Wait()
		msgs = sink.messages()
		_, _, token2 := mailToken(t, msgs[len(msgs)-1])
		e.clock.Advance(time.Hour + time.Second)
		wantErr(t, svc.ResetPassword(e.ctx, token2, "yet another password"), ErrInvalidToken)
	})
}

func TestResetVoidsOtherTokens(t *testing.T) {
	sqliteOnly(t, nil, func(e *env) {
		var mu sync.Mutex
		var bodies []string
		svc := e.newService(func(c *Config) {
			c.ResetURL = "https://app.example/reset?token=%s"
			c.Mailer = mailerFunc(func(_ context.Context, _, _, body string) error {
				mu.Lock()
				bodies = append(bodies, body)
				mu.Unlock()
				return nil
			})
		})
		if _, err := svc.SignUp(e.ctx, "two@example.com", pw, ""); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := svc.RequestPasswordReset(e.ctx, "two@example.com", ""); err != nil {
				t.Fatal(err)
			}
		}
		svc.mail.Wait()
		if len(bodies) != 2 {
			t.Fatalf("%d mails", len(bodies))
		}
		t1 := tokenRE.FindStringSubmatch(bodies[0])[1]
		t2 := tokenRE.FindStringSubmatch(bodies[1])[1]
		if err := svc.ResetPassword(e.ctx, t1, "brand new password"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, svc.ResetPassword(e.ctx, t2, "brand new password 2"), ErrInvalidToken)
	})
}

type mailerFunc func(ctx context.Context, to, subject, body string) error

func (f mailerFunc) Send(ctx context.Context, to, subject, body string) error {
	return f(ctx, to, subject, body)
}

// selfSigned returns a server certificate for 127.0.0.1/localhost and a
// pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestSMTPMailer(t *testing.T) {
	ctx := context.Background()
	t.Run("STARTTLS and AUTH", func(t *testing.T) {
		cert, pool := selfSigned(t)
		sink := startSMTP(t, "127.0.0.1", &tls.Config{Certificates: []tls.Certificate{cert}}, "mailer", "s3cret", false)
		m := SMTPMailer{Addr: sink.Addr, From: "no-reply@kiln.test", Username: "mailer", Password: "s3cret", TLSConfig: &tls.Config{RootCAs: pool}}
		if err := m.Send(ctx, "ada@example.com", "Héllo", "line 1\nline 2 é\n"); err != nil {
			t.Fatal(err)
		}
		msgs := sink.messages()
		if len(msgs) != 1 || !msgs[0].TLS || msgs[0].User != "mailer" {
			t.Fatalf("messages = %+v", msgs)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
		if err != nil {
			t.Fatal(err)
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
		if subj != "Héllo" || strings.ReplaceAll(string(body), "\r\n", "\n") != "line 1\nline 2 é\n\n" {
			t.Fatalf("subject %q body %q", subj, body)
		}
		// An untrusted certificate fails the send.
		bad := m
		bad.TLSConfig = nil
		if err := bad.Send(ctx, "ada@example.com", "x", "y"); err == nil {
			t.Fatal("sent over TLS with an unverified certificate")
		}
	})
	t.Run("plain auth refused without TLS to a remote host", func(t *testing.T) {
		sink := startSMTP(t, "127.0.0.2", nil, "mailer", "s3cret", true) // 127.0.0.2 is not "localhost" to net/smtp
		m := SMTPMailer{Addr: sink.Addr, From: "no-reply@kiln.test", Username: "mailer", Password: "s3cret"}
		err := m.Send(ctx, "ada@example.com", "x", "y")
		if err == nil || !strings.Contains(err.Error(), "unencrypted") {
			t.Fatalf("err = %v, want refusal of unencrypted auth", err)
		}
		if len(sink.messages()) != 0 {
			t.Fatal("message sent")
		}
	})
	t.Run("plain auth to localhost without TLS", func(t *testing.T) {
		sink := startSMTP(t, "127.0.0.1", nil, "mailer", "s3cret", true)
		m := SMTPMailer{Addr: sink.Addr, From: "no-reply@kiln.test", Username: "mailer", Password: "s3cret"}
		if err := m.Send(ctx, "ada@example.com", "x", "y"); err != nil {
			t.Fatal(err)
		}
		if msgs := sink.messages(); len(msgs) != 1 || msgs[0].User != "mailer" || msgs[0].TLS {
			t.Fatalf("messages = %+v", msgs)
		}
	})
	t.Run("header injection", func(t *testing.T) {
		sink := startSMTP(t, "127.0.0.1", nil, "", "", false)
		m := SMTPMailer{Addr: sink.Addr, From: "no-reply@kiln.test"}
		if err := m.Send(ctx, "ada@example.com", "x\r\nBcc: eve@example.com", "y"); err == nil {
			t.Fatal("subject with a line break accepted")
		}
		if err := m.Send(ctx, "ada@example.com\r\nRCPT TO:<eve@example.com>", "x", "y"); err == nil {
			t.Fatal("recipient with a line break accepted")
		}
		if len(sink.messages()) != 0 {
			t.Fatal("message sent")
		}
	})
}

func TestLogMailer(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	token := strings.Repeat("Ab3_", 10) + "xyz"
	body := "Open https://app.example/reset?token=" + token + " now"
	if err := (LogMailer{Logger: log}).Send(context.Background(), "ada@example.com", "Reset your password", body); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, token) {
		t.Fatalf("token logged without Dev:\n%s", out)
	}
	if !strings.Contains(out, "ada@example.com") || !strings.Contains(out, "Reset your password") || !strings.Contains(out, "token=[redacted]") {
		t.Fatalf("log lacks recipient/subject/redacted body:\n%s", out)
	}
	buf.Reset()
	infoOnly := slog.New(slog.NewTextHandler(&buf, nil))
	if err := (LogMailer{Logger: infoOnly, Dev: true}).Send(context.Background(), "ada@example.com", "Reset your password", body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), token) {
		t.Fatalf("Dev mailer does not log the link at INFO:\n%s", buf.String())
	}
	if redact("abc "+token) != "abc [redacted]" {
		t.Fatalf("redact = %q", redact("abc "+token))
	}
}
