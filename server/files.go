package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/files"
	"kiln/runtime/store"
	"kiln/runtime/store/file"
	"kiln/server/internal/auth"
	"kiln/server/internal/blob"
	"kiln/server/internal/blob/disk"
	"kiln/server/internal/blob/s3"
	"kiln/server/internal/config"
	"kiln/server/internal/database"
	"kiln/server/internal/keyfile"
	"kiln/server/internal/ratelimit"
	"kiln/server/internal/request"
)

// openFiles returns the blob store of cfg: S3 when a bucket is configured,
// else the local disk (whose signed URLs Kiln serves at /files/; disk is
// then non-nil so the caller mounts its handler). addr is the listen
// address, the default base of local URLs.
func openFiles(ctx context.Context, cfg config.FilesConfig, dataDir string, addr net.Addr) (blob.Store, *disk.Store, error) {
	if c := cfg.S3; c != nil {
		st, err := s3.New(ctx, s3.Config{Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket,
			AccessKey: c.AccessKey, SecretKey: c.SecretKey, PathStyle: c.PathStyle, PublicEndpoint: c.PublicEndpoint})
		if err != nil {
			return nil, nil, fmt.Errorf("S3 file store (KILN_S3_*): %w", err)
		}
		return st, nil, nil
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		var err error
		if secret, err = loadOrCreateSecret(filepath.Join(dataDir, "files-secret")); err != nil {
			return nil, nil, fmt.Errorf("file URL secret: %w", err)
		}
	}
	st := disk.New(cfg.Dir, publicURL(cfg, addr), secret)
	return st, st, nil
}

// publicURL is the base URL of the server's own file URLs: KILN_PUBLIC_URL,
// else the listen address.
func publicURL(cfg config.FilesConfig, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// imageOptions configures image renditions: the allowed sizes, and the
// secret of their URLs, KILN_FILES_SECRET or else one derived from the
// JWT signing key (shared by every instance, on disk and S3 alike).
func imageOptions(cfg config.FilesConfig, keys *auth.KeySet, addr net.Addr) (files.Images, error) {
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		var err error
		if secret, err = keys.DeriveSecret("image renditions"); err != nil {
			return files.Images{}, fmt.Errorf("image rendition secret: %w", err)
		}
	}
	return files.Images{Sizes: cfg.ImageSizes, Secret: secret, BaseURL: publicURL(cfg, addr)}, nil
}

// loadOrCreateSecret reads a hex key from path, creating a random one first
// (once, whatever the number of instances starting on the same directory).
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := keyfile.LoadOrCreate(path, func() ([]byte, error) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(key) + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("%s: not a hex key of at least 16 bytes", path)
	}
	return key, nil
}

// fileStore adapts a blob.Store to the files.Store the resolvers use.
type fileStore struct{ blob.Store }

func (s fileStore) PresignPut(ctx context.Context, key string, size int64, contentType, sha256Hex string, expires time.Time) (files.UploadTarget, error) {
	u, err := s.Store.PresignPut(ctx, key, size, contentType, sha256Hex, expires)
	if err != nil {
		return files.UploadTarget{}, err
	}
	return files.UploadTarget{URL: u.URL, Method: u.Method, Headers: u.Headers, ExpiresAt: u.ExpiresAt}, nil
}

// notFound wraps blob.ErrNotFound as files.ErrObjectNotFound too.
func notFound(err error) error {
	if errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("%w: %w", files.ErrObjectNotFound, err)
	}
	return err
}

func storedObject(o blob.Object) files.StoredObject {
	return files.StoredObject{Key: o.Key, Size: o.Size, ContentType: o.ContentType, SHA256: o.SHA256, ModTime: o.ModTime}
}

func (s fileStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	return s.Store.Put(ctx, key, r, size, contentType)
}

func (s fileStore) Copy(ctx context.Context, src, dst string) (files.StoredObject, error) {
	o, err := s.Store.Copy(ctx, src, dst)
	if err != nil {
		return files.StoredObject{}, notFound(err)
	}
	return storedObject(o), nil
}

func (s fileStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	return rc, notFound(err)
}

func (s fileStore) List(ctx context.Context, prefix string, fn func(files.StoredObject) error) error {
	return s.Store.List(ctx, prefix, func(o blob.Object) error { return fn(storedObject(o)) })
}

// uploads enforces the rate limits of uploads: tickets (createUpload,
// uploadFile) and PUTs to local-disk upload URLs each count per client
// address and per user, in buckets of their own (key prefixes), on the
// limiter's backend (memory, or Redis shared by every instance).
type uploads struct {
	limiter *ratelimit.Limiter
	client  *store.Client
	log     *slog.Logger
}

// Rate-limit key prefixes of uploads, apart from those of /graphql.
const (
	ticketKeys = "upload-ticket:"
	putKeys    = "upload-put:"
)

// openUploads returns the upload limits of cfg, on Redis when redisURL is
// set. Close it when done.
func openUploads(ctx context.Context, cfg config.FilesConfig, redisURL string, client *store.Client, log *slog.Logger) (*uploads, error) {
	l, err := ratelimit.Open(ctx, redisURL, cfg.UploadRates, log)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return &uploads{limiter: l, client: client, log: log}, nil
}

// Close releases the limiter's Redis client.
func (u *uploads) Close() error { return u.limiter.Close() }

// fileLimits are the resolver's file limits for cfg, with these rate limits.
func (u *uploads) fileLimits(cfg config.FilesConfig) files.Limits {
	return files.Limits{MaxSize: cfg.MaxSize, TicketTTL: cfg.TicketTTL, MaxURLExpiry: cfg.MaxURLExpiry, UploadTTL: cfg.UploadTTL,
		PendingQuota: cfg.PendingQuota, StorageQuota: cfg.StorageQuota,
		AnonPendingQuota: cfg.AnonPendingQuota, AnonStorageQuota: cfg.AnonStorageQuota,
		Throttle: u.throttle}
}

// allow counts one event against the client address and the user (either
// may be empty) under prefix; ok false comes with how long to wait.
func (u *uploads) allow(ctx context.Context, prefix, ip, user string) (bool, time.Duration) {
	if ip != "" {
		if ok, wait := u.limiter.Allow(ctx, prefix+ratelimit.IPKey(ip)); !ok {
			return false, wait
		}
	}
	if user != "" {
		if ok, wait := u.limiter.Allow(ctx, ratelimit.UserKey(prefix+user)); !ok {
			return false, wait
		}
	}
	return true, 0
}

// throttle is files.Limits.Throttle: upload tickets per client address and
// per user; admins are not limited.
func (u *uploads) throttle(ctx context.Context) error {
	v := access.From(ctx)
	if v != nil && v.Admin {
		return nil
	}
	ip := request.ClientIP(ctx)
	user := ""
	if v != nil {
		user = v.ID.String()
	}
	if ok, wait := u.allow(ctx, ticketKeys, ip, user); !ok {
		return &uploadRateError{wait: wait}
	}
	return nil
}

// uploadRateError refuses an upload ticket: extensions.code RATE_LIMITED,
// with retryAfter in seconds.
type uploadRateError struct{ wait time.Duration }

func (e *uploadRateError) Error() string {
	return fmt.Sprintf("too many uploads, retry in %d s", ratelimit.RetryAfterSeconds(e.wait))
}

// Code is extensions.code.
func (e *uploadRateError) Code() string { return ratelimit.CodeRateLimited }

// Extensions are added to the GraphQL error.
func (e *uploadRateError) Extensions() map[string]any {
	return map[string]any{"code": ratelimit.CodeRateLimited, "retryAfter": ratelimit.RetryAfterSeconds(e.wait)}
}

// Codes of the answers guard gives.
const (
	codeUploadClosed = "UPLOAD_CLOSED"
	codeInternal     = "INTERNAL_SERVER_ERROR"
)

// guard wraps the local-disk file handler. A PUT (an upload to a ticket's
// URL) is limited per client address; it is then accepted only for the key
// of a file that is still pending, so that a ticket is void once its file
// is completed (or refused, expired, removed): 410 Gone. Finally it is
// limited per uploader. Over a limit: 429 with Retry-After. GET and HEAD
// pass through.
func (u *uploads) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		ip := request.ClientIP(ctx)
		if ok, wait := u.allow(ctx, putKeys, ip, ""); !ok {
			tooManyUploads(w, wait)
			return
		}
		key := strings.TrimPrefix(r.URL.Path, "/files/")
		f, err := u.client.File.Query().Where(file.Key(key)).Only(access.System(ctx))
		switch {
		case store.IsNotFound(err) || err == nil && f.Status != file.StatusPending:
			writeUploadError(w, http.StatusGone, codeUploadClosed, "this upload URL is no longer valid: its file was completed, refused or removed; call createUpload to upload new bytes", nil)
			return
		case err != nil:
			u.log.ErrorContext(ctx, "upload: look up file", "err", err)
			writeUploadError(w, http.StatusInternalServerError, codeInternal, "internal error", nil)
			return
		}
		if f.UploaderID != uuid.Nil { // uuid.Nil: an admin's upload
			if ok, wait := u.allow(ctx, putKeys, "", f.UploaderID.String()); !ok {
				tooManyUploads(w, wait)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// writeUploadError answers a refused upload with a JSON error shaped like
// GraphQL's: message, and extensions with code.
func writeUploadError(w http.ResponseWriter, status int, code, msg string, ext map[string]any) {
	if ext == nil {
		ext = map[string]any{}
	}
	ext["code"] = code
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"message": msg, "extensions": ext}}})
}

// tooManyUploads answers 429 with Retry-After (and retryAfter).
func tooManyUploads(w http.ResponseWriter, wait time.Duration) {
	n := ratelimit.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(n))
	writeUploadError(w, http.StatusTooManyRequests, ratelimit.CodeRateLimited, fmt.Sprintf("too many uploads, retry in %d s", n), map[string]any{"retryAfter": n})
}

// janitor removes unreferenced and abandoned files every interval until
// ctx ends. Several instances may run it at once (see files.Service.Sweep).
func janitor(ctx context.Context, svc *files.Service, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		return
	}
	ctx = database.Background(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := svc.Sweep(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "file cleanup", "err", err, "removed", n)
		case n > 0:
			log.InfoContext(ctx, "file cleanup", "removed", n)
		}
	}
}
