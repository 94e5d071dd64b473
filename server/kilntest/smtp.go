package kilntest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPServer is a real SMTP server (go-smtp) on loopback that keeps every
// message it receives; point a server at it with KILN_SMTP_ADDR=Addr.
type SMTPServer struct {
	Addr string

	mu   sync.Mutex
	msgs []Mail
}

// Mail is a received message: its envelope recipients and raw content.
type Mail struct {
	To   []string
	Data string
}

// StartSMTP starts an SMTP server for the test's lifetime.
func StartSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SMTPServer{Addr: l.Addr().String()}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Messages returns the messages received so far.
func (s *SMTPServer) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.msgs...)
}

// WaitFor returns the n-th message (counting from 1) sent to address,
// polling up to 400 times 50 ms apart (mails leave the server in the
// background); it fails the test if none comes.
func (s *SMTPServer) WaitFor(t testing.TB, address string, n int) Mail {
	t.Helper()
	for range 400 {
		var got []Mail
		for _, m := range s.Messages() {
			for _, to := range m.To {
				if strings.EqualFold(to, address) {
					got = append(got, m)
				}
			}
		}
		if len(got) >= n {
			return got[n-1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no mail #%d to %s", n, address)
	return Mail{}
}

type smtpSession struct {
	srv *SMTPServer
	cur Mail
}

func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(b)
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	s.cur = Mail{}
	return nil
}

func (s *smtpSession) Reset()        { s.cur = Mail{} }
func (s *smtpSession) Logout() error { return nil }
