package kilntest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a throwaway redis-server (.ci/redis.sh) for a test that stops or
// restarts it: the Redis at KILN_TEST_REDIS_URL is shared by tests of other
// packages running at the same time, so only a private one may go down.
type Redis struct {
	URL    string
	script string
	dir    string
	// port is where redis.sh starts scanning for a free port: random, so
	// that private servers of packages tested at the same time do not
	// scan from the same place. With a common start, a server that
	// another test took down for a restart freed its port, and the next
	// private server to start took it: the first test's clients then
	// reconnected to a stranger (seen as a CI flake in TestRedisRestart).
	port int
}

// PrivateRedis starts a Redis of the test's own, stopped at cleanup. Like
// the other Redis tests it skips when KILN_TEST_REDIS_URL is not set (and
// fails when KILN_REQUIRE_REDIS=1): that is how a run says Redis is there.
func PrivateRedis(t testing.TB) *Redis {
	t.Helper()
	if os.Getenv("KILN_TEST_REDIS_URL") == "" {
		if os.Getenv("KILN_REQUIRE_REDIS") == "1" {
			t.Fatal("KILN_REQUIRE_REDIS=1 but KILN_TEST_REDIS_URL is not set")
		}
		t.Skip("Redis test skipped: export KILN_TEST_REDIS_URL=$(.ci/redis.sh start)")
	}
	script, err := moduleFile(".ci/redis.sh")
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{
		script: script,
		dir:    fmt.Sprintf("/tmp/kiln-test-redis-%d-%d", os.Getpid(), time.Now().UnixNano()),
		port:   20000 + rand.IntN(10000), // below the ephemeral ports (32768+)
	}
	out, err := r.Command("start").Output()
	if err != nil {
		t.Fatalf("redis.sh start: %v", err)
	}
	t.Cleanup(func() { _ = r.Command("stop").Run() })
	r.URL = strings.TrimSpace(string(out))
	return r
}

// Command is .ci/redis.sh with args (start, restart [DOWN_SECONDS], stop)
// for this server.
func (r *Redis) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(r.script, args...)
	cmd.Env = append(os.Environ(), "KILN_REDIS_DIR="+r.dir, "KILN_REDIS_PORT="+strconv.Itoa(r.port))
	return cmd
}

// moduleFile returns the path of rel from the module root (tests run in
// their package's directory).
func moduleFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, rel), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s: no go.mod above %s", rel, dir)
		}
	}
}
