package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"kiln/migrations"
	"kiln/runtime/store"
	"kiln/runtime/store/authsession"
	"kiln/server/internal/database"
	"kiln/server/kilntest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one test database with a service on it.
type env struct {
	t      *testing.T
	ctx    context.Context
	client *store.Client
	clock  *clock
	keys   *KeySet
	svc    *Service
}

var testLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// openClient opens a migrated database of the given dialect ("sqlite" or
// "postgres") for the test.
func openClient(t *testing.T, dialect string) *store.Client {
	t.Helper()
	ctx := context.Background()
	opts := database.Options{DataDir: t.TempDir()}
	if dialect == "postgres" {
		opts.URL = kilntest.PostgresURL(t) // skips without KILN_TEST_POSTGRES_URL
		opts.MaxConns = 30
	}
	db, err := database.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, migrations.FS, testLogger); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return store.NewClient(store.Driver(db.Driver))
}

// forEachDB runs fn on SQLite and, when KILN_TEST_POSTGRES_URL is set, on
// a fresh PostgreSQL database.
func forEachDB(t *testing.T, fn func(e *env)) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			fn(newEnv(t, openClient(t, d), nil))
		})
	}
}

func sqliteOnly(t *testing.T, mod func(*Config), fn func(e *env)) {
	fn(newEnv(t, openClient(t, "sqlite"), mod))
}

var (
	testKeysOnce sync.Once
	testKeys     *KeySet
)

func sharedKeys(t *testing.T) *KeySet {
	testKeysOnce.Do(func() {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		testKeys, err = NewKeySet(k)
		if err != nil {
			panic(err)
		}
	})
	return testKeys
}

func newEnv(t *testing.T, client *store.Client, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), client: client, clock: newClock(), keys: sharedKeys(t)}
	e.svc = e.newService(mod)
	return e
}

// newService returns another service (another "instance") on the same
// database and clock.
func (e *env) newService(mod func(*Config)) *Service {
	e.t.Helper()
	cfg := Config{
		Client: e.client,
		Keys:   e.keys,
		Now:    e.clock.Now,
		Logger: testLogger,
		Limits: Limits{PerIP: rate.Inf, PerAccount: rate.Inf, PerEmail: rate.Inf},
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.mail.Wait)
	return s
}

func (e *env) signUp(email, pw string) *Session {
	e.t.Helper()
	s, err := e.svc.SignUp(e.ctx, email, pw, "192.0.2.1")
	if err != nil {
		e.t.Fatalf("SignUp(%s): %v", email, err)
	}
	return s
}

func (e *env) mustVerify(s *Service, access string) {
	e.t.Helper()
	if _, err := s.Verify(e.ctx, access); err != nil {
		e.t.Fatalf("Verify: %v", err)
	}
}

func (e *env) family(refresh string) []*store.AuthSession {
	e.t.Helper()
	cur, err := e.client.AuthSession.Query().Where(authsession.TokenHash(hashSecret(refresh))).Only(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	all, err := e.client.AuthSession.Query().Where(authsession.FamilyID(cur.FamilyID)).All(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return all
}

func live(sessions []*store.AuthSession) []*store.AuthSession {
	var out []*store.AuthSession
	for _, s := range sessions {
		if s.RotatedAt == nil && s.RevokedAt == nil {
			out = append(out, s)
		}
	}
	return out
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func uniqueEmail(prefix string) string {
	return prefix + "-" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + "@example.com"
}
