package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"kiln/graph"
	"kiln/server/internal/blob"
	"kiln/server/internal/blob/disk"
	"kiln/server/internal/blob/s3"
	"kiln/server/internal/config"
	"kiln/server/internal/keyfile"
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
	base := cfg.PublicURL
	if base == "" {
		host, port, _ := net.SplitHostPort(addr.String())
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	st := disk.New(cfg.Dir, base, secret)
	return st, st, nil
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

// fileStore adapts a blob.Store to the graph.FileStore the resolvers use.
type fileStore struct{ blob.Store }

func (s fileStore) PresignPut(ctx context.Context, key string, size int64, contentType, sha256Hex string, expires time.Time) (graph.UploadTarget, error) {
	u, err := s.Store.PresignPut(ctx, key, size, contentType, sha256Hex, expires)
	if err != nil {
		return graph.UploadTarget{}, err
	}
	return graph.UploadTarget{URL: u.URL, Method: u.Method, Headers: u.Headers, ExpiresAt: u.ExpiresAt}, nil
}

func (s fileStore) Stat(ctx context.Context, key string) (graph.StoredObject, error) {
	o, err := s.Store.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return graph.StoredObject{}, fmt.Errorf("%w: %w", graph.ErrObjectNotFound, err)
	}
	if err != nil {
		return graph.StoredObject{}, err
	}
	return graph.StoredObject{Size: o.Size, ContentType: o.ContentType, SHA256: o.SHA256}, nil
}

func (s fileStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	return s.Store.Put(ctx, key, r, size, contentType)
}

// janitor removes unreferenced and abandoned files every interval until
// ctx ends. Several instances may run it at once (see graph.SweepFiles).
func janitor(ctx context.Context, r *graph.Resolver, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.SweepFiles(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "file cleanup", "err", err, "removed", n)
		case n > 0:
			log.InfoContext(ctx, "file cleanup", "removed", n)
		}
	}
}
