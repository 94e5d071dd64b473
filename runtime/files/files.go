// Package files is the upload runtime every Kiln app shares: upload
// tickets whose bytes go straight to the blob store, completion into
// immutable content-addressed objects (sha256 computed or verified by the
// server), per-user quotas, attaching files to records under each field's
// @file rules, short-lived download URLs for viewers who may see a file,
// and the janitor that removes files nothing references. The generated
// code describes the app's File fields (Schema); the server provides the
// blob store and the Kiln store client.
package files

import (
	"context"
	"errors"
	"io"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"kiln/runtime/store"
)

// Service is the file runtime of one app.
type Service struct {
	// Blobs stores the bytes (nil: file operations fail).
	Blobs Store
	// DB is the client of Kiln's tables (kiln_files).
	DB *store.Client
	// Limits bound uploads and downloads (zero fields: DefaultLimits).
	Limits Limits
	// Schema describes the app's File fields.
	Schema Schema
	// Images configures image renditions (File.url(transform:)).
	Images Images

	renditions renditions
}

// Schema is what the runtime needs of an app's File fields; the generated
// code provides it.
type Schema struct {
	// Fields are the File fields, by "Type.field".
	Fields map[string]Field
	// Referenced is a predicate on kiln_files that matches the files a
	// record references.
	Referenced func(*sql.Selector)
	// ReadableRecord reports whether the viewer of ctx may read a record
	// that references the file, through a field whose own rules let them
	// read it.
	ReadableRecord func(ctx context.Context, id uuid.UUID) (bool, error)
}

// Mutations are the file mutations; they run outside the per-mutation
// transaction (they talk to the object store and clean up on failure).
var Mutations = []string{"createUpload", "completeUpload", "uploadFile"}

// UploadInput declares an upload (GraphQL CreateUploadInput).
type UploadInput struct {
	Filename    string  `json:"filename"`
	ContentType string  `json:"contentType"`
	Size        int     `json:"size"`
	Sha256      *string `json:"sha256,omitempty"`
}

// Ticket says where and how to upload the bytes of a new file (GraphQL
// UploadTicket).
type Ticket struct {
	FileID    uuid.UUID `json:"fileId"`
	URL       string    `json:"url"`
	Method    string    `json:"method"`
	Headers   []*Header `json:"headers"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Header is a header to send with an upload (GraphQL UploadHeader).
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (s *Service) referenced() func(*sql.Selector) {
	if s.Schema.Referenced == nil {
		return func(sel *sql.Selector) { sel.Where(sql.False()) }
	}
	return s.Schema.Referenced
}

func (s *Service) blobs() (Store, error) {
	if s.Blobs == nil {
		return nil, errors.New("no file store configured")
	}
	return s.Blobs, nil
}

// Store is the object storage behind File fields. Keys are chosen by
// the server. The server injects a blob store (local disk or S3).
type Store interface {
	// PresignPut returns how a client uploads exactly one object of this
	// size, type (and sha256 when not "") to key, until expires.
	PresignPut(ctx context.Context, key string, size int64, contentType, sha256Hex string, expires time.Time) (UploadTarget, error)
	// PresignGet returns a download URL valid until expires.
	PresignGet(ctx context.Context, key string, expires time.Time) (string, error)
	// Put stores exactly size bytes from r at key.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Copy copies the object at src to dst within the store, replacing dst.
	// The copy is a snapshot: writes to src afterwards do not change it. It
	// describes dst, with SHA256 "" when the store did not compute it; an
	// error wrapping ErrObjectNotFound when src is missing.
	Copy(ctx context.Context, src, dst string) (StoredObject, error)
	// Open returns the bytes of an object; an error wrapping
	// ErrObjectNotFound when it is missing. The caller closes the reader.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// List calls fn for every object whose key starts with prefix (Key,
	// Size and ModTime are set); an error from fn stops the listing and is
	// returned.
	List(ctx context.Context, prefix string, fn func(StoredObject) error) error
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// UploadTarget is how to upload one object.
type UploadTarget struct {
	URL       string
	Method    string
	Headers   map[string]string
	ExpiresAt time.Time
}

// StoredObject describes a stored object.
type StoredObject struct {
	Key         string
	Size        int64
	ContentType string
	SHA256      string // lowercase hex, "" when unknown
	ModTime     time.Time
}

// ErrObjectNotFound is wrapped by Store errors about a missing object.
var ErrObjectNotFound = errors.New("object not found")

// Limits configure uploads and downloads.
type Limits struct {
	// MaxSize bounds every file, and files of fields without maxSize.
	MaxSize int64
	// TicketTTL is how long an upload URL stays valid.
	TicketTTL time.Duration
	// MaxURLExpiry bounds File.url(expiresIn:).
	MaxURLExpiry time.Duration
	// UploadTTL is how long an unreferenced file is kept after its upload
	// or last attachment before the janitor removes it.
	UploadTTL time.Duration
	// PendingQuota bounds the bytes of one user's uploads in progress
	// (files created by createUpload or uploadFile, neither completed nor
	// expired); StorageQuota bounds the bytes of one user's files, pending
	// and completed. AnonPendingQuota and AnonStorageQuota apply to
	// anonymous accounts instead. Zero means no quota (these fields take no
	// default); admins have none.
	PendingQuota, StorageQuota, AnonPendingQuota, AnonStorageQuota int64
	// Throttle, when set, is called before every createUpload and
	// uploadFile; an error (such as a rate limit) refuses the upload and is
	// returned as it is.
	Throttle func(ctx context.Context) error
}

// DefaultLimits are the limits used for zero fields of Service.Limits.
var DefaultLimits = Limits{MaxSize: 100 << 20, TicketTTL: 15 * time.Minute, MaxURLExpiry: time.Hour, UploadTTL: 24 * time.Hour}

func (s *Service) limits() Limits {
	l := s.Limits
	d := DefaultLimits
	if l.MaxSize <= 0 {
		l.MaxSize = d.MaxSize
	}
	if l.TicketTTL <= 0 {
		l.TicketTTL = d.TicketTTL
	}
	if l.MaxURLExpiry <= 0 {
		l.MaxURLExpiry = d.MaxURLExpiry
	}
	if l.UploadTTL <= 0 {
		l.UploadTTL = d.UploadTTL
	}
	return l
}
