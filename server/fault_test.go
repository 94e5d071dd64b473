package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// TestPostgresRestart restarts the database under a running server (its
// own throwaway cluster, so other tests are not disturbed): while it is
// down, requests fail fast with UNAVAILABLE; afterwards they recover on
// their own.
func TestPostgresRestart(t *testing.T) {
	kilntest.PostgresURL(t) // skips without PostgreSQL, fails when required
	script, _ := filepath.Abs("../.ci/pg.sh")
	// Directly under /tmp: the postgres user must reach it.
	dir := fmt.Sprintf("/tmp/kiln-fault-pg-%d-%d", os.Getpid(), time.Now().UnixNano())
	pg := func(args ...string) string {
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), "KILN_PG_DIR="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pg.sh %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	url := pg("start")
	t.Cleanup(func() { pg("stop") })
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "DATABASE_URL="+url, "KILN_ADMIN_SECRET="+adminSecret)
	s.MustDo(t, `{ posts { totalCount } }`, nil, nil)

	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		cmd := exec.Command(script, "restart", "4")
		cmd.Env = append(os.Environ(), "KILN_PG_DIR="+dir)
		_ = cmd.Run()
	}()
	sawDown := false
	deadline := time.Now().Add(30 * time.Second)
	for {
		start := time.Now()
		r := s.Do(t, `{ posts { totalCount } }`, nil)
		took := time.Since(start)
		if len(r.Errors) > 0 {
			if r.Code() != "UNAVAILABLE" {
				t.Fatalf("while down: want UNAVAILABLE, got %+v", r.Errors)
			}
			if took > 5*time.Second {
				t.Fatalf("a request took %s to fail while the database was down", took)
			}
			sawDown = true
		} else if sawDown {
			select {
			case <-restarted:
				t.Logf("recovered after the restart")
				return
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 30s (saw the outage: %v)", sawDown)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
