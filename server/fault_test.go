package server

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// A random first port, as in kilntest.PrivateRedis: a server that
	// starts elsewhere while this one is down must not take its port.
	port := "KILN_PG_PORT=" + strconv.Itoa(20000+rand.IntN(10000))
	pg := func(args ...string) string {
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), "KILN_PG_DIR="+dir, port)
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
		cmd.Env = append(os.Environ(), "KILN_PG_DIR="+dir, port)
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

// TestPoolSaturated fills the PostgreSQL pool with requests stuck behind a
// table lock: the next request fails with UNAVAILABLE within the acquire
// timeout instead of hanging, and everything recovers once the lock goes.
func TestPoolSaturated(t *testing.T) {
	url := kilntest.PostgresURL(t)
	const timeout = 500 * time.Millisecond
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "DATABASE_URL="+url,
		"KILN_ADMIN_SECRET="+adminSecret, "KILN_DB_MAX_CONNS=2", "KILN_DB_ACQUIRE_TIMEOUT="+timeout.String())
	s.MustDo(t, `{ posts { totalCount } }`, nil, nil)

	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE posts IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	// Two requests take both pooled connections and wait for the lock.
	stuck := make(chan *kilntest.Response, 2)
	for range 2 {
		go func() { stuck <- s.Do(t, `{ posts { totalCount } }`, nil) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests waiting for the lock after 10s", waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	r := s.Do(t, `{ posts { totalCount } }`, nil)
	took := time.Since(start)
	if r.Code() != "UNAVAILABLE" {
		t.Fatalf("with the pool saturated: want UNAVAILABLE, got %+v (data %s)", r.Errors, r.Data)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Fatalf("the request failed after %s; want about the acquire timeout (%s)", took, timeout)
	}
	if msg := r.Errors[0].Message; !strings.Contains(msg, "busy") {
		t.Errorf("message %q does not say the server is busy", msg)
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case r := <-stuck:
			if len(r.Errors) > 0 {
				t.Errorf("a request queued behind the lock failed: %+v", r.Errors)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("requests queued behind the lock did not finish after it was released")
		}
	}
	s.MustDo(t, `{ posts { totalCount } }`, nil, nil)
}
