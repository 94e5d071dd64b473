// Package blob is Kiln's file-storage layer: a small interface over object
// storage with two implementations, [kiln/server/internal/blob/disk] (files on
// the local disk, served by Kiln itself) and [kiln/server/internal/blob/s3]
// (any S3-compatible service).
//
// Keys are always chosen by the server (for example "uploads/<uuid>"), never
// by clients. Clients move bytes directly with presigned URLs: the server
// calls [Store.PresignPut] to hand a mobile app a URL, method and headers with
// which it uploads exactly one object of an agreed size and content type (and,
// optionally, sha256), then checks the result with [Store.Stat]. Downloads use
// short-lived [Store.PresignGet] URLs. [Store.Put] and [Store.Open] move bytes
// through the server (e.g. GraphQL multipart uploads). [Store.Copy] copies an
// object within the store, so that an upload can be moved from the key a
// client was given a URL for (which cannot be revoked on S3) to a key no
// client can write.
//
// The package blobtest holds the conformance suite every implementation passes.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Object describes a stored object.
type Object struct {
	Key         string
	Size        int64
	ContentType string
	SHA256      string // lowercase hex; "" if unknown
	ModTime     time.Time
}

// Store keeps objects under keys chosen by the server (never by clients).
//
// Implementations are safe for concurrent use.
type Store interface {
	// PresignPut returns a URL, method and headers with which a client uploads
	// exactly one object of the given size and content type to key, valid
	// until expires. The URL is bound to size and content type (signed
	// Content-Length and Content-Type headers for S3; an HMAC over
	// key|size|type|expiry for disk) and, when sha256Hex is not "", to the
	// object's sha256 (x-amz-checksum-sha256 for S3; verified by the disk
	// handler): an upload with other bytes, another length or another
	// Content-Type is rejected. The client must send every header in
	// Upload.Headers verbatim (Content-Length included).
	PresignPut(ctx context.Context, key string, size int64, contentType, sha256Hex string, expires time.Time) (Upload, error)
	// PresignGet returns a short-lived download URL, valid until expires.
	PresignGet(ctx context.Context, key string, expires time.Time) (string, error)
	// Stat describes the object at key; ErrNotFound when missing.
	Stat(ctx context.Context, key string) (Object, error)
	// Put stores exactly size bytes read from r at key (server-side upload,
	// e.g. the GraphQL multipart path). It fails if r yields fewer or more
	// than size bytes, in which case nothing is stored.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Open returns the object's bytes; ErrNotFound when missing. The caller
	// closes the reader.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Copy copies the object at src to dst within the store (on S3 the
	// bytes do not pass through the server), replacing dst, with src's size
	// and content type. The copy is a snapshot: writes to src afterwards do
	// not change dst. It returns dst as Stat describes it, with SHA256 set
	// when the store computed it from the copied bytes (always on disk; on
	// S3 when the service computes copy checksums); ErrNotFound when src is
	// missing.
	Copy(ctx context.Context, src, dst string) (Object, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in
	// lexical key order. An error from fn stops the listing and is returned.
	// ContentType and SHA256 may be "" in listed objects (S3 listings do not
	// carry them); Stat has them.
	List(ctx context.Context, prefix string, fn func(Object) error) error
}

// Upload tells a client how to upload one object: send Method to URL with
// every header in Headers (Content-Length included), body = the object's bytes.
type Upload struct {
	URL       string
	Method    string
	Headers   map[string]string
	ExpiresAt time.Time
}

// ErrNotFound is returned (possibly wrapped) when an object does not exist.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned (wrapped) for a key that ValidateKey rejects.
var ErrInvalidKey = errors.New("blob: invalid key")

// MaxKeyLen is the longest key accepted, in bytes (S3's limit).
const MaxKeyLen = 1024

// ValidateKey reports whether key is acceptable to every Store: a non-empty
// UTF-8 string of at most MaxKeyLen bytes, made of "/"-separated segments
// that are neither empty nor "." or "..", with no leading "/", no backslash
// and no control characters. Errors wrap ErrInvalidKey.
func ValidateKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("absolute path")
	case strings.ContainsRune(key, '\\'):
		return bad("contains a backslash")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return bad("contains a control character")
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad(`"." or ".." path segment`)
		}
	}
	return nil
}

// ValidatePrefix is ValidateKey for List prefixes: "" (everything) is fine,
// and a prefix may end in "/" or in a partial segment.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

// ValidateContentType checks a Content-Type value for use in a presigned
// upload: non-empty, printable ASCII, at most 255 bytes.
func ValidateContentType(ct string) error {
	if ct == "" {
		return errors.New("blob: empty content type")
	}
	if len(ct) > 255 {
		return errors.New("blob: content type too long")
	}
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("blob: invalid character in content type %q", ct)
		}
	}
	if strings.TrimSpace(ct) != ct {
		return fmt.Errorf("blob: content type %q has surrounding spaces", ct)
	}
	return nil
}

// NormalizeSHA256 lowercases a hex sha256 and checks it is 64 hex digits;
// "" stays "".
func NormalizeSHA256(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	h = strings.ToLower(h)
	if len(h) != 64 {
		return "", fmt.Errorf("blob: sha256 %q is not 64 hex digits", h)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("blob: sha256 %q is not 64 hex digits", h)
		}
	}
	return h, nil
}

// EmptySHA256 is the sha256 of zero bytes, in hex.
const EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
