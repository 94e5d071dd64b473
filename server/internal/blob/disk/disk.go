// Package disk is a [blob.Store] that keeps objects as files on the local
// disk and serves presigned uploads and downloads itself, through the
// http.Handler returned by [Store.Handler], which the server mounts at
// "/files/":
//
//	store := disk.New("./data/files", "https://api.example.com", secret)
//	mux.Handle("/files/", store.Handler())
//
// Presigned URLs look like <baseURL>/files/<key>?exp=<unix>&sig=<base64url
// HMAC-SHA256>. For uploads the MAC also covers the size, content type and
// (optional) sha256 the server chose, which the handler takes from the
// request's Content-Length, Content-Type and X-Content-Sha256 headers, so an
// upload of another length or type does not verify; the bytes are hashed while
// they stream to a temp file and an upload whose sha256 differs is rejected.
//
// Layout under dir: objects/<key> holds the bytes, meta/<key> a JSON sidecar
// (content type, size, sha256), tmp/ uploads in progress. A commit renames the
// finished temp file into place, so readers never see a partial object.
package disk

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"kiln/server/internal/blob"
)

// SHA256Header is the request header that carries the hex sha256 of an
// upload bound to one (it is in Upload.Headers when so).
const SHA256Header = "X-Content-Sha256"

// DefaultContentType is used by Put when it is given no content type, and
// reported for objects without a readable sidecar.
const DefaultContentType = "application/octet-stream"

const (
	objectsDir = "objects"
	metaDir    = "meta"
	tmpDir     = "tmp"
	macContext = "kiln-blob-disk-v1"
)

// Store is a disk-backed blob.Store. Create it with New.
type Store struct {
	dir     string
	baseURL string
	secret  []byte

	// mu orders commits and deletes (write lock: a rename of the data file
	// plus its sidecar) against reads of a data file together with its
	// sidecar (read lock). Nothing slow runs under it: bytes are written to
	// temp files and streamed to clients outside the lock.
	mu sync.RWMutex

	now func() time.Time // for tests
}

var _ blob.Store = (*Store)(nil)

// New returns a Store keeping objects under dir (Kiln's default is
// ./data/files; it is created on first write). baseURL is the public URL
// prefix of the server that mounts Handler at "/files/" (e.g.
// "https://api.example.com"); secret keys the HMAC of signed URLs and must be
// non-empty (32 random bytes is right). New panics on an empty secret.
func New(dir string, baseURL string, secret []byte) *Store {
	if len(secret) == 0 {
		panic("disk.New: empty secret")
	}
	return &Store{
		dir:     filepath.Clean(dir),
		baseURL: strings.TrimRight(baseURL, "/"),
		secret:  slices.Clone(secret),
		now:     time.Now,
	}
}

// ---------------------------------------------------------------- paths ---

func (s *Store) objectPath(key string) string {
	return filepath.Join(s.dir, objectsDir, filepath.FromSlash(key))
}

func (s *Store) metaPath(key string) string {
	return filepath.Join(s.dir, metaDir, filepath.FromSlash(key))
}

// escapeKey escapes each segment of a (valid) key for use in a URL path.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// isNotExist also covers ENOTDIR: "a/b" when "a" is a file.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// ------------------------------------------------------------- signing ---

// mac returns the base64url HMAC-SHA256 of the fields, separated by "\n"
// (keys and content types are validated to contain no control characters,
// so the encoding is unambiguous).
func (s *Store) mac(fields ...string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(macContext))
	for _, f := range fields {
		m.Write([]byte{'\n'})
		m.Write([]byte(f))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Store) putMAC(key string, exp int64, size int64, contentType, sha string) string {
	return s.mac("PUT", key, strconv.FormatInt(exp, 10), strconv.FormatInt(size, 10), contentType, sha)
}

func (s *Store) getMAC(key string, exp int64) string {
	return s.mac("GET", key, strconv.FormatInt(exp, 10))
}

func (s *Store) signedURL(key string, exp int64, sig string) string {
	return s.baseURL + "/files/" + escapeKey(key) + "?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + sig
}

// PresignPut implements blob.Store. The returned headers are Content-Type,
// Content-Length and, when sha256Hex is given, X-Content-Sha256.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType, sha256Hex string, expires time.Time) (blob.Upload, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Upload{}, err
	}
	if size < 0 {
		return blob.Upload{}, fmt.Errorf("disk: negative size %d", size)
	}
	if err := blob.ValidateContentType(contentType); err != nil {
		return blob.Upload{}, err
	}
	sha, err := blob.NormalizeSHA256(sha256Hex)
	if err != nil {
		return blob.Upload{}, err
	}
	exp := expires.Unix()
	h := map[string]string{
		"Content-Type":   contentType,
		"Content-Length": strconv.FormatInt(size, 10),
	}
	if sha != "" {
		h[SHA256Header] = sha
	}
	return blob.Upload{
		URL:       s.signedURL(key, exp, s.putMAC(key, exp, size, contentType, sha)),
		Method:    "PUT",
		Headers:   h,
		ExpiresAt: time.Unix(exp, 0),
	}, nil
}

// PresignGet implements blob.Store. The URL also serves HEAD.
func (s *Store) PresignGet(ctx context.Context, key string, expires time.Time) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	exp := expires.Unix()
	return s.signedURL(key, exp, s.getMAC(key, exp)), nil
}

// ------------------------------------------------------------ metadata ---

type meta struct {
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
}

// readMeta returns the sidecar of key, or a default when it is missing,
// unreadable or stale (its size differs from the data file's).
func (s *Store) readMeta(key string, size int64) meta {
	m := meta{ContentType: DefaultContentType, Size: size}
	b, err := os.ReadFile(s.metaPath(key))
	if err != nil {
		return m
	}
	var got meta
	if json.Unmarshal(b, &got) != nil || got.Size != size {
		return m
	}
	if got.ContentType == "" {
		got.ContentType = DefaultContentType
	}
	return got
}

// open opens key's data file and reads its sidecar, consistently with
// respect to commits. ErrNotFound when missing.
func (s *Store) open(key string) (*os.File, blob.Object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, err := os.Open(s.objectPath(key))
	if err != nil {
		if isNotExist(err) {
			return nil, blob.Object{}, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
		}
		return nil, blob.Object{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, blob.Object{}, err
	}
	if !fi.Mode().IsRegular() { // a "directory" made by longer keys
		f.Close()
		return nil, blob.Object{}, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
	}
	m := s.readMeta(key, fi.Size())
	return f, blob.Object{Key: key, Size: fi.Size(), ContentType: m.ContentType, SHA256: m.SHA256, ModTime: fi.ModTime()}, nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Object, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Object{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	fi, err := os.Stat(s.objectPath(key))
	if err != nil {
		if isNotExist(err) {
			return blob.Object{}, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
		}
		return blob.Object{}, err
	}
	if !fi.Mode().IsRegular() {
		return blob.Object{}, fmt.Errorf("%w: %s", blob.ErrNotFound, key)
	}
	m := s.readMeta(key, fi.Size())
	return blob.Object{Key: key, Size: fi.Size(), ContentType: m.ContentType, SHA256: m.SHA256, ModTime: fi.ModTime()}, nil
}

// Open implements blob.Store. The returned reader is an *os.File (so it is
// also an io.Seeker).
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	f, _, err := s.open(key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ------------------------------------------------------------- writing ---

// errSize and errDigest are returned by receive for bodies that do not match
// what was announced; the handler maps them to 400.
var (
	errTooShort = errors.New("disk: body shorter than the declared size")
	errTooLong  = errors.New("disk: body longer than the declared size")
	errDigest   = errors.New("disk: body does not match the declared sha256")
)

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// receive streams exactly size bytes from r into a new temp file, hashing
// them; it returns the temp file's path and the hex sha256. On any error the
// temp file is removed. A body with more than size bytes fails with errTooLong
// (or with r's own error, e.g. *http.MaxBytesError) after reading at most
// size+1 bytes; one with fewer fails with errTooShort (or r's error).
func (s *Store) receive(ctx context.Context, r io.Reader, size int64, wantSHA string) (tmpPath, sha string, err error) {
	dir := filepath.Join(s.dir, tmpDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", "", err
	}
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var h hash.Hash = sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, size+1))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w (%d of %d bytes): %w", errTooShort, n, size, err)
		}
		return "", "", err
	}
	switch {
	case n < size:
		return "", "", fmt.Errorf("%w (%d of %d bytes)", errTooShort, n, size)
	case n > size:
		return "", "", fmt.Errorf("%w (%d bytes)", errTooLong, size)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	if wantSHA != "" && sha != wantSHA {
		return "", "", fmt.Errorf("%w (got %s, want %s)", errDigest, sha, wantSHA)
	}
	if err := f.Sync(); err != nil {
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	return f.Name(), sha, nil
}

// commit moves a received temp file to key and writes its sidecar.
func (s *Store) commit(key, tmpPath string, m meta) (err error) {
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	mf, err := os.CreateTemp(filepath.Dir(tmpPath), "meta-*")
	if err != nil {
		os.Remove(tmpPath)
		return err
	}
	_, werr := mf.Write(mb)
	if cerr := mf.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmpPath)
		os.Remove(mf.Name())
		return werr
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if err != nil {
			os.Remove(tmpPath)
			os.Remove(mf.Name())
		}
	}()
	obj, mp := s.objectPath(key), s.metaPath(key)
	if err := os.MkdirAll(filepath.Dir(obj), 0o750); err != nil {
		return fmt.Errorf("disk: cannot store %q: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(mp), 0o750); err != nil {
		return fmt.Errorf("disk: cannot store %q: %w", key, err)
	}
	// Data first: a crash between the renames leaves a stale sidecar at
	// worst, which readMeta detects by its size (or a missing one).
	if err := os.Rename(tmpPath, obj); err != nil {
		return fmt.Errorf("disk: cannot store %q: %w", key, err)
	}
	if err := os.Rename(mf.Name(), mp); err != nil {
		os.Remove(mf.Name())
		return fmt.Errorf("disk: cannot store metadata of %q: %w", key, err)
	}
	return nil
}

// Put implements blob.Store. An empty contentType is stored as
// application/octet-stream.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("disk: negative size %d", size)
	}
	if contentType == "" {
		contentType = DefaultContentType
	}
	if err := blob.ValidateContentType(contentType); err != nil {
		return err
	}
	tmp, sha, err := s.receive(ctx, r, size, "")
	if err != nil {
		return fmt.Errorf("disk: put %q: %w", key, err)
	}
	return s.commit(key, tmp, meta{ContentType: contentType, Size: size, SHA256: sha})
}

// Copy implements blob.Store: the bytes of src, read from the data file
// opened at the time of the call (a later commit to src replaces the
// directory entry, not the open file), stream to a temp file that is
// committed at dst with src's content type and the sha256 computed on the
// way.
func (s *Store) Copy(ctx context.Context, src, dst string) (blob.Object, error) {
	if err := blob.ValidateKey(src); err != nil {
		return blob.Object{}, err
	}
	if err := blob.ValidateKey(dst); err != nil {
		return blob.Object{}, err
	}
	f, obj, err := s.open(src)
	if err != nil {
		return blob.Object{}, err
	}
	defer f.Close()
	tmp, sha, err := s.receive(ctx, f, obj.Size, "")
	if err != nil {
		return blob.Object{}, fmt.Errorf("disk: copy %q to %q: %w", src, dst, err)
	}
	if err := s.commit(dst, tmp, meta{ContentType: obj.ContentType, Size: obj.Size, SHA256: sha}); err != nil {
		return blob.Object{}, err
	}
	return s.Stat(ctx, dst)
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.objectPath(key)
	fi, err := os.Lstat(obj)
	switch {
	case isNotExist(err):
		return nil
	case err != nil:
		return err
	case fi.IsDir(): // only a prefix of longer keys: nothing stored here
		return nil
	}
	if err := os.Remove(obj); err != nil && !isNotExist(err) {
		return err
	}
	if err := os.Remove(s.metaPath(key)); err != nil && !isNotExist(err) {
		return err
	}
	s.pruneDirs(filepath.Join(s.dir, objectsDir), filepath.Dir(obj))
	s.pruneDirs(filepath.Join(s.dir, metaDir), filepath.Dir(s.metaPath(key)))
	return nil
}

// pruneDirs removes dir and its parents up to (excluding) root while they
// are empty. Called with mu held, so no commit is creating them meanwhile.
func (s *Store) pruneDirs(root, dir string) {
	for dir != root && strings.HasPrefix(dir, root+string(filepath.Separator)) {
		if os.Remove(dir) != nil { // not empty (or gone)
			return
		}
		dir = filepath.Dir(dir)
	}
}

// List implements blob.Store: keys come in lexical (byte) order, like S3.
// Objects written or deleted during the listing may or may not be seen.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Object) error) error {
	if err := blob.ValidatePrefix(prefix); err != nil {
		return err
	}
	// Start at the deepest directory the prefix names.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	root := filepath.Join(s.dir, objectsDir)
	return s.walk(ctx, root, start, prefix, fn)
}

// walk lists directory dirKey ("" = root) recursively in key order: within a
// directory, entries sort by name, with a directory's name taken as name+"/"
// (all its keys start so), which makes the overall order the byte order of
// the full keys.
func (s *Store) walk(ctx context.Context, root, dirKey, prefix string, fn func(blob.Object) error) error {
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(dirKey)))
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	sortName := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return cmp.Compare(sortName(a), sortName(b)) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := e.Name()
		if dirKey != "" {
			key = dirKey + "/" + key
		}
		if e.IsDir() {
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := s.walk(ctx, root, key, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) || blob.ValidateKey(key) != nil {
			continue
		}
		obj, err := s.Stat(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if err := fn(obj); err != nil {
			return err
		}
	}
	return nil
}
