package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver

	"kiln/ent"
	"kiln/ent/file"
	"kiln/server/internal/blob"
	"kiln/server/internal/blob/disk"
	"kiln/server/kilntest"
)

// storeOf opens the server's object store directly (the bucket, or the
// local files directory), to write objects around the tickets.
func storeOf(fe fileEnv) blob.Store {
	if fe.s3 != nil {
		return fe.s3
	}
	return disk.New(filepath.Join(fe.dataDir, "files"), "http://unused.invalid", []byte("unused"))
}

// dbOf opens the server's database directly, to write rows the API cannot
// (files stored by an older version).
func dbOf(t *testing.T, fe fileEnv) *ent.Client {
	t.Helper()
	name, dsn, dia := "sqlite", "file:"+filepath.Join(fe.dataDir, "kiln.db")+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)", dialect.SQLite
	if fe.dbURL != "" {
		name, dsn, dia = "pgx", fe.dbURL, dialect.Postgres
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dia, db)))
	t.Cleanup(func() { c.Close() })
	return c
}

func completeUpload(t *testing.T, s *kilntest.Server, token, id string) (fileOut, *kilntest.Response) {
	t.Helper()
	r := s.DoAs(t, token, `mutation($id: ID!) { completeUpload(fileId: $id) { `+fileFieldsQ+` } }`, map[string]any{"id": id})
	var out struct{ CompleteUpload fileOut }
	if len(r.Errors) == 0 {
		r.Decode(t, &out)
	}
	return out.CompleteUpload, r
}

// TestFileImmutableAfterComplete: once completeUpload accepted a file, the
// ticket's URL no longer changes what downloads return (disk: the URL is
// void; S3, where a signed URL cannot be revoked: the bytes land in a
// staging object nothing is served from, which the janitor removes), and
// File.sha256, computed by the server when the client declared none,
// describes the bytes served. A declared sha256 that the bytes do not match
// is refused.
func TestFileImmutableAfterComplete(t *testing.T) {
	fileBackends(t, []string{"KILN_FILES_JANITOR_INTERVAL=200ms"}, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		ctx := context.Background()
		alice := signUp(t, s, "alice@example.com")
		pid := myProfile(t, s, alice.AccessToken, "alice")
		orig, evil := randomBytes(3000), randomBytes(3000)

		// No sha256 declared: the server computes it.
		tk, r := createUpload(t, s, alice.AccessToken, "a.png", "image/png", len(orig), "")
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if code := put(t, tk, orig); code/100 != 2 {
			t.Fatalf("PUT: %d", code)
		}
		f, r := completeUpload(t, s, alice.AccessToken, tk.FileID)
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if f.Sha256 == nil || *f.Sha256 != hexSHA(orig) {
			t.Fatalf("File.sha256 = %v, want the sha256 of the uploaded bytes %s", f.Sha256, hexSHA(orig))
		}
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`,
			map[string]any{"p": pid, "f": f.ID}, nil)

		// served checks, through node and through the avatar, that fresh
		// download URLs return the original bytes and sha256 describes them.
		served := func(when string) {
			t.Helper()
			var out struct {
				Node    fileOut
				Profile struct{ Avatar fileOut }
			}
			s.MustDoAs(t, alice.AccessToken, `query($id: ID!, $p: ID!) { node(id: $id) { ... on File { `+fileFieldsQ+` } } profile(id: $p) { avatar { `+fileFieldsQ+` } } }`,
				map[string]any{"id": f.ID, "p": pid}, &out)
			for _, g := range []fileOut{out.Node, out.Profile.Avatar} {
				if g.Sha256 == nil || *g.Sha256 != hexSHA(orig) {
					t.Fatalf("%s: File.sha256 = %v, want %s", when, g.Sha256, hexSHA(orig))
				}
				code, got := download(t, g.URL)
				if code != http.StatusOK || !bytes.Equal(got, orig) {
					t.Fatalf("%s: download: status %d, the original bytes: %v (the bytes sent later: %v)", when, code, bytes.Equal(got, orig), bytes.Equal(got, evil))
				}
			}
		}
		served("after completeUpload")

		// The same URL again, with other bytes of the same size and type.
		code, _, body := putFull(t, tk, evil)
		t.Logf("%s: PUT to the upload URL after completeUpload: %d %s", fe.name, code, bytes.TrimSpace(body))
		if fe.s3 == nil {
			var e struct {
				Errors []struct{ Extensions map[string]any }
			}
			if code != http.StatusGone || json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 || e.Errors[0].Extensions["code"] != "UPLOAD_CLOSED" {
				t.Fatalf("disk: PUT to a completed file's upload URL: %d %s; want 410 UPLOAD_CLOSED", code, body)
			}
		}
		served("after a second PUT")
		again, r := completeUpload(t, s, alice.AccessToken, tk.FileID)
		if len(r.Errors) > 0 || again.Sha256 == nil || *again.Sha256 != hexSHA(orig) {
			t.Fatalf("completeUpload again: %+v %+v", again, r.Errors)
		}
		served("after completeUpload again")
		if fe.s3 != nil {
			// The bytes sent after completion are removed by the janitor.
			key, gone := keyOf(tk.URL), false
			for range 150 {
				if _, err := fe.s3.Stat(ctx, key); err != nil {
					gone = true
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !gone {
				t.Fatalf("the object sent to %s after completion was not removed", key)
			}
			served("after the janitor")
		}

		// A declared sha256: bytes that do not match it are refused, by the
		// storage at upload, and by completeUpload when they were written
		// around the ticket.
		good, bad := randomBytes(2000), randomBytes(2000)
		tk2, r := createUpload(t, s, alice.AccessToken, "b.png", "image/png", len(good), hexSHA(good))
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if code := put(t, tk2, bad); code/100 == 2 {
			t.Fatalf("bytes that do not match the declared sha256 were accepted (%d)", code)
		}
		st, key2 := storeOf(fe), keyOf(tk2.URL)
		if err := st.Put(ctx, key2, bytes.NewReader(bad), int64(len(bad)), "image/png"); err != nil {
			t.Fatal(err)
		}
		_, r = completeUpload(t, s, alice.AccessToken, tk2.FileID)
		wantFileError(t, r, "BAD_USER_INPUT", "fileId", "UPLOAD_MISMATCH")
		if _, err := st.Stat(ctx, key2); err == nil {
			t.Fatal("the mismatched object was not deleted")
		}
		// The ticket still takes the right bytes.
		if code := put(t, tk2, good); code/100 != 2 {
			t.Fatalf("PUT of the right bytes: %d", code)
		}
		f2, r := completeUpload(t, s, alice.AccessToken, tk2.FileID)
		if len(r.Errors) > 0 || f2.Sha256 == nil || *f2.Sha256 != hexSHA(good) {
			t.Fatalf("completeUpload: %+v %+v", f2, r.Errors)
		}
		mustDownload(t, f2.URL, good)
	})
}

// TestFileStoredBeforeStaging: files of an older version, whose tickets
// uploaded straight to the key they are served from (files/<id>), keep
// working: a completed one is served and attached, a pending one completes.
func TestFileStoredBeforeStaging(t *testing.T) {
	fileBackends(t, nil, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		ctx := context.Background()
		alice := signUp(t, s, "alice@example.com")
		pid := myProfile(t, s, alice.AccessToken, "alice")
		uid := uuid.MustParse(alice.User.ID)
		db, st := dbOf(t, fe), storeOf(fe)
		now := time.Now()

		stored := func(name string, body []byte) string {
			key := "files/" + uuid.NewString()
			if err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), "image/png"); err != nil {
				t.Fatal(err)
			}
			return key
		}
		done, pending := randomBytes(1500), randomBytes(1200)
		f1, err := db.File.Create().SetKey(stored("done", done)).SetFilename("done.png").SetContentType("image/png").SetSize(len(done)).
			SetSha256(hexSHA(done)).SetStatus(file.StatusReady).SetUploaderID(uid).SetExpiresAt(now.Add(-time.Hour)).SetActiveAt(now).Save(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f2, err := db.File.Create().SetKey(stored("pending", pending)).SetFilename("pending.png").SetContentType("image/png").SetSize(len(pending)).
			SetStatus(file.StatusPending).SetUploaderID(uid).SetExpiresAt(now.Add(10 * time.Minute)).SetActiveAt(now).Save(ctx)
		if err != nil {
			t.Fatal(err)
		}

		var n struct{ Node fileOut }
		s.MustDoAs(t, alice.AccessToken, `query($id: ID!) { node(id: $id) { ... on File { `+fileFieldsQ+` } } }`, map[string]any{"id": f1.ID}, &n)
		mustDownload(t, n.Node.URL, done)
		var up struct{ UpdateProfile struct{ Avatar fileOut } }
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { avatar { `+fileFieldsQ+` } } }`,
			map[string]any{"p": pid, "f": f1.ID}, &up)
		mustDownload(t, up.UpdateProfile.Avatar.URL, done)

		g, r := completeUpload(t, s, alice.AccessToken, f2.ID.String())
		if len(r.Errors) > 0 || g.Sha256 == nil || *g.Sha256 != hexSHA(pending) {
			t.Fatalf("completeUpload of a file staged by an older version: %+v %+v", g, r.Errors)
		}
		mustDownload(t, g.URL, pending)
	})
}

// wantQuota checks a QUOTA_EXCEEDED error and its extensions.
func wantQuota(t *testing.T, r *kilntest.Response, quota string, limit, used, requested int) {
	t.Helper()
	b, _ := json.Marshal(r.Errors)
	if len(r.Errors) != 1 {
		t.Fatalf("want one QUOTA_EXCEEDED error, got %s", b)
	}
	e := r.Errors[0].Extensions
	if e["code"] != "QUOTA_EXCEEDED" || e["quota"] != quota || e["limit"] != float64(limit) || e["used"] != float64(used) || e["requested"] != float64(requested) {
		t.Fatalf("want QUOTA_EXCEEDED %s limit %d used %d requested %d, got %s", quota, limit, used, requested, b)
	}
}

// TestUploadQuotas: per user, the bytes of uploads in progress and of all
// files are bounded (smaller bounds for anonymous accounts), at
// createUpload and uploadFile, also under concurrent requests.
func TestUploadQuotas(t *testing.T) {
	env := []string{"KILN_UPLOAD_QUOTA_PENDING=3000", "KILN_STORAGE_QUOTA=4500", "KILN_ANON_UPLOAD_QUOTA_PENDING=1500",
		"KILN_ANON_STORAGE_QUOTA=2000B", "KILN_UPLOAD_RATE_PER_USER=inf", "KILN_UPLOAD_RATE_PER_IP=inf"}
	fileBackendsOn(t, []string{"disk"}, env, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		newTicket := func(token string, size int) (ticket, *kilntest.Response) {
			t.Helper()
			return createUpload(t, s, token, "f.png", "image/png", size, "")
		}
		finish := func(token string, tk ticket, size int) {
			t.Helper()
			if code := put(t, tk, randomBytes(size)); code/100 != 2 {
				t.Fatalf("PUT: %d", code)
			}
			if _, r := completeUpload(t, s, token, tk.FileID); len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
		}
		a1, r := newTicket(alice.AccessToken, 2000)
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		_, r = newTicket(alice.AccessToken, 1500)
		wantQuota(t, r, "pending", 3000, 2000, 1500)
		finish(alice.AccessToken, a1, 2000)         // pending 0, stored 2000
		a2, r := newTicket(alice.AccessToken, 2500) // pending 2500, total 4500: exactly the quota
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		_, r = newTicket(alice.AccessToken, 600)
		wantQuota(t, r, "pending", 3000, 2500, 600)
		_, r = newTicket(alice.AccessToken, 100)
		wantQuota(t, r, "storage", 4500, 4500, 100)
		_, mr := multipartUpload(t, s, alice.AccessToken, "m.png", "image/png", randomBytes(100))
		wantQuota(t, mr, "storage", 4500, 4500, 100)
		finish(alice.AccessToken, a2, 2500) // pending 0, stored 4500
		_, mr = multipartUpload(t, s, alice.AccessToken, "m.png", "image/png", randomBytes(1))
		wantQuota(t, mr, "storage", 4500, 4500, 1)

		// Concurrent tickets never take a user over the quota; refused
		// ones do not count afterwards.
		bob := signUp(t, s, "bob@example.com")
		const n = 10
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, refused := 0, 0
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := s.DoAs(t, bob.AccessToken, `mutation { createUpload(input: {filename: "c.png", contentType: "image/png", size: 1000}) { fileId } }`, nil)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case len(r.Errors) == 0:
					ok++
				case r.Code() == "QUOTA_EXCEEDED":
					refused++
				default:
					t.Errorf("concurrent createUpload: %+v", r.Errors)
				}
			}()
		}
		wg.Wait()
		t.Logf("%d concurrent tickets of 1000 bytes with a 3000-byte quota: %d accepted, %d refused", n, ok, refused)
		if ok > 3 || ok+refused != n {
			t.Fatalf("%d accepted, %d refused: the quota allows 3", ok, refused)
		}
		for ok < 3 {
			if _, r := newTicket(bob.AccessToken, 1000); len(r.Errors) > 0 {
				t.Fatalf("ticket %d of 3 after the concurrent ones: %+v", ok+1, r.Errors)
			}
			ok++
		}
		_, r = newTicket(bob.AccessToken, 1000)
		wantQuota(t, r, "pending", 3000, 3000, 1000)

		// Anonymous accounts have their own, smaller quotas.
		var anon struct{ SignInAnonymously struct{ AccessToken string } }
		s.MustDoAs(t, "", `mutation { signInAnonymously { accessToken } }`, nil, &anon)
		tok := anon.SignInAnonymously.AccessToken
		_, r = newTicket(tok, 1600)
		wantQuota(t, r, "pending", 1500, 0, 1600)
		an, r := newTicket(tok, 1400)
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		finish(tok, an, 1400)
		_, r = newTicket(tok, 700)
		wantQuota(t, r, "storage", 2000, 1400, 700)
		// Admins have none.
		if r := s.Do(t, `mutation { createUpload(input: {filename: "big.png", contentType: "image/png", size: 4000000}) { fileId } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("admin createUpload: %+v", r.Errors)
		}
	})
}

// TestUploadRateLimits: tickets (createUpload, uploadFile) and PUTs to
// local-disk upload URLs are rate limited per client address and per user,
// in memory and in Redis: RATE_LIMITED with retryAfter, and for PUTs 429
// with Retry-After.
func TestUploadRateLimits(t *testing.T) {
	env := []string{"KILN_UPLOAD_RATE_PER_IP=0.01", "KILN_UPLOAD_RATE_IP_BURST=5", "KILN_UPLOAD_RATE_PER_USER=0.01", "KILN_UPLOAD_RATE_USER_BURST=3"}
	run := func(t *testing.T, s *kilntest.Server) {
		alice, bob := signUp(t, s, "alice@example.com"), signUp(t, s, "bob@example.com")
		limited := func(r *kilntest.Response, what string) {
			t.Helper()
			if r.Code() != "RATE_LIMITED" {
				t.Fatalf("%s: want RATE_LIMITED, got %+v", what, r.Errors)
			}
			if ra, _ := r.Errors[0].Extensions["retryAfter"].(float64); ra < 1 {
				t.Fatalf("%s: retryAfter %v", what, r.Errors[0].Extensions["retryAfter"])
			}
		}
		newTicket := func(token string) (ticket, *kilntest.Response) {
			t.Helper()
			return createUpload(t, s, token, "f.png", "image/png", 10, "")
		}
		var tks []ticket
		for i := range 3 { // alice's burst; the address has used 3 of 5
			tk, r := newTicket(alice.AccessToken)
			if len(r.Errors) > 0 {
				t.Fatalf("ticket %d: %+v", i+1, r.Errors)
			}
			tks = append(tks, tk)
		}
		_, r := newTicket(alice.AccessToken)
		limited(r, "alice's 4th ticket (per user)")
		b1, r := newTicket(bob.AccessToken) // the address's 5th
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		_, r = newTicket(bob.AccessToken)
		limited(r, "bob's 2nd ticket (per address)")
		_, mr := multipartUpload(t, s, bob.AccessToken, "m.png", "image/png", randomBytes(10))
		limited(mr, "uploadFile (per address)")
		// Admins are not limited.
		if r := s.Do(t, `mutation { createUpload(input: {filename: "a.png", contentType: "image/png", size: 10}) { fileId } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("admin createUpload: %+v", r.Errors)
		}

		// PUTs to the upload URLs have buckets of their own.
		tooMany := func(tk ticket, what string) {
			t.Helper()
			code, h, body := putFull(t, tk, randomBytes(10))
			n, _ := strconv.Atoi(h.Get("Retry-After"))
			var e struct {
				Errors []struct{ Extensions map[string]any }
			}
			if code != http.StatusTooManyRequests || n < 1 || json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 || e.Errors[0].Extensions["code"] != "RATE_LIMITED" {
				t.Fatalf("%s: %d Retry-After %q %s; want 429 RATE_LIMITED with Retry-After", what, code, h.Get("Retry-After"), body)
			}
		}
		for i, tk := range tks { // alice's PUT burst; the address's 3 of 5
			if code := put(t, tk, randomBytes(10)); code/100 != 2 {
				t.Fatalf("PUT %d: %d", i+1, code)
			}
		}
		tooMany(tks[0], "alice's 4th PUT (per user)")
		if code := put(t, b1, randomBytes(10)); code/100 != 2 { // the address's 5th
			t.Fatalf("bob's PUT: %d", code)
		}
		tooMany(b1, "bob's 2nd PUT (per address)")
	}
	for _, dbName := range []string{"sqlite", "postgres"} {
		t.Run("memory/"+dbName, func(t *testing.T) {
			t.Parallel()
			e := append([]string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret}, env...)
			if dbName == "postgres" {
				e = append(e, "DATABASE_URL="+kilntest.PostgresURL(t))
			}
			run(t, kilntest.Start(t, serverBin, e...))
		})
	}
	t.Run("redis/sqlite", func(t *testing.T) {
		t.Parallel()
		rd := kilntest.PrivateRedis(t)
		run(t, kilntest.Start(t, serverBin, append([]string{"KILN_DATA_DIR=" + t.TempDir(), "KILN_ADMIN_SECRET=" + adminSecret, "REDIS_URL=" + rd.URL}, env...)...))
	})
}

// TestFileConcurrentComplete: completeUpload called many times at once
// while the ticket's URL keeps receiving other bytes: whichever bytes win,
// File.sha256 describes what downloads return, then and afterwards.
func TestFileConcurrentComplete(t *testing.T) {
	fileBackends(t, []string{"KILN_UPLOAD_RATE_PER_USER=inf", "KILN_UPLOAD_RATE_PER_IP=inf"}, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		for round := range 3 {
			a, b := randomBytes(4000), randomBytes(4000)
			tk, r := createUpload(t, s, alice.AccessToken, "c.png", "image/png", len(a), "")
			if len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
			if code := put(t, tk, a); code/100 != 2 {
				t.Fatalf("PUT: %d", code)
			}
			const n = 6
			var wg sync.WaitGroup
			shas := make(chan string, n)
			for i := range 2 * n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i%2 == 0 {
						body := a
						if i%4 == 0 {
							body = b
						}
						put(t, tk, body) // refused on disk once the file is complete
						return
					}
					f, r := completeUpload(t, s, alice.AccessToken, tk.FileID)
					if len(r.Errors) > 0 || f.Sha256 == nil {
						t.Errorf("completeUpload: %+v %+v", f, r.Errors)
						shas <- ""
						return
					}
					shas <- *f.Sha256
				}()
			}
			wg.Wait()
			close(shas)
			var n2 struct{ Node fileOut }
			s.MustDoAs(t, alice.AccessToken, `query($id: ID!) { node(id: $id) { ... on File { `+fileFieldsQ+` } } }`, map[string]any{"id": tk.FileID}, &n2)
			f := n2.Node
			if f.Sha256 == nil {
				t.Fatalf("round %d: no sha256", round)
			}
			for sha := range shas {
				if sha != *f.Sha256 {
					t.Fatalf("round %d: a completeUpload answered sha256 %s, the file has %s", round, sha, *f.Sha256)
				}
			}
			code, got := download(t, f.URL)
			if code != http.StatusOK || hexSHA(got) != *f.Sha256 || !bytes.Equal(got, a) && !bytes.Equal(got, b) {
				t.Fatalf("round %d: download %d, sha256 %s, file says %s", round, code, hexSHA(got), *f.Sha256)
			}
			// A later PUT changes nothing either.
			put(t, tk, randomBytes(len(a)))
			mustDownload(t, f.URL, got)
		}
	})
}
