package server

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"kiln/server/kilntest"
)

// TestPushFanOut10k measures one admin call notifying 10,000 devices
// (5,000 iOS, 5,000 Android) on PostgreSQL: the time until the fake
// services received them all, and the server's resident memory sampled
// during it. It checks only that every device got the notification once;
// the figures are logged. A measurement, so off by default: run it with
// KILN_PUSH_BENCH=1 and KILN_TEST_POSTGRES_URL set.
func TestPushFanOut10k(t *testing.T) {
	if os.Getenv("KILN_PUSH_BENCH") == "" || os.Getenv("KILN_TEST_POSTGRES_URL") == "" {
		t.Skip("a measurement, not a check: run with KILN_PUSH_BENCH=1 and KILN_TEST_POSTGRES_URL set")
	}
	const devices = 10000
	apns, fcm := kilntest.StartFakeAPNs(t), kilntest.StartFakeFCM(t)
	dir := t.TempDir()
	key, creds := filepath.Join(dir, "AuthKey.p8"), filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(key, apns.KeyP8, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, fcm.ServiceAccount, 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := kilntest.PostgresURL(t)
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret, "DATABASE_URL="+dbURL,
		"KILN_PUSH_APNS_KEY_FILE="+key, "KILN_PUSH_APNS_KEY_ID="+apns.KeyID, "KILN_PUSH_APNS_TEAM_ID="+apns.TeamID,
		"KILN_PUSH_APNS_ENDPOINT="+apns.URL, "KILN_PUSH_FCM_CREDENTIALS_FILE="+creds, "KILN_PUSH_FCM_ENDPOINT="+fcm.URL,
		"KILN_PUSH_CA_FILE="+apns.CAFile(t), "KILN_JOBS_POLL_INTERVAL=20ms")
	u := signUp(t, s, "many@bench.example")

	// The devices, written straight into kiln_devices.
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for b := 0; b < devices; b += 1000 {
		var rows []string
		var args []any
		for i := b; i < b+1000; i++ {
			p := "ios"
			if i%2 == 1 {
				p = "android"
			}
			n := len(args)
			rows = append(rows, fmt.Sprintf("($%d, now(), now(), $%d, $%d, $%d, 'com.example.app', '', '[]')", n+1, n+2, n+3, n+4))
			args = append(args, uuid.New(), u.User.ID, p, fmt.Sprintf("tok-%05d", i))
		}
		if _, err := db.Exec(`INSERT INTO kiln_devices (id, created_at, updated_at, user_id, platform, token, app_id, locale, topics) VALUES `+strings.Join(rows, ","), args...); err != nil {
			t.Fatal(err)
		}
	}

	rss0 := s.Metric(t, "process_resident_memory_bytes")
	start := time.Now()
	if n := sendTo(t, s, "fan out", u.User.ID); n != devices {
		t.Fatalf("queued for %d devices, want %d", n, devices)
	}
	queued := time.Since(start)
	peak := rss0
	for i := 0; len(apns.Accepted())+len(fcm.Accepted()) < devices; i++ {
		if i == 6000 {
			t.Fatalf("after 6000 looks: %d of %d delivered", len(apns.Accepted())+len(fcm.Accepted()), devices)
		}
		peak = max(peak, s.Metric(t, "process_resident_memory_bytes"))
		time.Sleep(50 * time.Millisecond)
	}
	all := time.Since(start)
	seen := map[string]int{}
	for _, r := range append(apns.Accepted(), fcm.Accepted()...) {
		seen[r.Token]++
	}
	if len(seen) != devices {
		t.Errorf("%d distinct devices notified, want %d", len(seen), devices)
	}
	t.Logf("%d devices: sendNotification answered in %v, all received after %v (%.0f/s); server RSS %.0f MiB before, peak %.0f MiB sampled during",
		devices, queued.Round(time.Millisecond), all.Round(time.Millisecond), devices/all.Seconds(), rss0/(1<<20), peak/(1<<20))
}
