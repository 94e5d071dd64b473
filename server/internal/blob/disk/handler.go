package disk

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"kiln/server/internal/blob"
)

// Handler returns the http.Handler that serves presigned URLs. Mount it at
// "/files/" (it expects the full request path, "/files/<key>"):
//
//	mux.Handle("/files/", store.Handler())
//
// PUT stores an upload signed by PresignPut: the signature, expiry, exact
// Content-Length (chunked bodies get 411), Content-Type and, when bound, the
// sha256 are verified; the body streams to a temp file that is renamed into
// place only when complete (a body longer than signed gets 413, a shorter one
// or a wrong sha256 400). GET and HEAD serve a URL signed by PresignGet, with
// Range and conditional request support, Content-Type from the sidecar and
// Cache-Control: private. Bad or expired signatures get 403.
func (s *Store) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Store) serveHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, "/files/")
	if !ok || blob.ValidateKey(key) != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodPut:
		s.servePut(w, r, key)
	case http.MethodGet, http.MethodHead:
		s.serveGet(w, r, key)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// signature returns the exp and sig query parameters; ok is false when they
// are missing or malformed.
func signature(r *http.Request) (exp int64, sig string, ok bool) {
	q := r.URL.Query()
	if len(q["exp"]) != 1 || len(q["sig"]) != 1 {
		return 0, "", false
	}
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil {
		return 0, "", false
	}
	return exp, q.Get("sig"), true
}

// verify checks sig against want (constant time) and then the expiry,
// writing a 403 and returning false on failure.
func (s *Store) verify(w http.ResponseWriter, sig, want string, exp int64) bool {
	if !hmac.Equal([]byte(sig), []byte(want)) {
		http.Error(w, "forbidden: bad signature (the URL is bound to its key, expiry, method, and for uploads to the exact Content-Length, Content-Type and "+SHA256Header+" headers it was issued with)", http.StatusForbidden)
		return false
	}
	if s.now().Unix() >= exp {
		http.Error(w, "forbidden: URL expired", http.StatusForbidden)
		return false
	}
	return true
}

// singleHeader returns the only value of header h ("" if absent); ok is
// false when it is repeated.
func singleHeader(r *http.Request, h string) (string, bool) {
	v := r.Header.Values(h)
	switch len(v) {
	case 0:
		return "", true
	case 1:
		return v[0], true
	}
	return "", false
}

func (s *Store) servePut(w http.ResponseWriter, r *http.Request, key string) {
	exp, sig, ok := signature(r)
	if !ok {
		http.Error(w, "forbidden: missing or malformed signature", http.StatusForbidden)
		return
	}
	if r.ContentLength < 0 {
		http.Error(w, "length required: send the exact Content-Length the upload was issued for", http.StatusLengthRequired)
		return
	}
	ct, ok1 := singleHeader(r, "Content-Type")
	sha, ok2 := singleHeader(r, SHA256Header)
	if !ok1 || !ok2 {
		http.Error(w, "bad request: repeated Content-Type or "+SHA256Header, http.StatusBadRequest)
		return
	}
	sha = strings.ToLower(sha)
	if !s.verify(w, sig, s.putMAC(key, exp, r.ContentLength, ct, sha), exp) {
		return
	}
	size := r.ContentLength
	// The server already stops at Content-Length; MaxBytesReader keeps the
	// limit even for a body that would run longer (413 below).
	body := http.MaxBytesReader(w, r.Body, size)
	tmp, got, err := s.receive(r.Context(), body, size, sha)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig), errors.Is(err, errTooLong):
			http.Error(w, fmt.Sprintf("request entity too large: the upload is bound to %d bytes", size), http.StatusRequestEntityTooLarge)
		case errors.Is(err, errTooShort):
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		case errors.Is(err, errDigest):
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		case r.Context().Err() != nil:
			// Client went away; nobody reads the answer.
			http.Error(w, "request canceled", http.StatusBadRequest)
		default: // disk full, permissions...: no paths in the answer
			http.Error(w, "internal error: could not store the upload", http.StatusInternalServerError)
		}
		return
	}
	if err := s.commit(key, tmp, meta{ContentType: ct, Size: size, SHA256: got}); err != nil {
		http.Error(w, "internal error: could not store the upload", http.StatusInternalServerError)
		return
	}
	w.Header().Set("ETag", `"`+got+`"`)
	w.WriteHeader(http.StatusOK)
}

func (s *Store) serveGet(w http.ResponseWriter, r *http.Request, key string) {
	exp, sig, ok := signature(r)
	if !ok {
		http.Error(w, "forbidden: missing or malformed signature", http.StatusForbidden)
		return
	}
	if !s.verify(w, sig, s.getMAC(key, exp), exp) {
		return
	}
	f, obj, err := s.open(key)
	if errors.Is(err, blob.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", obj.ContentType)
	maxAge := max(exp-s.now().Unix(), 0)
	h.Set("Cache-Control", "private, max-age="+strconv.FormatInt(maxAge, 10))
	// Uploaded bytes are untrusted: never let a browser run them as a page of
	// this origin.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	if obj.SHA256 != "" {
		h.Set("ETag", `"`+obj.SHA256+`"`)
	}
	http.ServeContent(w, r, "", obj.ModTime.Truncate(time.Second), f)
}
