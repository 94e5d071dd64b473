package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"kiln/server/internal/blob/s3"
	"kiln/server/kilntest"
)

// fileEnv is how one file-storage backend is configured for a server.
type fileEnv struct {
	name string
	env  []string
	// s3 reaches the bucket directly (S3 only), to tamper with objects.
	s3     *s3.Store
	bucket string
	// dataDir is the server's KILN_DATA_DIR, dbURL its DATABASE_URL ("" for
	// SQLite in dataDir).
	dataDir, dbURL string
}

// s3Env returns the settings for a fresh bucket on the test S3 server, or
// skips (fails with KILN_REQUIRE_S3=1) when there is none.
func s3Env(t *testing.T) fileEnv {
	t.Helper()
	endpoint, ak, sk := os.Getenv("KILN_TEST_S3_ENDPOINT"), os.Getenv("KILN_TEST_S3_ACCESS_KEY"), os.Getenv("KILN_TEST_S3_SECRET_KEY")
	if endpoint == "" || ak == "" || sk == "" {
		const msg = "no S3 server: set KILN_TEST_S3_ENDPOINT, KILN_TEST_S3_ACCESS_KEY and KILN_TEST_S3_SECRET_KEY, e.g. with `eval $(.ci/s3.sh start)`"
		if os.Getenv("KILN_REQUIRE_S3") == "1" {
			t.Fatal(msg + " (KILN_REQUIRE_S3=1)")
		}
		t.Skip(msg)
	}
	b := make([]byte, 6)
	rand.Read(b)
	bucket := "kiln-files-" + hex.EncodeToString(b)
	st, err := s3.New(context.Background(), s3.Config{Endpoint: endpoint, AccessKey: ak, SecretKey: sk, Bucket: bucket, PathStyle: true})
	if err != nil {
		t.Fatalf("s3: %v", err)
	}
	return fileEnv{name: "s3", s3: st, bucket: bucket, env: []string{"KILN_S3_BUCKET=" + bucket, "KILN_S3_ENDPOINT=" + endpoint,
		"KILN_S3_ACCESS_KEY=" + ak, "KILN_S3_SECRET_KEY=" + sk, "KILN_S3_PATH_STYLE=true"}}
}

// fileBackends runs fn on a fresh server for each storage backend (local
// disk, S3) and database (SQLite, PostgreSQL), with extra settings.
func fileBackends(t *testing.T, extra []string, fn func(t *testing.T, s *kilntest.Server, fe fileEnv)) {
	fileBackendsOn(t, []string{"disk", "s3"}, extra, fn)
}

// fileBackendsOn is fileBackends on the given storage backends only.
func fileBackendsOn(t *testing.T, stores []string, extra []string, fn func(t *testing.T, s *kilntest.Server, fe fileEnv)) {
	for _, store := range stores {
		for _, dbName := range []string{"sqlite", "postgres"} {
			t.Run(store+"/"+dbName, func(t *testing.T) {
				t.Parallel()
				fe := fileEnv{name: "disk"}
				if store == "s3" {
					fe = s3Env(t)
				}
				fe.dataDir = t.TempDir()
				env := append([]string{"KILN_DATA_DIR=" + fe.dataDir, "KILN_ADMIN_SECRET=" + adminSecret}, fe.env...)
				if dbName == "postgres" {
					fe.dbURL = kilntest.PostgresURL(t)
					env = append(env, "DATABASE_URL="+fe.dbURL)
				}
				fn(t, kilntest.Start(t, serverBin, append(env, extra...)...), fe)
			})
		}
	}
}

type ticket struct {
	FileID, URL, Method, ExpiresAt string
	Headers                        []struct{ Name, Value string }
}

type fileOut struct {
	ID, Filename, ContentType, URL string
	Size                           int
	Sha256                         *string
}

const fileFieldsQ = `id filename contentType size sha256 url`

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func createUpload(t *testing.T, s *kilntest.Server, token, name, ct string, size int, sha string) (ticket, *kilntest.Response) {
	t.Helper()
	in := map[string]any{"filename": name, "contentType": ct, "size": size}
	if sha != "" {
		in["sha256"] = sha
	}
	r := s.DoAs(t, token, `mutation($in: CreateUploadInput!) { createUpload(input: $in) { fileId url method expiresAt headers { name value } } }`, map[string]any{"in": in})
	var out struct{ CreateUpload ticket }
	if len(r.Errors) == 0 {
		r.Decode(t, &out)
	}
	return out.CreateUpload, r
}

// put sends body to the ticket's URL the way a mobile app does: a plain
// HTTP client, the ticket's method and exactly its headers.
func put(t *testing.T, tk ticket, body []byte) int {
	t.Helper()
	code, _, _ := putFull(t, tk, body)
	return code
}

// putFull is put, also returning the answer's headers and body.
func putFull(t *testing.T, tk ticket, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(tk.Method, tk.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range tk.Headers {
		if strings.EqualFold(h.Name, "Content-Length") {
			n, _ := strconv.ParseInt(h.Value, 10, 64)
			req.ContentLength = n // net/http sends the header from this field
			continue
		}
		req.Header.Set(h.Name, h.Value)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode, res.Header, b
}

// upload runs the whole ticket flow and returns the completed file.
func upload(t *testing.T, s *kilntest.Server, token, name, ct string, body []byte) fileOut {
	t.Helper()
	tk, r := createUpload(t, s, token, name, ct, len(body), hexSHA(body))
	if len(r.Errors) > 0 {
		t.Fatalf("createUpload: %+v", r.Errors)
	}
	if code := put(t, tk, body); code/100 != 2 {
		t.Fatalf("PUT to the ticket's url: status %d", code)
	}
	var out struct{ CompleteUpload fileOut }
	s.MustDoAs(t, token, `mutation($id: ID!) { completeUpload(fileId: $id) { `+fileFieldsQ+` } }`, map[string]any{"id": tk.FileID}, &out)
	return out.CompleteUpload
}

func download(t *testing.T, u string) (int, []byte) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func mustDownload(t *testing.T, u string, want []byte) {
	t.Helper()
	code, got := download(t, u)
	if code != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("download %s: status %d, %d bytes, want %d bytes", u, code, len(got), len(want))
	}
}

func wantFileError(t *testing.T, r *kilntest.Response, code, field, reason string) {
	t.Helper()
	if len(r.Errors) == 0 {
		t.Fatalf("want %s error, got none", code)
	}
	e := r.Errors[0].Extensions
	if e["code"] != code || field != "" && e["field"] != field || reason != "" && e["reason"] != reason {
		b, _ := json.Marshal(r.Errors)
		t.Fatalf("want code %s field %s reason %s, got %s", code, field, reason, b)
	}
}

func myProfile(t *testing.T, s *kilntest.Server, token, handle string) string {
	t.Helper()
	var out struct{ CreateProfile struct{ ID string } }
	s.MustDoAs(t, token, `mutation($h: String!) { createProfile(input: {handle: $h, displayName: "T"}) { id } }`, map[string]any{"h": handle}, &out)
	return out.CreateProfile.ID
}

// TestFiles runs the upload, attach, download and refusal paths on both
// storage backends and both databases.
func TestFiles(t *testing.T) {
	fileBackends(t, nil, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		bob := signUp(t, s, "bob@example.com")
		aliceProfile := myProfile(t, s, alice.AccessToken, "alice")
		bobProfile := myProfile(t, s, bob.AccessToken, "bob")

		// Direct upload; the uploader may download it before attaching.
		img := randomBytes(200_000)
		f := upload(t, s, alice.AccessToken, "photo.png", "image/png", img)
		if f.Size != len(img) || f.ContentType != "image/png" || f.Sha256 == nil || *f.Sha256 != hexSHA(img) || f.Filename != "photo.png" {
			t.Fatalf("completed file: %+v", f)
		}
		mustDownload(t, f.URL, img)
		var again struct{ CompleteUpload struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": f.ID}, &again)

		// Another user: no url, no node, cannot complete or attach it.
		r := s.DoAs(t, bob.AccessToken, `query($id: ID!) { node(id: $id) { id ... on File { url } } }`, map[string]any{"id": f.ID})
		if len(r.Errors) > 0 || string(r.Data) != `{"node":null}` {
			t.Fatalf("bob node(file): %s %+v", r.Data, r.Errors)
		}
		wantFileError(t, s.DoAs(t, bob.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": f.ID}), "NOT_FOUND", "", "")
		wantFileError(t, s.DoAs(t, bob.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`,
			map[string]any{"p": bobProfile, "f": f.ID}), "NOT_FOUND", "", "")
		wantFileError(t, s.DoAs(t, "", `mutation { createUpload(input: {filename: "a.png", contentType: "image/png", size: 3}) { fileId } }`, nil), "UNAUTHENTICATED", "", "")
		wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($p: ID!) { updateProfile(id: $p, input: {avatarID: "00000000-0000-4000-8000-00000000f11e"}) { id } }`,
			map[string]any{"p": aliceProfile}), "NOT_FOUND", "", "")

		// Attach as avatar; readers of the profile get a working url.
		var up struct {
			UpdateProfile struct{ Avatar fileOut }
		}
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { avatar { `+fileFieldsQ+` } } }`,
			map[string]any{"p": aliceProfile, "f": f.ID}, &up)
		mustDownload(t, up.UpdateProfile.Avatar.URL, img)
		var bobView struct{ Profile struct{ Avatar *fileOut } }
		s.MustDoAs(t, bob.AccessToken, `query($p: ID!) { profile(id: $p) { avatar { id url(expiresIn: 60) } } }`, map[string]any{"p": aliceProfile}, &bobView)
		if bobView.Profile.Avatar == nil {
			t.Fatal("bob, who may read alice's profile, gets no avatar")
		}
		mustDownload(t, bobView.Profile.Avatar.URL, img)

		// A private post with two attachments, order kept; the image is shared with the avatar.
		vid := randomBytes(300_000)
		v := upload(t, s, alice.AccessToken, "clip.mp4", "video/mp4", vid)
		var post struct {
			CreatePost struct {
				ID          string
				Attachments []fileOut
			}
		}
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!, $fs: [ID!]) { createPost(input: {authorID: $a, body: "hi", visibility: PRIVATE, attachmentIDs: $fs}) { id attachments { `+fileFieldsQ+` } } }`,
			map[string]any{"a": aliceProfile, "fs": []string{v.ID, f.ID}}, &post)
		if a := post.CreatePost.Attachments; len(a) != 2 || a[0].ID != v.ID || a[1].ID != f.ID {
			t.Fatalf("attachments: %+v", a)
		}
		mustDownload(t, post.CreatePost.Attachments[0].URL, vid)
		// Bob cannot read the post, so he gets neither it nor the video.
		r = s.DoAs(t, bob.AccessToken, `query($id: ID!, $f: ID!) { post(id: $id) { id } node(id: $f) { id } }`, map[string]any{"id": post.CreatePost.ID, "f": v.ID})
		if len(r.Errors) > 0 || string(r.Data) != `{"post":null,"node":null}` {
			t.Fatalf("bob reads a private post's file: %s %+v", r.Data, r.Errors)
		}
		// Alice reaches it through node (she may read the post).
		var node struct{ Node *fileOut }
		s.MustDoAs(t, alice.AccessToken, `query($f: ID!) { node(id: $f) { ... on File { `+fileFieldsQ+` } } }`, map[string]any{"f": v.ID}, &node)
		if node.Node == nil || node.Node.ID != v.ID {
			t.Fatalf("alice node(file): %+v", node)
		}
		mustDownload(t, node.Node.URL, vid)
		// Update replaces the whole list, in the given order.
		var upPost struct {
			UpdatePost struct{ Attachments []struct{ ID string } }
		}
		s.MustDoAs(t, alice.AccessToken, `mutation($id: ID!, $fs: [ID!]) { updatePost(id: $id, input: {attachmentIDs: $fs}) { attachments { id } } }`,
			map[string]any{"id": post.CreatePost.ID, "fs": []string{f.ID}}, &upPost)
		if a := upPost.UpdatePost.Attachments; len(a) != 1 || a[0].ID != f.ID {
			t.Fatalf("replaced attachments: %+v", a)
		}

		// A list of posts loads the files of all of them with a fixed
		// number of statements (batched), not one query per post.
		for i := range 6 {
			s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!, $fs: [ID!], $b: String!) { createPost(input: {authorID: $a, body: $b, attachmentIDs: $fs}) { id } }`,
				map[string]any{"a": aliceProfile, "fs": []string{f.ID, v.ID}, "b": fmt.Sprint("post ", i)}, nil)
		}
		before := s.Metric(t, "kiln_sql_statements_total")
		var list struct {
			Posts struct {
				Edges []struct {
					Node struct{ Attachments []struct{ ID, URL string } }
				}
			}
		}
		s.MustDoAs(t, alice.AccessToken, `{ posts(first: 20) { edges { node { attachments { id url } } } } }`, nil, &list)
		stmts := s.Metric(t, "kiln_sql_statements_total") - before
		files := 0
		for _, e := range list.Posts.Edges {
			files += len(e.Node.Attachments)
		}
		t.Logf("7 posts with their files: %v SQL statements", stmts)
		if len(list.Posts.Edges) != 7 || files != 13 || stmts > 6 {
			t.Fatalf("%d posts, %d files, %v statements: %+v", len(list.Posts.Edges), files, stmts, list)
		}

		// Field rules: a video is not an avatar.
		wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`,
			map[string]any{"p": aliceProfile, "f": v.ID}), "VALIDATION", "avatarID", "UNSUPPORTED_CONTENT_TYPE")
		// An image over the avatar's 5MB, fine as an attachment.
		big := randomBytes(5_000_001)
		bf := upload(t, s, alice.AccessToken, "big.jpg", "image/jpeg", big)
		wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`,
			map[string]any{"p": aliceProfile, "f": bf.ID}), "VALIDATION", "avatarID", "TOO_LARGE")
		s.MustDoAs(t, alice.AccessToken, `mutation($id: ID!, $fs: [ID!]) { updatePost(id: $id, input: {attachmentIDs: $fs}) { id } }`,
			map[string]any{"id": post.CreatePost.ID, "fs": []string{f.ID, bf.ID}}, nil)
		// null detaches the avatar.
		var det struct{ UpdateProfile struct{ Avatar *fileOut } }
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!) { updateProfile(id: $p, input: {avatarID: null}) { avatar { id } } }`, map[string]any{"p": aliceProfile}, &det)
		if det.UpdateProfile.Avatar != nil {
			t.Fatal("avatar still set after null")
		}

		// Upload requests that are refused up front.
		_, r = createUpload(t, s, alice.AccessToken, "notes.txt", "text/plain", 10, "")
		wantFileError(t, r, "BAD_USER_INPUT", "contentType", "UNSUPPORTED_CONTENT_TYPE")
		_, r = createUpload(t, s, alice.AccessToken, "huge.mp4", "video/mp4", 50_000_001, "")
		wantFileError(t, r, "BAD_USER_INPUT", "size", "TOO_LARGE")
		_, r = createUpload(t, s, alice.AccessToken, "a.png", "image/png", 10, "xyz")
		wantFileError(t, r, "BAD_USER_INPUT", "sha256", "BAD_CHECKSUM")
		_, r = createUpload(t, s, alice.AccessToken, "a.png", "not a type", 10, "")
		wantFileError(t, r, "BAD_USER_INPUT", "contentType", "UNSUPPORTED_CONTENT_TYPE")

		// The storage refuses bytes that do not match the ticket; nothing
		// is stored and the file cannot be completed.
		body := randomBytes(1000)
		tk, _ := createUpload(t, s, alice.AccessToken, "x.png", "image/png", len(body), hexSHA(body))
		if key := keyOf(tk.URL); strings.Contains(key, "x.png") || !strings.HasPrefix(key, "uploads/") {
			t.Fatalf("object key %q is not server-chosen", key)
		}
		other := append([]byte{}, body...)
		other[0] ^= 1
		if code := put(t, tk, other); code/100 == 2 {
			t.Fatalf("a body with another sha256 was accepted (%d)", code)
		}
		short := tk
		short.Headers = nil
		for _, h := range tk.Headers {
			if strings.EqualFold(h.Name, "Content-Type") {
				h.Value = "image/gif"
			}
			short.Headers = append(short.Headers, h)
		}
		if code := put(t, short, body); code/100 == 2 {
			t.Fatalf("another Content-Type was accepted (%d)", code)
		}
		wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.FileID}),
			"BAD_USER_INPUT", "fileId", "NOT_UPLOADED")

		// An object that differs from the declaration (written around the
		// ticket, straight into the bucket) is rejected and deleted.
		if fe.s3 != nil {
			for name, tamper := range map[string]func(key string, body []byte){
				"size": func(key string, body []byte) { s3Put(t, fe, key, body[:len(body)-1], "image/png") },
				"type": func(key string, body []byte) { s3Put(t, fe, key, body, "image/gif") },
			} {
				body := randomBytes(2000)
				tk, _ := createUpload(t, s, alice.AccessToken, name+".png", "image/png", len(body), "")
				key := keyOf(tk.URL)
				tamper(key, body)
				wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.FileID}),
					"BAD_USER_INPUT", "fileId", "UPLOAD_MISMATCH")
				if _, err := fe.s3.Stat(context.Background(), key); err == nil {
					t.Fatalf("%s mismatch: object not deleted", name)
				}
				wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.FileID}),
					"BAD_USER_INPUT", "fileId", "NOT_UPLOADED")
			}
		}

		// Multipart upload through the GraphQL endpoint (small files).
		small := randomBytes(40_000)
		res, mr := multipartUpload(t, s, alice.AccessToken, "small.png", "image/png", small)
		if res != http.StatusOK || len(mr.Errors) > 0 {
			t.Fatalf("multipart: %d %+v", res, mr.Errors)
		}
		var mf struct{ UploadFile fileOut }
		mr.Decode(t, &mf)
		if mf.UploadFile.Size != len(small) || mf.UploadFile.Sha256 == nil || *mf.UploadFile.Sha256 != hexSHA(small) {
			t.Fatalf("multipart file: %+v", mf.UploadFile)
		}
		mustDownload(t, mf.UploadFile.URL, small)
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`,
			map[string]any{"p": aliceProfile, "f": mf.UploadFile.ID}, nil)
		_, mr = multipartUpload(t, s, alice.AccessToken, "notes.txt", "text/plain", small)
		wantFileError(t, mr, "BAD_USER_INPUT", "contentType", "UNSUPPORTED_CONTENT_TYPE")
		_, mr = multipartUpload(t, s, "", "small.png", "image/png", small)
		wantFileError(t, mr, "UNAUTHENTICATED", "", "")
	})
}

// keyOf returns the object key in an upload URL (disk: /files/<key>; S3
// path style: /<bucket>/<key>).
func keyOf(raw string) string {
	u, _ := url.Parse(raw)
	p := strings.TrimPrefix(u.Path, "/")
	_, key, _ := strings.Cut(p, "/")
	return key
}

func s3Put(t *testing.T, fe fileEnv, key string, body []byte, ct string) {
	t.Helper()
	_, err := fe.s3.Client().PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(fe.bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String(ct), ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// multipartUpload sends uploadFile per the GraphQL multipart request spec.
func multipartUpload(t *testing.T, s *kilntest.Server, token, name, ct string, body []byte) (int, *kilntest.Response) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("operations", `{"query":"mutation($f: Upload!) { uploadFile(file: $f) { `+fileFieldsQ+` } }","variables":{"f":null}}`)
	w.WriteField("map", `{"0":["variables.f"]}`)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="0"; filename=%q`, name))
	h.Set("Content-Type", ct)
	pw, _ := w.CreatePart(h)
	pw.Write(body)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := &kilntest.Response{Status: res.StatusCode}
	if err := json.Unmarshal(b, r); err != nil {
		t.Fatalf("multipart response (%d) is not JSON: %s", res.StatusCode, b)
	}
	return res.StatusCode, r
}

// TestFileExpiry checks that expired upload tickets and download URLs fail.
func TestFileExpiry(t *testing.T) {
	fileBackends(t, []string{"KILN_UPLOAD_URL_TTL=1s", "KILN_FILE_URL_MAX_EXPIRY=1s", "KILN_MAX_MULTIPART_SIZE=100KB"}, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		body := randomBytes(1000)
		tk, r := createUpload(t, s, alice.AccessToken, "late.png", "image/png", len(body), "")
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		f := upload(t, s, alice.AccessToken, "ok.png", "image/png", body)
		time.Sleep(2100 * time.Millisecond)
		if code := put(t, tk, body); code/100 == 2 {
			t.Fatalf("PUT with an expired ticket: %d", code)
		}
		wantFileError(t, s.DoAs(t, alice.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.FileID}),
			"BAD_USER_INPUT", "fileId", "UPLOAD_EXPIRED")
		// url(expiresIn: 3600) is clamped to the 1s maximum.
		if code, _ := download(t, f.URL); code == http.StatusOK {
			t.Fatal("expired download URL still works")
		}
		var fresh struct{ Node struct{ URL string } }
		s.MustDoAs(t, alice.AccessToken, `query($id: ID!) { node(id: $id) { ... on File { url(expiresIn: 3600) } } }`, map[string]any{"id": f.ID}, &fresh)
		mustDownload(t, fresh.Node.URL, body)
		time.Sleep(2100 * time.Millisecond)
		if code, _ := download(t, fresh.Node.URL); code == http.StatusOK {
			t.Fatal("a URL asked for 3600s outlived the 1s maximum")
		}
		// A multipart body over KILN_MAX_MULTIPART_SIZE is refused whole.
		code, mr := multipartUpload(t, s, alice.AccessToken, "big.png", "image/png", randomBytes(200_000))
		if code != http.StatusRequestEntityTooLarge && len(mr.Errors) == 0 {
			t.Fatalf("oversized multipart: %d %+v", code, mr.Errors)
		}
	})
}

// TestFileCleanup checks the janitor: abandoned uploads and files of
// deleted or updated records are removed, files still referenced are kept.
func TestFileCleanup(t *testing.T) {
	fileBackends(t, []string{"KILN_UPLOAD_TTL=2s", "KILN_UPLOAD_URL_TTL=1s", "KILN_FILES_JANITOR_INTERVAL=200ms"}, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		pid := myProfile(t, s, alice.AccessToken, "alice")
		shared := randomBytes(1000)
		fShared := upload(t, s, alice.AccessToken, "shared.png", "image/png", shared)
		fOnly := upload(t, s, alice.AccessToken, "only.png", "image/png", pngImage(t, 80, 80))
		fReplaced := upload(t, s, alice.AccessToken, "replaced.png", "image/png", randomBytes(1000))
		fIdle := upload(t, s, alice.AccessToken, "idle.png", "image/png", randomBytes(1000))
		pending, _ := createUpload(t, s, alice.AccessToken, "pending.png", "image/png", 10, "")
		s.MustDoAs(t, alice.AccessToken, `mutation($p: ID!, $f: ID!) { updateProfile(id: $p, input: {avatarID: $f}) { id } }`, map[string]any{"p": pid, "f": fShared.ID}, nil)
		var p1, p2 struct{ CreatePost struct{ ID string } }
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!, $fs: [ID!]) { createPost(input: {authorID: $a, body: "one", attachmentIDs: $fs}) { id } }`,
			map[string]any{"a": pid, "fs": []string{fShared.ID, fOnly.ID}}, &p1)
		s.MustDoAs(t, alice.AccessToken, `mutation($a: ID!, $fs: [ID!]) { createPost(input: {authorID: $a, body: "two", attachmentIDs: $fs}) { id } }`,
			map[string]any{"a": pid, "fs": []string{fReplaced.ID}}, &p2)
		// Fresh URLs, to check later that the bytes are gone or still there.
		urls := map[string]string{}
		for _, f := range []fileOut{fShared, fOnly, fReplaced, fIdle} {
			var n struct{ Node struct{ URL string } }
			s.MustDo(t, `query($id: ID!) { node(id: $id) { ... on File { url(expiresIn: 3600) } } }`, map[string]any{"id": f.ID}, &n)
			urls[f.ID] = n.Node.URL
		}
		// A rendition of a file goes with it.
		var rn struct{ Node struct{ URL string } }
		s.MustDo(t, `query($id: ID!) { node(id: $id) { ... on File { url(transform: {width: 64, height: 64}) } } }`, map[string]any{"id": fOnly.ID}, &rn)
		if res, body := get(t, rn.Node.URL); res.StatusCode != http.StatusOK || !renditionStored(t, fe, fOnly.ID, "64x64-cover.png") {
			t.Fatalf("rendition of %s: %d %s", fOnly.ID, res.StatusCode, body)
		}
		s.MustDoAs(t, alice.AccessToken, `mutation($id: ID!) { deletePost(id: $id) }`, map[string]any{"id": p1.CreatePost.ID}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation($id: ID!) { updatePost(id: $id, input: {attachmentIDs: []}) { id } }`, map[string]any{"id": p2.CreatePost.ID}, nil)

		gone := func(id string) bool {
			var n struct{ Node *struct{ ID string } }
			s.MustDo(t, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id}, &n)
			return n.Node == nil
		}
		deadline := time.Now().Add(20 * time.Second)
		for !(gone(fOnly.ID) && gone(fReplaced.ID) && gone(fIdle.ID) && gone(pending.FileID)) {
			if time.Now().After(deadline) {
				t.Fatalf("orphans not removed: only=%v replaced=%v idle=%v pending=%v", gone(fOnly.ID), gone(fReplaced.ID), gone(fIdle.ID), gone(pending.FileID))
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, id := range []string{fOnly.ID, fReplaced.ID, fIdle.ID} {
			if code, _ := download(t, urls[id]); code == http.StatusOK {
				t.Fatalf("bytes of removed file %s still served", id)
			}
		}
		if renditionStored(t, fe, fOnly.ID, "64x64-cover.png") {
			t.Fatalf("the rendition of removed file %s is still stored", fOnly.ID)
		}
		if gone(fShared.ID) {
			t.Fatal("a file still referenced (avatar) was removed")
		}
		mustDownload(t, urls[fShared.ID], shared)
		if strings.Contains(s.Logs(), "level=WARN msg=\"file cleanup\"") {
			t.Fatalf("cleanup errors:\n%s", s.Logs())
		}
	})
}

// TestFileJanitorRace attaches files while the janitors of two instances
// (one PostgreSQL database, one bucket) sweep every 10ms with a tiny TTL:
// every attach either succeeds and the file stays, or answers NOT_FOUND
// (the janitor claimed the file first). No file is deleted under a record
// and no cleanup fails on a file the other instance removed.
func TestFileJanitorRace(t *testing.T) {
	for _, store := range []string{"disk", "s3"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			fe := fileEnv{name: "disk", env: []string{"KILN_FILES_DIR=" + t.TempDir(), "KILN_FILES_SECRET=shared-secret-0123456789abcdef"}}
			if store == "s3" {
				fe = s3Env(t)
			}
			env := append([]string{"KILN_ADMIN_SECRET=" + adminSecret, "DATABASE_URL=" + kilntest.PostgresURL(t),
				"KILN_UPLOAD_TTL=1ms", "KILN_UPLOAD_URL_TTL=2s", "KILN_FILES_JANITOR_INTERVAL=10ms"}, fe.env...)
			// One data directory: the instances share their JWT key.
			env = append(env, "KILN_DATA_DIR="+t.TempDir())
			a := kilntest.Start(t, serverBin, env...)
			b := kilntest.Start(t, serverBin, env...)
			alice := signUp(t, a, "alice@example.com")
			pid := myProfile(t, a, alice.AccessToken, "alice")
			const n = 24
			type result struct {
				id   string
				body []byte
				err  string
			}
			results := make(chan result, n)
			attempt := func(i int) result {
				body := randomBytes(500 + i)
				tk, r := createUpload(t, a, alice.AccessToken, "f.png", "image/png", len(body), "")
				if len(r.Errors) > 0 {
					return result{err: fmt.Sprint(r.Errors)}
				}
				// On a loaded machine the ticket may expire before the PUT or
				// completeUpload (then the janitor removes the upload): lost.
				if code := put(t, tk, body); code/100 != 2 {
					return result{err: "EXPIRED"}
				}
				if r := b.DoAs(t, alice.AccessToken, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.FileID}); len(r.Errors) > 0 {
					if reason := r.Errors[0].Extensions["reason"]; reason == "UPLOAD_EXPIRED" || reason == "NOT_UPLOADED" {
						return result{err: "EXPIRED"}
					}
					return result{err: r.Code()}
				}
				// Attach around the time the ticket expires and the file
				// becomes removable, through either instance.
				time.Sleep(time.Duration(i*100) * time.Millisecond)
				srv := a
				if i%2 == 1 {
					srv = b
				}
				r = srv.DoAs(t, alice.AccessToken, `mutation($a: ID!, $f: [ID!]) { createPost(input: {authorID: $a, body: "x", attachmentIDs: $f}) { id } }`,
					map[string]any{"a": pid, "f": []string{tk.FileID}})
				if len(r.Errors) > 0 {
					return result{err: r.Code()}
				}
				return result{id: tk.FileID, body: body}
			}
			for i := range n {
				go func() {
					res := result{err: "aborted (see the error above)"}
					defer func() { results <- res }() // also after t.Fatal in a helper
					res = attempt(i)
				}()
			}
			var attached []result
			lost := 0
			var failures []string
			for range n { // all of them, so no goroutine outlives the test
				switch r := <-results; r.err {
				case "":
					attached = append(attached, r)
				case "NOT_FOUND", "EXPIRED":
					lost++
				default:
					failures = append(failures, r.err)
				}
			}
			if len(failures) > 0 {
				t.Fatalf("unexpected errors: %v", failures)
			}
			time.Sleep(500 * time.Millisecond) // several more sweeps
			for _, r := range attached {
				var out struct{ Node *struct{ URL string } }
				a.MustDo(t, `query($id: ID!) { node(id: $id) { ... on File { url } } }`, map[string]any{"id": r.id}, &out)
				if out.Node == nil {
					t.Fatalf("attached file %s was removed", r.id)
				}
				mustDownload(t, out.Node.URL, r.body)
			}
			t.Logf("%d attached, %d lost to the janitor or to expiry", len(attached), lost)
			for _, s := range []*kilntest.Server{a, b} {
				if strings.Contains(s.Logs(), `msg="file cleanup" err`) {
					t.Fatalf("cleanup errors:\n%s", s.Logs())
				}
			}
		})
	}
}
