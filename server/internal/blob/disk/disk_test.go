package disk_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln/server/internal/blob"
	"kiln/server/internal/blob/blobtest"
	"kiln/server/internal/blob/disk"
)

// newStore mounts a fresh store's handler at /files/ of a test server, the
// way Kiln's server does.
func newStore(t *testing.T) (*disk.Store, *httptest.Server) {
	s, srv, _ := newStoreDir(t)
	return s, srv
}

// newStoreDir is newStore that also returns the store's directory.
func newStoreDir(t *testing.T) (*disk.Store, *httptest.Server, string) {
	dir := t.TempDir()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s := disk.New(filepath.Join(dir, "files"), srv.URL, []byte("test secret, 32 bytes long......"))
	mux.Handle("/files/", s.Handler())
	return s, srv, filepath.Join(dir, "files")
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) (blob.Store, *http.Client) {
		s, srv := newStore(t)
		return s, srv.Client()
	})
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// rawPut sends a hand-written request, as a misbehaving client could, and
// returns the status line.
func rawPut(t *testing.T, srv *httptest.Server, u blob.Upload, headers string, body []byte, closeWrite bool) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	path := strings.TrimPrefix(u.URL, srv.URL)
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, headers)
	conn.Write(body)
	if closeWrite {
		conn.(*net.TCPConn).CloseWrite()
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func TestTruncatedBody(t *testing.T) {
	s, srv, dir := newStoreDir(t)
	data := bytes.Repeat([]byte("abcdefgh"), 1000)
	u, err := s.PresignPut(context.Background(), "k", int64(len(data)), "text/plain", "", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// Declares the right length, sends less and hangs up.
	line := rawPut(t, srv, u, fmt.Sprintf("Content-Type: text/plain\r\nContent-Length: %d\r\n", len(data)), data[:len(data)/2], true)
	if strings.Contains(line, " 200 ") {
		t.Fatalf("truncated body: %s", line)
	}
	if _, err := s.Stat(context.Background(), "k"); err == nil {
		t.Fatal("a truncated upload was stored")
	}
	// Nothing left behind in tmp/.
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after a failed upload", len(ents))
	}
}

func TestStatusCodes(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	data := []byte("0123456789")
	u, err := s.PresignPut(ctx, "dir/k", int64(len(data)), "text/plain", sum(data), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	put := func(body []byte, edit func(*http.Request)) int {
		req, _ := http.NewRequest(u.Method, u.URL, bytes.NewReader(body))
		for k, v := range u.Headers {
			req.Header.Set(k, v)
		}
		if edit != nil {
			edit(req)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put(data, func(r *http.Request) { r.ContentLength = -1; r.Body = io.NopCloser(bytes.NewReader(data)) }); got != http.StatusLengthRequired {
		t.Errorf("chunked: %d, want 411", got)
	}
	if got := put([]byte("0123456780"), nil); got != http.StatusBadRequest {
		t.Errorf("wrong digest: %d, want 400", got)
	}
	if got := put(data, func(r *http.Request) { r.Header.Set("Content-Type", "text/html") }); got != http.StatusForbidden {
		t.Errorf("wrong type: %d, want 403", got)
	}
	if got := put(data, func(r *http.Request) { r.Method = http.MethodPost }); got != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", got)
	}
	if got := put(data, nil); got != http.StatusOK {
		t.Errorf("good upload: %d, want 200", got)
	}

	// A body running past the signed size gets 413 while streaming, before
	// anything is stored (the handler's own limit, independent of the
	// server's Content-Length framing: call it directly).
	big := bytes.Repeat([]byte("z"), 1<<20)
	u2, _ := s.PresignPut(ctx, "over", 1000, "application/octet-stream", "", time.Now().Add(time.Minute))
	req := httptest.NewRequest(http.MethodPut, u2.URL, bytes.NewReader(big))
	req.ContentLength = 1000 // lies: the body is 1 MiB
	req.Header.Set("Content-Type", "application/octet-stream")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("overlong body: %d %s, want 413", rec.Code, rec.Body)
	}
	if _, err := s.Stat(ctx, "over"); err == nil {
		t.Error("overlong body was stored")
	}

	// GET headers.
	gu, _ := s.PresignGet(ctx, "dir/k", time.Now().Add(time.Minute))
	resp, err := srv.Client().Get(gu)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != string(data) {
		t.Fatalf("GET: %d %q", resp.StatusCode, b)
	}
	for h, want := range map[string]string{
		"Content-Type":           "text/plain",
		"Content-Length":         "10",
		"X-Content-Type-Options": "nosniff",
		"Accept-Ranges":          "bytes",
		"Etag":                   `"` + sum(data) + `"`,
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("GET %s = %q, want %q", h, got, want)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
		t.Errorf("Cache-Control = %q, want private", cc)
	}
	// HEAD works with a GET URL.
	hr, err := srv.Client().Head(gu)
	if err != nil || hr.StatusCode != 200 || hr.ContentLength != 10 {
		t.Errorf("HEAD: %v %v", hr, err)
	}
	// Conditional GET.
	req, _ = http.NewRequest(http.MethodGet, gu, nil)
	req.Header.Set("If-None-Match", `"`+sum(data)+`"`)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	// Outside /files/ or with a bad key: 404.
	for _, p := range []string{"/other/dir/k", "/files/../files/dir/k", "/files/dir//k", "/files/%2e%2e/x"} {
		req := httptest.NewRequest(http.MethodGet, "http://x"+p, nil)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
}

// A signed URL names the key inside dir and nothing else.
func TestNoEscapeFromDir(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "outside"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := disk.New(filepath.Join(root, "files"), "http://x", []byte("k"))
	for _, key := range []string{"../outside", "../../outside", "/etc/passwd", "objects/../../outside"} {
		if _, err := s.Open(context.Background(), key); err == nil {
			t.Errorf("Open(%q) succeeded", key)
		}
		if _, err := s.PresignGet(context.Background(), key, time.Now().Add(time.Minute)); err == nil {
			t.Errorf("PresignGet(%q) succeeded", key)
		}
	}
}

func TestURLFormat(t *testing.T) {
	s := disk.New(t.TempDir(), "https://api.example.com/", []byte("k"))
	exp := time.Unix(2000000000, 0)
	u, err := s.PresignPut(context.Background(), "a b/c.png", 5, "image/png", "", exp)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "https://api.example.com/files/a%20b/c.png?exp=2000000000&sig="
	if !strings.HasPrefix(u.URL, prefix) || len(u.URL) != len(prefix)+43 {
		t.Errorf("URL = %q, want %q + 43 base64url chars", u.URL, prefix)
	}
	if !u.ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt = %v", u.ExpiresAt)
	}
	g, _ := s.PresignGet(context.Background(), "a b/c.png", exp)
	if g == u.URL {
		t.Error("GET and PUT URLs are the same")
	}
	// Another secret signs differently.
	s2 := disk.New(t.TempDir(), "https://api.example.com/", []byte("other"))
	u2, _ := s2.PresignPut(context.Background(), "a b/c.png", 5, "image/png", "", exp)
	if u2.URL == u.URL {
		t.Error("the secret does not change the signature")
	}
}

func TestSidecar(t *testing.T) {
	dir := t.TempDir()
	s := disk.New(dir, "http://x", []byte("k"))
	ctx := context.Background()
	if err := s.Put(ctx, "a/b", strings.NewReader("hello"), 5, "text/plain"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta", "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"contentType":"text/plain","size":5,"sha256":"` + sum([]byte("hello")) + `"}`; string(b) != want {
		t.Errorf("sidecar = %s, want %s", b, want)
	}
	// A file without (or with a stale) sidecar still stats.
	os.WriteFile(filepath.Join(dir, "objects", "a", "b"), []byte("changed!"), 0o600)
	obj, err := s.Stat(ctx, "a/b")
	if err != nil || obj.Size != 8 || obj.ContentType != disk.DefaultContentType || obj.SHA256 != "" {
		t.Errorf("Stat with stale sidecar = %+v, %v", obj, err)
	}
	// Delete prunes empty directories.
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"objects/a", "meta/a"} {
		if _, err := os.Stat(filepath.Join(dir, d)); !os.IsNotExist(err) {
			t.Errorf("%s not pruned: %v", d, err)
		}
	}
}

// Concurrent writers, readers and deleters of the same keys (run with -race).
func TestConcurrent(t *testing.T) {
	s, srv := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				key := fmt.Sprintf("c/%d", i%4)
				data := bytes.Repeat([]byte{byte('a' + w)}, 100+w)
				switch i % 4 {
				case 0:
					if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "text/plain"); err != nil {
						t.Error(err)
					}
				case 1:
					u, _ := s.PresignPut(ctx, key, int64(len(data)), "text/plain", sum(data), time.Now().Add(time.Minute))
					req, _ := http.NewRequest(u.Method, u.URL, bytes.NewReader(data))
					req.Header.Set("Content-Type", "text/plain")
					req.Header.Set(disk.SHA256Header, sum(data))
					resp, err := srv.Client().Do(req)
					if err != nil {
						t.Error(err)
						continue
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("PUT: %d", resp.StatusCode)
					}
				case 2:
					// Sidecar and data always agree: writer w writes
					// 100+w bytes of 'a'+w.
					obj, err := s.Stat(ctx, key)
					if err == nil && obj.SHA256 != sum(bytes.Repeat([]byte{byte('a' + obj.Size - 100)}, int(obj.Size))) {
						t.Errorf("inconsistent %+v", obj)
					}
					if rc, err := s.Open(ctx, key); err == nil {
						b, _ := io.ReadAll(rc)
						rc.Close()
						if len(b) > 0 && !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) {
							t.Errorf("torn read of %s", key)
						}
					}
				case 3:
					if err := s.Delete(ctx, key); err != nil {
						t.Error(err)
					}
					s.List(ctx, "c/", func(blob.Object) error { return nil })
				}
			}
		})
	}
	wg.Wait()
}
