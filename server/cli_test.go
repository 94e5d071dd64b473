package server

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kiln/server/internal/auth"
	"kiln/server/internal/config"
	"kiln/server/internal/jobs"
	"kiln/server/kilntest"
)

// The command line of an app's binary (serveBin, the example app): every
// subcommand, run as a user runs it.

// runCLI runs the server binary with args and extra environment, and
// returns its standard output, standard error and exit status. A hang
// guard kills it after two minutes (a failure, not a timing assertion).
func runCLI(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KILN_RATE_PER_IP=inf", "KILN_RATE_PER_USER=inf", "REDIS_URL=")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish:\n%s", args, errOut.String())
	}
	return out.String(), errOut.String(), code
}

// TestCLIHelp: -h, --help and help on every command exit 0 and list every
// setting with its variable, flag and default, even when the
// configuration is broken.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"help"}, {"-h"}, {"--help"}, {"serve", "-h"}, {"serve", "--help"}, {"-addr", ":1", "-h"},
		{"migrate", "status", "-h"}, {"migrate", "up", "--help"}, {"keys", "generate", "-h"}, {"version", "--help"},
		{"help", "serve"}, {"help", "migrate", "up"},
	} {
		out, errOut, code := runCLI(t, serverBin, []string{"KILN_MAX_DEPTH=bad", "KILN_ENV=production"}, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			continue
		}
		if !strings.Contains(out, "usage: ") {
			t.Errorf("%v: no usage line:\n%s", args, out)
		}
		for _, s := range config.Settings {
			want := s.Env
			if s.Flag != "" {
				want += ", -" + s.Flag
			}
			want += " (default: " + s.ShownDefault() + ")"
			if !strings.Contains(out, want) {
				t.Errorf("%v: the help lacks %q", args, want)
			}
		}
	}
}

// TestCLIUsageErrors: unknown commands, arguments and flags exit 2 with
// the error and the usage, and start nothing.
func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "extra"}, `serve: unexpected argument "extra"`},
		{[]string{"-addr", "127.0.0.1:0", "extra"}, `serve: unexpected argument "extra"`},
		{[]string{"migrate", "status", "now"}, `migrate status: unexpected argument "now"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serv"}, `did you mean "serve"?`},
		{[]string{"migrate"}, "migrate needs a subcommand: use migrate status or migrate up"},
		{[]string{"migrate", "sideways"}, `migrate has no subcommand "sideways"`},
		{[]string{"keys"}, "use keys generate"},
		{[]string{"keys", "generate", "twice"}, `unexpected argument "twice"`},
		{[]string{"version", "x"}, `unexpected argument "x"`},
		{[]string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"help", "nothing"}, `unknown command "nothing"`},
	} {
		out, errOut, code := runCLI(t, serverBin, []string{"KILN_DATA_DIR=" + dir}, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "usage: ") || out != "" {
			t.Errorf("%v: exit %d, want 2 with %q and the usage; stdout %q, stderr:\n%s", c.args, code, c.want, out, errOut)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command line created the data directory (%v)", err)
	}
}

// TestCLIVersion prints the module's version, Kiln's and Go's; a release
// build stamps its version with -ldflags -X.
func TestCLIVersion(t *testing.T) {
	t.Parallel()
	out, errOut, code := runCLI(t, serverBin, nil, "version")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "kiln ") || !strings.Contains(out, "\nkiln ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version:\n%s", out)
	}
	bin := kilntest.BuildT(t, "..", "GOFLAGS=-ldflags=-X=kiln/server.Version=v9.8.7-test")
	out, _, code = runCLI(t, bin, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "kiln v9.8.7-test\n") {
		t.Errorf("stamped version: exit %d\n%s", code, out)
	}
}

// TestCLIKeysGenerate: the value printed is a KILN_JWT_KEYS a production
// server starts with, and the hint goes to standard error.
func TestCLIKeysGenerate(t *testing.T) {
	t.Parallel()
	out, errOut, code := runCLI(t, serverBin, nil, "keys", "generate")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	value := strings.TrimSuffix(out, "\n")
	if strings.Contains(value, "\n") || !strings.Contains(errOut, "KILN_JWT_KEYS") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("stdout %q, stderr %q: want the value alone, and one line of hint", out, errOut)
	}
	ks, err := auth.ParseKeys(value)
	if err != nil {
		t.Fatal(err)
	}
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ENV=production", "KILN_JWT_KEYS="+value)
	res, err := http.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `"kid":"`+ks.SigningKeyID()+`"`) {
		t.Errorf("JWKS %s lacks the generated key %s", b, ks.SigningKeyID())
	}
}

// TestCLITypoWarning: an unknown KILN_ variable is logged with the setting
// it most likely means; in production it stops the start. Variables of
// tests and benchmarks are not reported.
func TestCLITypoWarning(t *testing.T) {
	t.Parallel()
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADRR=:9999", "KILN_TEST_SOMETHING=1",
		"KILN_BENCH_SOMETHING=1", "KILN_REQUIRE_SOMETHING=1")
	logs := s.Logs()
	if !strings.Contains(logs, "unknown environment variable KILN_ADRR; did you mean KILN_ADDR?") {
		t.Errorf("no warning about KILN_ADRR:\n%s", logs)
	}
	for _, v := range []string{"KILN_TEST_SOMETHING", "KILN_BENCH_SOMETHING", "KILN_REQUIRE_SOMETHING"} {
		if strings.Contains(logs, v) {
			t.Errorf("%s reported:\n%s", v, logs)
		}
	}

	dir := filepath.Join(t.TempDir(), "data")
	_, errOut, code := runCLI(t, serverBin, []string{"KILN_DATA_DIR=" + dir, "KILN_ENV=production",
		"KILN_JWT_KEYS=" + generatedKeys(t), "KILN_ADRR=:9999"}, "-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "KILN_ADRR; did you mean KILN_ADDR?") || !strings.Contains(errOut, "production") {
		t.Errorf("production with KILN_ADRR: exit %d, want 1 naming it:\n%s", code, errOut)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused start created the data directory (%v)", err)
	}
}

func generatedKeys(t *testing.T) string {
	t.Helper()
	out, errOut, code := runCLI(t, serverBin, nil, "keys", "generate")
	if code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

// TestCLIListenAddressFirst: a busy or bad listen address fails the start
// before the database is touched: no data directory, no SQLite file.
func TestCLIListenAddressFirst(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, addr := range []string{busy.Addr().String(), "127.0.0.1:notaport"} {
		dir := filepath.Join(t.TempDir(), "data")
		_, errOut, code := runCLI(t, serverBin, []string{"KILN_DATA_DIR=" + dir}, "serve", "-addr", addr)
		if code != 1 || !strings.Contains(errOut, "listen on "+addr) {
			t.Errorf("-addr %s: exit %d, want 1 with the address:\n%s", addr, code, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "kiln.db")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("-addr %s: the SQLite file was created before the listen address was checked (%v)", addr, err)
		}
		if strings.Contains(errOut, "migration applied") {
			t.Errorf("-addr %s: migrations ran:\n%s", addr, errOut)
		}
	}
}

// migrationFiles counts the example app's migrations for a dialect.
func migrationFiles(t *testing.T, dialect string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join("..", "migrations", dialect, "*.sql"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no migrations in ../migrations/%s (%v)", dialect, err)
	}
	d := dialect
	if d == "sqlite" {
		d = "sqlite3"
	}
	river, err := jobs.MigrationCount(d)
	if err != nil {
		t.Fatal(err)
	}
	return len(m) + river // the app's, then the job engine's
}

// TestCLIMigrate: migrate status lists every migration pending on a new
// database, migrate up applies them and exits, and a server started after
// has nothing left to apply; on SQLite and PostgreSQL.
func TestCLIMigrate(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, dialect string, env []string) {
		n := migrationFiles(t, dialect)
		out, errOut, code := runCLI(t, serverBin, env, "migrate", "status")
		if code != 0 || strings.Count(out, "  pending  ") != n || !strings.Contains(out, fmt.Sprintf("%d migrations: 0 applied, %d pending", n, n)) {
			t.Fatalf("status on a new database: exit %d\n%s\n%s", code, out, errOut)
		}
		out, errOut, code = runCLI(t, serverBin, env, "migrate", "up")
		if code != 0 || strings.Count(errOut, "migration applied") != n || !strings.Contains(out, fmt.Sprintf("%d applied, 0 pending", n)) {
			t.Fatalf("up: exit %d\n%s\n%s", code, out, errOut)
		}
		if strings.Contains(errOut, "kiln ready") {
			t.Fatalf("migrate up started the server:\n%s", errOut)
		}
		out, _, code = runCLI(t, serverBin, env, "migrate", "status")
		if code != 0 || strings.Count(out, "  applied  ") != n || strings.Contains(out, "  pending  ") {
			t.Fatalf("status after up: exit %d\n%s", code, out)
		}
		out, _, code = runCLI(t, serverBin, env, "migrate", "up")
		if code != 0 || !strings.Contains(out, "0 pending") {
			t.Fatalf("up again: exit %d\n%s", code, out)
		}
		s := kilntest.Start(t, serverBin, env...)
		if strings.Contains(s.Logs(), "migration applied") {
			t.Errorf("the server applied migrations after migrate up:\n%s", s.Logs())
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		check(t, "sqlite", []string{"KILN_DATA_DIR=" + t.TempDir()})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		check(t, "postgres", []string{"KILN_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + kilntest.PostgresURL(t)})
	})
}

// proc is a server process whose log a test watches while it starts.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan struct{}
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(serverBin, args...), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "KILN_LOG_LEVEL=info", "REDIS_URL="), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if t.Failed() {
			t.Logf("server log:\n%s", p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// waitLog waits until the log holds text n times (failing if the process
// exits first; the deadline only guards against a hang).
func (p *proc) waitLog(t *testing.T, text string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for strings.Count(p.log(), text) < n {
		select {
		case <-p.done:
			t.Fatalf("the server exited before logging %q %d times:\n%s", text, n, p.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q (%d times) in the log after 3 minutes:\n%s", text, n, p.log())
		}
	}
}

// url is the server's address once it logged "kiln ready".
func (p *proc) url(t *testing.T) string {
	t.Helper()
	p.waitLog(t, "kiln ready", 1)
	_, rest, _ := strings.Cut(p.log(), "kiln ready")
	_, addr, _ := strings.Cut(rest, "addr=")
	addr, _, _ = strings.Cut(addr, " ")
	return "http://" + addr
}

// TestCLIPostgresRetry starts the server against a PostgreSQL that is not
// up yet: first nothing listens (connection refused), then the server
// answers "the database system is starting up" (SQLSTATE 57P03) twice,
// then it is there (a proxy to the test PostgreSQL). The server retries
// through both and becomes ready. Bounded by attempts: the proxy moves on
// when the server's log shows it retried.
func TestCLIPostgresRetry(t *testing.T) {
	t.Parallel()
	u, err := neturl.Parse(kilntest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	// A free port where PostgreSQL "will be".
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = l.Addr().String()
	l.Close()
	p := startProc(t, []string{"KILN_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + u.String(), "KILN_DB_CONNECT_TIMEOUT=30m"},
		"-addr", "127.0.0.1:0")
	p.waitLog(t, "PostgreSQL is not ready; retrying", 2)
	if !strings.Contains(p.log(), "connection refused") {
		t.Fatalf("the first attempts did not meet a refused connection:\n%s", p.log())
	}

	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatalf("listen again on %s: %v", u.Host, err)
	}
	t.Cleanup(func() { ln.Close() })
	go fakeStartingPostgres(ln, target, 2)
	p.waitLog(t, "SQLSTATE 57P03", 2)
	base := p.url(t)
	if !strings.Contains(p.log(), "connected to PostgreSQL") {
		t.Errorf("no log of the connection after retries:\n%s", p.log())
	}
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/readyz: %d", res.StatusCode)
	}
}

// fakeStartingPostgres answers the first starting connections as a
// PostgreSQL that is starting up, and forwards the next ones to target.
func fakeStartingPostgres(ln net.Listener, target string, starting int) {
	for n := 0; ; n++ {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if n < starting {
			go startingUp(c)
			continue
		}
		go forward(c, target)
	}
}

// startingUp reads a client's startup message (declining TLS) and answers
// FATAL 57P03, as PostgreSQL does while it starts.
func startingUp(c net.Conn) {
	defer c.Close()
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		size, code := binary.BigEndian.Uint32(hdr[:4]), binary.BigEndian.Uint32(hdr[4:])
		if code == 80877103 || code == 80877104 { // SSLRequest, GSSENCRequest
			if _, err := c.Write([]byte("N")); err != nil {
				return
			}
			continue
		}
		if _, err := io.CopyN(io.Discard, c, int64(size)-8); err != nil {
			return
		}
		break
	}
	var fields []byte
	for _, f := range []struct {
		typ byte
		val string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', "57P03"}, {'M', "the database system is starting up"}} {
		fields = append(append(append(fields, f.typ), f.val...), 0)
	}
	fields = append(fields, 0)
	msg := binary.BigEndian.AppendUint32([]byte{'E'}, uint32(len(fields)+4))
	_, _ = c.Write(append(msg, fields...))
}

func forward(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

// TestCLIPostgresFailsAtOnce: what waiting cannot fix (a database that
// does not exist) fails without a retry, saying what to do.
func TestCLIPostgresFailsAtOnce(t *testing.T) {
	t.Parallel()
	u, err := neturl.Parse(kilntest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/kiln_no_such_database"
	_, errOut, code := runCLI(t, serverBin, []string{"KILN_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + u.String(),
		"KILN_DB_CONNECT_TIMEOUT=30m"}, "-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, `database "kiln_no_such_database" does not exist`) ||
		!strings.Contains(errOut, "fix its name in DATABASE_URL") || strings.Contains(errOut, "retrying") {
		t.Fatalf("exit %d, want 1 at once with what to do:\n%s", code, errOut)
	}
}

// requirePermissions skips a test when this process ignores file
// permissions (root, or a user with CAP_DAC_OVERRIDE): it could write to a
// read-only directory anyway.
func requirePermissions(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	f, err := os.Create(filepath.Join(dir, "probe"))
	if err == nil {
		f.Close()
		t.Skipf("skipped: file permissions are not enforced for this process (uid %d; root ignores them): "+
			"run the tests as a non-root user, or as root without CAP_DAC_OVERRIDE "+
			"(capsh --drop=cap_dac_override,cap_dac_read_search -- -c 'go test ./server -run ReadOnly')", os.Geteuid())
	}
}

// TestCLIReadOnlyDataDir: a data directory or SQLite file that is not
// writable is reported as such at start.
func TestCLIReadOnlyDataDir(t *testing.T) {
	requirePermissions(t)
	t.Parallel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	for _, args := range [][]string{{"-addr", "127.0.0.1:0"}, {"migrate", "up"}} {
		_, errOut, code := runCLI(t, serverBin, []string{"KILN_DATA_DIR=" + dir}, args...)
		if want := "data directory " + dir + " is not writable: permission denied"; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, want 1 with %q:\n%s", args, code, want, errOut)
		}
	}

	dir = t.TempDir()
	db := filepath.Join(dir, "kiln.db")
	if err := os.WriteFile(db, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, serverBin, []string{"KILN_DATA_DIR=" + dir}, "-addr", "127.0.0.1:0")
	if want := "database file " + db + " is not writable: permission denied"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, want 1 with %q:\n%s", code, want, errOut)
	}
}

// getReadyz returns /readyz's status and body.
func getReadyz(t *testing.T, base string) (int, string) {
	t.Helper()
	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// waitReadyz polls /readyz until it answers status with body (any body
// when ""; the deadline only guards against a hang).
func waitReadyz(t *testing.T, base string, status int, body string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, b := getReadyz(t, base)
		if code == status && (body == "" || b == body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q, want %d %q", code, b, status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReadyzSQLiteUnwritable: /readyz fails, saying why, while the SQLite
// file cannot be written, and recovers when it can.
func TestReadyzSQLiteUnwritable(t *testing.T) {
	requirePermissions(t)
	t.Parallel()
	dir := t.TempDir()
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+dir)
	if code, body := getReadyz(t, s.URL); code != 200 {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	db := filepath.Join(dir, "kiln.db")
	if err := os.Chmod(db, 0o400); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(db, 0o600) })
	waitReadyz(t, s.URL, http.StatusServiceUnavailable, "database file "+db+" is not writable: permission denied")
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, s.URL, http.StatusOK, "ready")
}

// TestReadyzPostgresReadOnly: /readyz fails while PostgreSQL takes no
// writes (default_transaction_read_only, as on a standby) and recovers.
func TestReadyzPostgresReadOnly(t *testing.T) {
	t.Parallel()
	url := kilntest.PostgresURL(t)
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "DATABASE_URL="+url)
	if code, body := getReadyz(t, s.URL); code != 200 {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	admin, err := sql.Open("pgx", os.Getenv("KILN_TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, _ := neturl.Parse(url)
	name := strings.TrimPrefix(u.Path, "/")
	// New sessions of the database are read-only; end the server's current
	// ones so that its pool reconnects.
	setReadOnly := func(on string) {
		t.Helper()
		if _, err := admin.Exec(fmt.Sprintf("ALTER DATABASE %s SET default_transaction_read_only = %s", name, on)); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
			t.Fatal(err)
		}
	}
	setReadOnly("on")
	t.Cleanup(func() {
		_, _ = admin.Exec(fmt.Sprintf("ALTER DATABASE %s SET default_transaction_read_only = off", name))
	})
	waitReadyz(t, s.URL, http.StatusServiceUnavailable, "database is read-only (transaction_read_only is on)")
	setReadOnly("off")
	waitReadyz(t, s.URL, http.StatusOK, "ready")
}
