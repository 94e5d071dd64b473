package kilntest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	r := &Redis{script: script, dir: fmt.Sprintf("/tmp/kiln-test-redis-%d-%d", os.Getpid(), time.Now().UnixNano())}
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
	cmd.Env = append(os.Environ(), "KILN_REDIS_DIR="+r.dir)
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
