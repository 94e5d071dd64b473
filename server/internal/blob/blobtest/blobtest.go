// Package blobtest is the conformance suite every blob.Store passes.
//
// Uploads and downloads through presigned URLs are made with a plain
// net/http client, exactly as a mobile app would: method, URL and headers
// straight from blob.Upload, the body's real length as Content-Length.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiln/server/internal/blob"
)

// Run runs the suite. newStore returns a fresh, empty store for one subtest
// and the HTTP client with which to use its presigned URLs; it registers its
// own cleanup with t.
func Run(t *testing.T, newStore func(t *testing.T) (blob.Store, *http.Client)) {
	t.Run("PresignPutThenStat", func(t *testing.T) { testPresignPut(t, newStore) })
	t.Run("PresignPutWithoutSHA256", func(t *testing.T) { testPresignPutNoSHA(t, newStore) })
	t.Run("PresignPutOverwrites", func(t *testing.T) { testPresignPutOverwrite(t, newStore) })
	t.Run("PresignPutWrongSize", func(t *testing.T) { testWrongSize(t, newStore) })
	t.Run("PresignPutWrongContentType", func(t *testing.T) { testWrongType(t, newStore) })
	t.Run("PresignPutWrongSHA256", func(t *testing.T) { testWrongSHA(t, newStore) })
	t.Run("PresignPutExpired", func(t *testing.T) { testPutExpired(t, newStore) })
	t.Run("PresignPutTampered", func(t *testing.T) { testPutTampered(t, newStore) })
	t.Run("PresignPutEmpty", func(t *testing.T) { testPutEmpty(t, newStore) })
	t.Run("PresignGet", func(t *testing.T) { testPresignGet(t, newStore) })
	t.Run("PresignGetExpiredAndTampered", func(t *testing.T) { testGetExpired(t, newStore) })
	t.Run("PutOpenDelete", func(t *testing.T) { testPutOpenDelete(t, newStore) })
	t.Run("PutWrongSize", func(t *testing.T) { testPutWrongSize(t, newStore) })
	t.Run("Copy", func(t *testing.T) { testCopy(t, newStore) })
	t.Run("List", func(t *testing.T) { testList(t, newStore) })
	t.Run("StatMissing", func(t *testing.T) { testMissing(t, newStore) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, newStore) })
	t.Run("Large", func(t *testing.T) { testLarge(t, newStore) })
}

// ------------------------------------------------------------- helpers ---

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
	r.Read(b)
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// response is what a client saw; err is a transport error (a server may
// also reject by dropping the connection).
type response struct {
	status int
	header http.Header
	body   string
	err    error
}

func (r response) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

func (r response) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(r.body))
}

// send uploads body as a mobile app would: every header of u except
// Content-Length (the HTTP stack derives it from the body, whose real
// length is length).
func send(ctx context.Context, hc *http.Client, u blob.Upload, body io.Reader, length int64, edit func(*http.Request)) response {
	req, err := http.NewRequestWithContext(ctx, u.Method, u.URL, body)
	if err != nil {
		return response{err: err}
	}
	for k, v := range u.Headers {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Host") {
			continue
		}
		req.Header.Set(k, v)
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	if edit != nil {
		edit(req)
	}
	return do(hc, req)
}

func do(hc *http.Client, req *http.Request) response {
	resp, err := hc.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func upload(ctx context.Context, hc *http.Client, u blob.Upload, data []byte) response {
	return send(ctx, hc, u, bytes.NewReader(data), int64(len(data)), nil)
}

func get(ctx context.Context, hc *http.Client, rawURL string, edit func(*http.Request)) response {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return response{err: err}
	}
	if edit != nil {
		edit(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func mustPresignPut(t *testing.T, s blob.Store, key string, size int64, ct, sha string, exp time.Time) blob.Upload {
	t.Helper()
	u, err := s.PresignPut(ctxFor(t), key, size, ct, sha, exp)
	if err != nil {
		t.Fatalf("PresignPut(%q): %v", key, err)
	}
	return u
}

func mustMissing(t *testing.T, s blob.Store, key, why string) {
	t.Helper()
	obj, err := s.Stat(ctxFor(t), key)
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("%s: Stat(%q) = %+v, %v; want ErrNotFound", why, key, obj, err)
	}
}

func mustReject(t *testing.T, r response, why string) {
	t.Helper()
	if r.ok() {
		t.Fatalf("%s: accepted (%s); want rejected", why, r)
	}
	t.Logf("%s: rejected as expected (%s)", why, shorten(r.String()))
}

func mustAccept(t *testing.T, r response, why string) {
	t.Helper()
	if !r.ok() {
		t.Fatalf("%s: %s; want 2xx", why, r)
	}
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

func mustOpen(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Open(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Open(%q): read: %v", key, err)
	}
	return b
}

func mustPut(t *testing.T, s blob.Store, key string, data []byte, ct string) {
	t.Helper()
	if err := s.Put(ctxFor(t), key, bytes.NewReader(data), int64(len(data)), ct); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// --------------------------------------------------------------- tests ---

func testPresignPut(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(1, 100_000)
	key := "uploads/photo-1.png"
	exp := time.Now().Add(10 * time.Minute)
	u := mustPresignPut(t, s, key, int64(len(data)), "image/png", sha(data), exp)

	if u.Method != http.MethodPut {
		t.Errorf("Method = %q, want PUT", u.Method)
	}
	if got := u.Headers["Content-Type"]; got != "image/png" {
		t.Errorf("Headers[Content-Type] = %q, want image/png (headers %v)", got, u.Headers)
	}
	if got := u.Headers["Content-Length"]; got != strconv.Itoa(len(data)) {
		t.Errorf("Headers[Content-Length] = %q, want %d (headers %v)", got, len(data), u.Headers)
	}
	if u.ExpiresAt.After(exp) || u.ExpiresAt.Before(exp.Add(-2*time.Second)) {
		t.Errorf("ExpiresAt = %v, want within 2s before %v", u.ExpiresAt, exp)
	}
	mustMissing(t, s, key, "before upload")

	mustAccept(t, upload(ctx, hc, u, data), "presigned PUT")

	obj, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat after upload: %v", err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) || obj.ContentType != "image/png" {
		t.Errorf("Stat = %+v, want key %q size %d type image/png", obj, key, len(data))
	}
	if obj.SHA256 != sha(data) {
		t.Errorf("Stat SHA256 = %q, want %q (the upload was bound to it)", obj.SHA256, sha(data))
	}
	if d := time.Since(obj.ModTime); d < -time.Minute || d > 5*time.Minute {
		t.Errorf("Stat ModTime = %v, not recent", obj.ModTime)
	}
	if got := mustOpen(t, s, key); !bytes.Equal(got, data) {
		t.Errorf("Open after presigned PUT: %d bytes differ from the %d uploaded", len(got), len(data))
	}
}

func testPresignPutNoSHA(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := []byte(`{"hello":"world"}`)
	key := "uploads/doc.json"
	u := mustPresignPut(t, s, key, int64(len(data)), "application/json", "", time.Now().Add(time.Minute))
	mustAccept(t, upload(ctx, hc, u, data), "presigned PUT without sha256")
	obj, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || obj.ContentType != "application/json" {
		t.Errorf("Stat = %+v", obj)
	}
	if obj.SHA256 != "" && obj.SHA256 != sha(data) {
		t.Errorf("Stat SHA256 = %q, want %q or \"\"", obj.SHA256, sha(data))
	}
	if got := mustOpen(t, s, key); !bytes.Equal(got, data) {
		t.Errorf("Open = %q, want %q", got, data)
	}
}

func testPresignPutOverwrite(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	key := "uploads/avatar"
	mustPut(t, s, key, []byte("old old old"), "text/plain")
	data := randomBytes(2, 5000)
	u := mustPresignPut(t, s, key, int64(len(data)), "image/webp", sha(data), time.Now().Add(time.Minute))
	mustAccept(t, upload(ctx, hc, u, data), "presigned PUT over an existing object")
	obj, err := s.Stat(ctx, key)
	if err != nil || obj.Size != 5000 || obj.ContentType != "image/webp" || obj.SHA256 != sha(data) {
		t.Fatalf("Stat = %+v, %v", obj, err)
	}
}

func testWrongSize(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(3, 4096)
	key := "uploads/sized"
	for _, withSHA := range []bool{false, true} {
		h := ""
		if withSHA {
			h = sha(data)
		}
		u := mustPresignPut(t, s, key, int64(len(data)), "application/octet-stream", h, time.Now().Add(time.Minute))
		more := append(slices.Clone(data), 'x')
		mustReject(t, upload(ctx, hc, u, more), fmt.Sprintf("one byte more (sha bound: %v)", withSHA))
		mustMissing(t, s, key, "after a longer upload")
		mustReject(t, upload(ctx, hc, u, data[:len(data)-1]), fmt.Sprintf("one byte fewer (sha bound: %v)", withSHA))
		mustMissing(t, s, key, "after a shorter upload")
		mustReject(t, upload(ctx, hc, u, nil), fmt.Sprintf("empty body (sha bound: %v)", withSHA))
		mustMissing(t, s, key, "after an empty upload")
		// A chunked body (no Content-Length) may not sidestep the size.
		r := send(ctx, hc, u, io.MultiReader(bytes.NewReader(more)), -1, nil)
		mustReject(t, r, fmt.Sprintf("chunked, one byte more (sha bound: %v)", withSHA))
		mustMissing(t, s, key, "after a chunked upload")
	}
	// The right size still works with the same kind of URL.
	u := mustPresignPut(t, s, key, int64(len(data)), "application/octet-stream", "", time.Now().Add(time.Minute))
	mustAccept(t, upload(ctx, hc, u, data), "the right size")
}

func testWrongType(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(4, 1000)
	key := "uploads/typed"
	u := mustPresignPut(t, s, key, int64(len(data)), "image/png", "", time.Now().Add(time.Minute))
	for _, ct := range []string{"image/jpeg", "text/html", "image/png; charset=utf-8", "IMAGE/PNG"} {
		r := send(ctx, hc, u, bytes.NewReader(data), int64(len(data)), func(r *http.Request) { r.Header.Set("Content-Type", ct) })
		mustReject(t, r, "Content-Type "+ct)
		mustMissing(t, s, key, "after upload as "+ct)
	}
	r := send(ctx, hc, u, bytes.NewReader(data), int64(len(data)), func(r *http.Request) { r.Header.Del("Content-Type") })
	mustReject(t, r, "no Content-Type")
	mustMissing(t, s, key, "after upload without Content-Type")
	mustAccept(t, upload(ctx, hc, u, data), "the right type")
}

func testWrongSHA(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(5, 3000)
	other := randomBytes(6, 3000)
	key := "uploads/hashed"
	u := mustPresignPut(t, s, key, int64(len(data)), "application/pdf", sha(data), time.Now().Add(time.Minute))
	mustReject(t, upload(ctx, hc, u, other), "other bytes of the same size")
	mustMissing(t, s, key, "after a wrong-digest upload")
	flipped := slices.Clone(data)
	flipped[len(flipped)-1] ^= 1
	mustReject(t, upload(ctx, hc, u, flipped), "last bit flipped")
	mustMissing(t, s, key, "after a one-bit-off upload")

	// Dropping or replacing the checksum header does not get past the binding.
	var shaHeader string
	for k, v := range u.Headers {
		if strings.EqualFold(v, sha(data)) || strings.Contains(strings.ToLower(k), "sha256") {
			shaHeader = k
		}
	}
	if shaHeader == "" {
		t.Fatalf("no sha256 header in %v", u.Headers)
	}
	r := send(ctx, hc, u, bytes.NewReader(other), int64(len(other)), func(r *http.Request) { r.Header.Del(shaHeader) })
	mustReject(t, r, "other bytes without the "+shaHeader+" header")
	mustMissing(t, s, key, "after upload without sha header")
	unbound := mustPresignPut(t, s, key, int64(len(other)), "application/pdf", "", time.Now().Add(time.Minute))
	r = send(ctx, hc, unbound, bytes.NewReader(other), int64(len(other)), func(r *http.Request) { r.Header.Set(shaHeader, u.Headers[shaHeader]) })
	mustReject(t, r, "unbound URL with another object's sha256 header")
	mustMissing(t, s, key, "after upload with a foreign sha header")

	mustAccept(t, upload(ctx, hc, u, data), "the right bytes")
}

func testPutExpired(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(7, 2000)
	key := "uploads/late"
	for _, ago := range []time.Duration{time.Second, 2 * time.Second, time.Hour} {
		u := mustPresignPut(t, s, key, int64(len(data)), "image/png", sha(data), time.Now().Add(-ago))
		if !u.ExpiresAt.Before(time.Now()) {
			t.Errorf("ExpiresAt = %v, want in the past", u.ExpiresAt)
		}
		mustReject(t, upload(ctx, hc, u, data), fmt.Sprintf("expired %v ago", ago))
		mustMissing(t, s, key, "after an expired upload")
	}
	// A URL that expires shortly works until then, and not after.
	u := mustPresignPut(t, s, key, int64(len(data)), "image/png", sha(data), time.Now().Add(3*time.Second))
	mustAccept(t, upload(ctx, hc, u, data), "before expiry")
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(u.ExpiresAt) + 1100*time.Millisecond)
	mustReject(t, upload(ctx, hc, u, data), "same URL after expiry")
	mustMissing(t, s, key, "after upload past expiry")
}

// tamper returns variants of rawURL, each with one part changed: a path
// character, and each query parameter's value.
func tamper(t *testing.T, rawURL string) map[string]string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	p := *u
	p.Path = strings.TrimSuffix(u.Path, "/") + "x"
	p.RawPath = ""
	out["path"] = p.String()
	q := u.Query()
	for name, vals := range q {
		v := vals[0]
		var nv string
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			nv = strconv.FormatInt(n+3600, 10) // e.g. a later expiry
		} else if v == "" {
			nv = "x"
		} else {
			// Change one character in the middle (not a padding bit).
			i := len(v) / 2
			c := byte('A')
			if v[i] == 'A' {
				c = 'B'
			}
			nv = v[:i] + string(c) + v[i+1:]
		}
		q2 := u.Query()
		q2.Set(name, nv)
		c := *u
		c.RawQuery = q2.Encode()
		out["query "+name] = c.String()
	}
	d := *u
	d.RawQuery = ""
	out["no query"] = d.String()
	return out
}

func testPutTampered(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(8, 1500)
	key := "uploads/tamper"
	u := mustPresignPut(t, s, key, int64(len(data)), "image/gif", sha(data), time.Now().Add(time.Minute))
	for what, tu := range tamper(t, u.URL) {
		v := u
		v.URL = tu
		mustReject(t, upload(ctx, hc, v, data), "tampered "+what)
		mustMissing(t, s, key, "after tampered "+what)
		mustMissing(t, s, key+"x", "after tampered "+what)
	}
	// Another method with the same URL.
	v := u
	v.Method = http.MethodPost
	mustReject(t, upload(ctx, hc, v, data), "POST instead of PUT")
	mustMissing(t, s, key, "after POST")
	// A GET URL does not upload.
	gu, err := s.PresignGet(ctx, key, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	v = u
	v.URL = gu
	mustReject(t, upload(ctx, hc, v, data), "PUT to a GET URL")
	mustMissing(t, s, key, "after PUT to a GET URL")

	mustAccept(t, upload(ctx, hc, u, data), "the untampered URL")
}

func testPutEmpty(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	key := "uploads/empty"
	u := mustPresignPut(t, s, key, 0, "text/plain", "", time.Now().Add(time.Minute))
	mustReject(t, upload(ctx, hc, u, []byte("not empty")), "bytes to a zero-size URL")
	mustMissing(t, s, key, "after bytes to a zero-size URL")
	mustAccept(t, upload(ctx, hc, u, nil), "zero-byte presigned PUT")
	obj, err := s.Stat(ctx, key)
	if err != nil || obj.Size != 0 {
		t.Fatalf("Stat = %+v, %v; want size 0", obj, err)
	}
	if got := mustOpen(t, s, key); len(got) != 0 {
		t.Errorf("Open = %q, want empty", got)
	}
}

func testPresignGet(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(9, 70_000)
	key := "media/clip.mp4"
	u := mustPresignPut(t, s, key, int64(len(data)), "video/mp4", sha(data), time.Now().Add(time.Minute))
	mustAccept(t, upload(ctx, hc, u, data), "presigned PUT")

	gu, err := s.PresignGet(ctx, key, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r := get(ctx, hc, gu, nil)
	mustAccept(t, r, "presigned GET")
	if r.body != string(data) {
		t.Fatalf("presigned GET: %d bytes differ from the %d uploaded", len(r.body), len(data))
	}
	if ct := r.header.Get("Content-Type"); ct != "video/mp4" {
		t.Errorf("GET Content-Type = %q, want video/mp4", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(data)) {
		t.Errorf("GET Content-Length = %q, want %d", cl, len(data))
	}
	// Range requests (video players, resumed downloads).
	r = get(ctx, hc, gu, func(r *http.Request) { r.Header.Set("Range", "bytes=1000-1999") })
	if r.err != nil || r.status != http.StatusPartialContent || r.body != string(data[1000:2000]) {
		t.Errorf("Range GET: %d, %d bytes, %v; want 206 and bytes 1000-1999", r.status, len(r.body), r.err)
	}
	// A GET URL for an object put server-side.
	mustPut(t, s, "media/note.txt", []byte("hello"), "text/plain")
	gu2, err := s.PresignGet(ctx, "media/note.txt", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r := get(ctx, hc, gu2, nil); !r.ok() || r.body != "hello" || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET of a Put object: %s (type %q)", r, r.header.Get("Content-Type"))
	}
	// A URL for a missing object is fine to make; using it fails.
	gu3, err := s.PresignGet(ctx, "media/missing", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	r = get(ctx, hc, gu3, nil)
	mustReject(t, r, "GET of a missing object")
	if r.err == nil && r.status != http.StatusNotFound {
		t.Errorf("GET of a missing object: %d, want 404", r.status)
	}
}

func testGetExpired(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	key := "media/secret.txt"
	mustPut(t, s, key, []byte("top secret"), "text/plain")
	for _, ago := range []time.Duration{time.Second, 2 * time.Second} {
		gu, err := s.PresignGet(ctx, key, time.Now().Add(-ago))
		if err != nil {
			t.Fatal(err)
		}
		r := get(ctx, hc, gu, nil)
		mustReject(t, r, fmt.Sprintf("GET expired %v ago", ago))
		if strings.Contains(r.body, "top secret") {
			t.Errorf("expired GET leaked the content")
		}
	}
	gu, err := s.PresignGet(ctx, key, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for what, tu := range tamper(t, gu) {
		r := get(ctx, hc, tu, nil)
		mustReject(t, r, "tampered GET "+what)
		if strings.Contains(r.body, "top secret") {
			t.Errorf("tampered GET %s leaked the content", what)
		}
	}
	// An upload URL does not download.
	u := mustPresignPut(t, s, key, 10, "text/plain", "", time.Now().Add(time.Minute))
	r := get(ctx, hc, u.URL, nil)
	mustReject(t, r, "GET with a PUT URL")
	if strings.Contains(r.body, "top secret") {
		t.Errorf("GET with a PUT URL leaked the content")
	}
	mustAccept(t, get(ctx, hc, gu, nil), "the untampered GET URL")
}

func testPutOpenDelete(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, _ := newStore(t)
	ctx := ctxFor(t)
	key := "files/a/b/c.bin"
	data := randomBytes(10, 12345)
	mustPut(t, s, key, data, "application/x-thing")
	obj, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) || obj.ContentType != "application/x-thing" {
		t.Errorf("Stat = %+v", obj)
	}
	if obj.SHA256 != "" && obj.SHA256 != sha(data) {
		t.Errorf("Stat SHA256 = %q, want %q or \"\"", obj.SHA256, sha(data))
	}
	if got := mustOpen(t, s, key); !bytes.Equal(got, data) {
		t.Fatalf("Open: %d bytes differ from the %d put", len(got), len(data))
	}
	// Unseekable reader.
	if err := s.Put(ctx, key, io.MultiReader(bytes.NewReader(data[:100]), bytes.NewReader(data[100:])), int64(len(data)), "application/x-other"); err != nil {
		t.Fatalf("Put (unseekable): %v", err)
	}
	if got := mustOpen(t, s, key); !bytes.Equal(got, data) {
		t.Fatalf("Open after unseekable Put: %d bytes differ", len(got))
	}
	// Overwrite.
	mustPut(t, s, key, []byte("short"), "text/plain")
	if got := mustOpen(t, s, key); string(got) != "short" {
		t.Fatalf("Open after overwrite = %q", got)
	}
	if obj, err := s.Stat(ctx, key); err != nil || obj.Size != 5 || obj.ContentType != "text/plain" {
		t.Fatalf("Stat after overwrite = %+v, %v", obj, err)
	}
	// Empty object.
	mustPut(t, s, "files/empty", nil, "text/plain")
	if obj, err := s.Stat(ctx, "files/empty"); err != nil || obj.Size != 0 {
		t.Fatalf("Stat empty = %+v, %v", obj, err)
	}
	// Delete.
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustMissing(t, s, key, "after Delete")
	if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	if err := s.Delete(ctx, "never/was/here"); err != nil {
		t.Errorf("Delete of a never-existing key: %v, want nil", err)
	}
	// The key's "directory" can hold a new object afterwards.
	mustPut(t, s, "files/a/b", []byte("now a leaf"), "text/plain")
	if got := mustOpen(t, s, "files/a/b"); string(got) != "now a leaf" {
		t.Errorf("Open = %q", got)
	}
}

func testCopy(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(12, 30_000)
	src, dst := "uploads/staged", "files/final"
	// The source comes from a presigned upload without a sha256, which on
	// S3 stays usable until it expires: the case Copy exists for.
	u := mustPresignPut(t, s, src, int64(len(data)), "image/png", "", time.Now().Add(time.Minute))
	mustAccept(t, upload(ctx, hc, u, data), "presigned PUT of the source")
	obj, err := s.Copy(ctx, src, dst)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if obj.Key != dst || obj.Size != int64(len(data)) || obj.ContentType != "image/png" {
		t.Errorf("Copy = %+v, want key %q size %d type image/png", obj, dst, len(data))
	}
	if obj.SHA256 != "" && obj.SHA256 != sha(data) {
		t.Errorf("Copy SHA256 = %q, want %q or \"\"", obj.SHA256, sha(data))
	}
	t.Logf("the store computed the copy's sha256: %v", obj.SHA256 != "")
	if st, err := s.Stat(ctx, dst); err != nil || st.Size != obj.Size || st.ContentType != obj.ContentType || st.SHA256 != obj.SHA256 {
		t.Errorf("Stat after Copy = %+v, %v; Copy returned %+v", st, err, obj)
	}
	if got := mustOpen(t, s, dst); !bytes.Equal(got, data) {
		t.Fatalf("Open of the copy: %d bytes differ from the %d uploaded", len(got), len(data))
	}
	if got := mustOpen(t, s, src); !bytes.Equal(got, data) {
		t.Fatalf("Copy changed the source")
	}

	// The copy is a snapshot: the source's upload URL, used again with
	// other bytes of the same size and type, does not reach it.
	other := randomBytes(13, len(data))
	mustAccept(t, upload(ctx, hc, u, other), "the source's upload URL, used again")
	if got := mustOpen(t, s, src); !bytes.Equal(got, other) {
		t.Fatalf("the second upload did not replace the source")
	}
	if got := mustOpen(t, s, dst); !bytes.Equal(got, data) {
		t.Fatalf("a later upload to the source changed the copy")
	}
	gu, err := s.PresignGet(ctx, dst, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r := get(ctx, hc, gu, nil); !r.ok() || r.body != string(data) || r.header.Get("Content-Type") != "image/png" {
		t.Errorf("GET of the copy: %s (type %q)", shorten(r.String()), r.header.Get("Content-Type"))
	}

	// Copy replaces dst, and deleting the source leaves the copy.
	obj, err = s.Copy(ctx, src, dst)
	if err != nil || obj.Size != int64(len(other)) || obj.SHA256 != "" && obj.SHA256 != sha(other) {
		t.Fatalf("Copy over an existing object = %+v, %v", obj, err)
	}
	if got := mustOpen(t, s, dst); !bytes.Equal(got, other) {
		t.Fatalf("Copy did not replace dst")
	}
	if err := s.Delete(ctx, src); err != nil {
		t.Fatal(err)
	}
	if got := mustOpen(t, s, dst); !bytes.Equal(got, other) {
		t.Fatalf("deleting the source changed the copy")
	}

	// A missing source: ErrNotFound, dst untouched.
	if _, err := s.Copy(ctx, src, dst); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Copy of a missing source: %v, want ErrNotFound", err)
	}
	if got := mustOpen(t, s, dst); !bytes.Equal(got, other) {
		t.Fatalf("a failed Copy changed dst")
	}
	mustMissing(t, s, "files/never", "before Copy")
	if _, err := s.Copy(ctx, "uploads/missing", "files/never"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Copy of a missing source: %v, want ErrNotFound", err)
	}
	mustMissing(t, s, "files/never", "after a Copy of a missing source")

	// Objects put server-side, empty ones and unusual keys copy too.
	mustPut(t, s, "files/empty", nil, "text/plain")
	obj, err = s.Copy(ctx, "files/empty", "copies/ünï cödé/empty")
	if err != nil || obj.Size != 0 || obj.ContentType != "text/plain" || obj.SHA256 != "" && obj.SHA256 != EmptySHA256 {
		t.Fatalf("Copy of an empty object = %+v, %v", obj, err)
	}
	if got := mustOpen(t, s, "copies/ünï cödé/empty"); len(got) != 0 {
		t.Errorf("Open of an empty copy = %q", got)
	}
}

// EmptySHA256 is the sha256 of no bytes.
const EmptySHA256 = blob.EmptySHA256

// failingReader yields n bytes then fails, like a client that went away.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	m := min(len(p), f.n)
	for i := range p[:m] {
		p[i] = 'z'
	}
	f.n -= m
	return m, nil
}

func testPutWrongSize(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, _ := newStore(t)
	ctx := ctxFor(t)
	data := randomBytes(11, 2048)
	key := "files/sized"
	cases := map[string]func() (io.Reader, int64){
		"seekable, more":   func() (io.Reader, int64) { return bytes.NewReader(data), int64(len(data) - 1) },
		"seekable, fewer":  func() (io.Reader, int64) { return bytes.NewReader(data), int64(len(data) + 1) },
		"streaming, more":  func() (io.Reader, int64) { return io.MultiReader(bytes.NewReader(data)), int64(len(data) - 1) },
		"streaming, fewer": func() (io.Reader, int64) { return io.MultiReader(bytes.NewReader(data)), int64(len(data) + 1) },
		"reader fails": func() (io.Reader, int64) {
			return &failingReader{n: 1000, err: errors.New("client went away")}, int64(len(data))
		},
	}
	for what, mk := range cases {
		r, n := mk()
		if err := s.Put(ctx, key, r, n, "application/octet-stream"); err == nil {
			t.Errorf("Put %s: nil error, want one", what)
		}
		mustMissing(t, s, key, "after Put "+what)
	}
	// A failed overwrite leaves the old object intact.
	mustPut(t, s, key, data, "application/octet-stream")
	if err := s.Put(ctx, key, io.MultiReader(bytes.NewReader(data)), int64(len(data)+1), "text/plain"); err == nil {
		t.Errorf("short overwrite: nil error")
	}
	if got := mustOpen(t, s, key); !bytes.Equal(got, data) {
		t.Errorf("a failed overwrite changed the object (%d bytes)", len(got))
	}
	// A canceled context fails the Put.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, "files/canceled", bytes.NewReader(data), int64(len(data)), "text/plain"); err == nil {
		t.Errorf("Put with a canceled context: nil error")
	}
	mustMissing(t, s, "files/canceled", "after a canceled Put")
}

func testList(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, _ := newStore(t)
	ctx := ctxFor(t)
	keys := []string{"p/b", "p/a/b", "p/a.txt", "p/a/c/d", "p/ab", "q/x", "pz", "p/z"}
	for i, k := range keys {
		mustPut(t, s, k, bytes.Repeat([]byte{'x'}, i+1), "text/plain")
	}
	size := func(k string) int64 { return int64(slices.Index(keys, k) + 1) }
	list := func(prefix string) []string {
		t.Helper()
		var got []string
		err := s.List(ctx, prefix, func(o blob.Object) error {
			if o.Size != size(o.Key) {
				t.Errorf("List(%q): %s has size %d, want %d", prefix, o.Key, o.Size, size(o.Key))
			}
			if o.ContentType != "" && o.ContentType != "text/plain" {
				t.Errorf("List(%q): %s has type %q", prefix, o.Key, o.ContentType)
			}
			if o.ModTime.IsZero() {
				t.Errorf("List(%q): %s has no ModTime", prefix, o.Key)
			}
			got = append(got, o.Key)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return got
	}
	sorted := slices.Sorted(slices.Values(keys))
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"p/", []string{"p/a.txt", "p/a/b", "p/a/c/d", "p/ab", "p/b", "p/z"}},
		{"p", []string{"p/a.txt", "p/a/b", "p/a/c/d", "p/ab", "p/b", "p/z", "pz"}},
		{"p/a", []string{"p/a.txt", "p/a/b", "p/a/c/d", "p/ab"}},
		{"p/a/", []string{"p/a/b", "p/a/c/d"}},
		{"p/a/c/d", []string{"p/a/c/d"}},
		{"q/", []string{"q/x"}},
		{"nothing/", nil},
	} {
		if got := list(tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	// An error from fn stops the listing and comes back.
	stop := errors.New("stop")
	n := 0
	err := s.List(ctx, "p/", func(blob.Object) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("List with failing fn: err %v after %d calls; want %v after 1", err, n, stop)
	}
	// Deleted objects disappear from listings.
	for _, k := range []string{"p/a/b", "p/a/c/d"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if got := list("p/a"); !slices.Equal(got, []string{"p/a.txt", "p/ab"}) {
		t.Errorf("List after deletes = %q", got)
	}
}

func testMissing(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, _ := newStore(t)
	ctx := ctxFor(t)
	for _, key := range []string{"missing", "a/b/missing"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%q): %v, want ErrNotFound", key, err)
		}
		if rc, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Open(%q): %v, want ErrNotFound", key, err)
		}
	}
	// Below an object, as if it were a directory.
	mustPut(t, s, "leaf", []byte("x"), "text/plain")
	if _, err := s.Stat(ctx, "leaf/child"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(leaf/child): %v, want ErrNotFound", err)
	}
	// A "directory" made by a longer key is not an object.
	mustPut(t, s, "dir/child", []byte("x"), "text/plain")
	if _, err := s.Stat(ctx, "dir"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat(dir): %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "dir"); err != nil {
		t.Errorf("Delete(dir): %v", err)
	}
	if _, err := s.Stat(ctx, "dir/child"); err != nil {
		t.Errorf("Delete(dir) removed dir/child: %v", err)
	}
}

func testInvalidKeys(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, _ := newStore(t)
	ctx := ctxFor(t)
	exp := time.Now().Add(time.Minute)
	for _, key := range []string{"", "../etc/passwd", "a/../../b", "/abs", "a//b", "a/./b", "a/", ".", "..", "a\\b", "a\x00b", "a\nb", strings.Repeat("k", blob.MaxKeyLen+1)} {
		if _, err := s.PresignPut(ctx, key, 1, "text/plain", "", exp); err == nil {
			t.Errorf("PresignPut(%q): nil error", key)
		}
		if _, err := s.PresignGet(ctx, key, exp); err == nil {
			t.Errorf("PresignGet(%q): nil error", key)
		}
		if err := s.Put(ctx, key, strings.NewReader("x"), 1, "text/plain"); err == nil {
			t.Errorf("Put(%q): nil error", key)
		}
		if _, err := s.Stat(ctx, key); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%q): %v, want an invalid-key error", key, err)
		}
		if _, err := s.Open(ctx, key); err == nil {
			t.Errorf("Open(%q): nil error", key)
		}
		if err := s.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q): nil error", key)
		}
		if _, err := s.Copy(ctx, key, "copy/dst"); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Copy(%q, copy/dst): %v, want an invalid-key error", key, err)
		}
		if _, err := s.Copy(ctx, "copy/src", key); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Copy(copy/src, %q): %v, want an invalid-key error", key, err)
		}
	}
	if err := s.List(ctx, "../", func(blob.Object) error { return nil }); err == nil {
		t.Errorf("List(../): nil error")
	}
	// Other bad arguments.
	if _, err := s.PresignPut(ctx, "k", -1, "text/plain", "", exp); err == nil {
		t.Errorf("PresignPut with size -1: nil error")
	}
	if _, err := s.PresignPut(ctx, "k", 1, "", "", exp); err == nil {
		t.Errorf("PresignPut without a content type: nil error")
	}
	if _, err := s.PresignPut(ctx, "k", 1, "text/plain\r\nX-Evil: 1", "", exp); err == nil {
		t.Errorf("PresignPut with a header-splitting content type: nil error")
	}
	if _, err := s.PresignPut(ctx, "k", 1, "text/plain", "abc", exp); err == nil {
		t.Errorf("PresignPut with a malformed sha256: nil error")
	}
	// Unusual but valid keys work end to end.
	for _, key := range []string{"unicode/ünï cödé 😀.txt", "chars/a+b=c&d?e#f%g;h,i'j(k)", "dots/..a/b..", "x"} {
		mustPut(t, s, key, []byte(key), "text/plain")
		if got := mustOpen(t, s, key); string(got) != key {
			t.Errorf("Open(%q) = %q", key, got)
		}
	}
}

// prng is an unseekable stream of n pseudo-random bytes, made on the fly so
// the test itself never holds the object in memory.
type prng struct {
	r *rand.ChaCha8
	n int64
}

func newPRNG(seed byte, n int64) *prng {
	return &prng{r: rand.NewChaCha8([32]byte{seed, 7}), n: n}
}

func (p *prng) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	p.r.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

func hashOf(t *testing.T, r io.Reader) (string, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func testLarge(t *testing.T, newStore func(*testing.T) (blob.Store, *http.Client)) {
	s, hc := newStore(t)
	ctx := ctxFor(t)
	const size = 8 << 20
	// Allocations by this whole process (client, and the server when it runs
	// in-process) must stay well below the object's size: nothing may hold
	// the whole object in memory.
	const allocBudget = size / 2
	want, _ := hashOf(t, newPRNG(1, size))
	key := "big/object.bin"

	u := mustPresignPut(t, s, key, size, "application/octet-stream", want, time.Now().Add(5*time.Minute))
	before := totalAlloc()
	r := send(ctx, hc, u, newPRNG(1, size), size, nil)
	alloc := totalAlloc() - before
	mustAccept(t, r, "8 MiB presigned PUT")
	t.Logf("8 MiB presigned PUT allocated %d KiB in this process", alloc>>10)
	if alloc > allocBudget {
		t.Errorf("8 MiB presigned PUT allocated %d KiB, more than %d KiB: something buffers the object", alloc>>10, allocBudget>>10)
	}
	obj, err := s.Stat(ctx, key)
	if err != nil || obj.Size != size || obj.SHA256 != want {
		t.Fatalf("Stat = %+v, %v; want size %d sha %s", obj, err, size, want)
	}

	// Download through a presigned GET, streaming.
	gu, err := s.PresignGet(ctx, key, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gu, nil)
	before = totalAlloc()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, n := hashOf(t, resp.Body)
	resp.Body.Close()
	alloc = totalAlloc() - before
	if resp.StatusCode != http.StatusOK || got != want || n != size {
		t.Fatalf("presigned GET: %d, %d bytes, sha %s; want 200, %d bytes, %s", resp.StatusCode, n, got, size, want)
	}
	t.Logf("8 MiB presigned GET allocated %d KiB in this process", alloc>>10)
	if alloc > allocBudget {
		t.Errorf("8 MiB presigned GET allocated %d KiB: something buffers the object", alloc>>10)
	}

	// Server-side Put and Open of an unseekable 8 MiB stream.
	before = totalAlloc()
	if err := s.Put(ctx, "big/put.bin", newPRNG(2, size), size, "application/octet-stream"); err != nil {
		t.Fatalf("Put 8 MiB: %v", err)
	}
	alloc = totalAlloc() - before
	t.Logf("8 MiB streaming Put allocated %d KiB in this process", alloc>>10)
	if alloc > allocBudget {
		t.Errorf("8 MiB streaming Put allocated %d KiB: something buffers the object", alloc>>10)
	}
	want2, _ := hashOf(t, newPRNG(2, size))
	rc, err := s.Open(ctx, "big/put.bin")
	if err != nil {
		t.Fatal(err)
	}
	got2, n2 := hashOf(t, rc)
	rc.Close()
	if got2 != want2 || n2 != size {
		t.Fatalf("Open after 8 MiB Put: %d bytes, sha %s; want %d, %s", n2, got2, size, want2)
	}

	// Copy streams (disk) or stays in the service (S3).
	before = totalAlloc()
	cobj, err := s.Copy(ctx, "big/put.bin", "big/copy.bin")
	alloc = totalAlloc() - before
	if err != nil || cobj.Size != size || cobj.SHA256 != "" && cobj.SHA256 != want2 {
		t.Fatalf("Copy 8 MiB = %+v, %v; want size %d sha %s", cobj, err, size, want2)
	}
	t.Logf("8 MiB Copy allocated %d KiB in this process", alloc>>10)
	if alloc > allocBudget {
		t.Errorf("8 MiB Copy allocated %d KiB: something buffers the object", alloc>>10)
	}

	// An oversize body to an 8 MiB URL is refused (not stored).
	u2 := mustPresignPut(t, s, "big/over.bin", size, "application/octet-stream", "", time.Now().Add(time.Minute))
	mustReject(t, send(ctx, hc, u2, newPRNG(3, size+1), size+1, nil), "8 MiB + 1 byte")
	mustMissing(t, s, "big/over.bin", "after an oversize upload")
}
