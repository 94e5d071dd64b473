package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"kiln/runtime/store"
	"kiln/runtime/store/file"
)

// Object keys, all chosen by the server:
//
//   - uploads/<id>: where a ticket's URL uploads to (the file's key). A
//     presigned S3 URL cannot be revoked, so this key stays writable until
//     the ticket expires, and nothing is ever served from it.
//   - uploads/<id>.<n>: a snapshot of it taken by completeUpload.
//   - files/<id>/<sha256>: the completed file's bytes, never writable
//     through a URL, named after their hash.
//   - files/<id>: files stored through the server (uploadFile), and every
//     file uploaded before the uploads/ prefix existed.
const (
	stagingPrefix = "uploads/"
	storedPrefix  = "files/"
)

// newKey returns a fresh random object key for a file stored through the
// server; clients never choose keys.
func newKey() string { return storedPrefix + uuid.NewString() }

// newUploadKey returns the key a new upload ticket writes to.
func newUploadKey() string { return stagingPrefix + uuid.NewString() }

// finalKey is where the bytes of a completed upload with this key and hash
// are kept: the key itself for files that were never staged.
func finalKey(key, sha string) string {
	if id, ok := strings.CutPrefix(key, stagingPrefix); ok {
		return storedPrefix + id + "/" + sha
	}
	return key
}

// storedKey is where a file's bytes are served from.
func storedKey(f *store.File) string {
	if f.Sha256 == nil {
		return f.Key
	}
	return finalKey(f.Key, *f.Sha256)
}

// uploadKeyOf maps an object under the staging prefix to the key of the
// file it belongs to (a snapshot to its upload).
func uploadKeyOf(key string) string {
	rest := strings.TrimPrefix(key, stagingPrefix)
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		return stagingPrefix + rest[:i]
	}
	return key
}

// throttle applies Limits.Throttle.
func (s *Service) throttle(ctx context.Context) error {
	if s.Limits.Throttle == nil {
		return nil
	}
	return s.Limits.Throttle(ctx)
}

// checkQuota refuses the new file f (already saved, pending, so that
// concurrent uploads of one user count each other: under a race both may
// be refused, but a quota is never exceeded) when it takes its uploader
// over a quota.
func (s *Service) checkQuota(ctx context.Context, f *store.File) error {
	v := access.From(ctx)
	if v == nil || v.Admin {
		return nil
	}
	l := s.Limits
	pq, sq := l.PendingQuota, l.StorageQuota
	if v.Anonymous {
		pq, sq = l.AnonPendingQuota, l.AnonStorageQuota
	}
	if pq <= 0 && sq <= 0 {
		return nil
	}
	var rows []struct {
		Status string // matched to the columns by lower-cased name
		Sum    int64
	}
	err := s.DB.File.Query().Where(file.UploaderID(f.UploaderID), file.Or(file.StatusEQ(file.StatusReady),
		file.And(file.StatusEQ(file.StatusPending), file.ExpiresAtGT(time.Now())))).
		GroupBy(file.FieldStatus).Aggregate(store.Sum(file.FieldSize)).Scan(ctx, &rows)
	if err != nil {
		return fmt.Errorf("upload quota: %w", err)
	}
	var pending, stored int64
	for _, row := range rows {
		if row.Status == string(file.StatusPending) {
			pending = row.Sum
		} else {
			stored = row.Sum
		}
	}
	size := int64(f.Size)
	switch {
	case pq > 0 && pending > pq:
		return &QuotaError{Quota: "pending", Limit: pq, Used: pending - size, Requested: size}
	case sq > 0 && pending+stored > sq:
		return &QuotaError{Quota: "storage", Limit: sq, Used: pending + stored - size, Requested: size}
	}
	return nil
}

// dropFile deletes the row of a file refused before anything was stored.
func (s *Service) dropFile(ctx context.Context, id uuid.UUID) {
	_ = s.DB.File.DeleteOneID(id).Exec(context.WithoutCancel(ctx))
}

// CreateUpload starts a direct upload: it checks the declaration against the
// schema's File fields and the viewer's quotas, and returns the ticket to
// upload the bytes with.
func (s *Service) CreateUpload(ctx context.Context, in UploadInput) (*Ticket, error) {
	uid, err := uploader(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.blobs()
	if err != nil {
		return nil, err
	}
	if err := s.throttle(ctx); err != nil {
		return nil, err
	}
	sha := ""
	if in.Sha256 != nil {
		sha = *in.Sha256
		if sha == "" {
			return nil, inputError("sha256", ReasonChecksum, "sha256 must be 64 hexadecimal digits")
		}
	}
	sha, err = s.checkUpload(in.Filename, in.ContentType, int64(in.Size), sha)
	if err != nil {
		return nil, err
	}
	// The row comes first: the quota counts it, and an object can only
	// reach the key once the file that owns it exists.
	expires := time.Now().Add(s.limits().TicketTTL)
	c := s.DB.File.Create().SetKey(newUploadKey()).SetFilename(in.Filename).SetContentType(in.ContentType).
		SetSize(in.Size).SetUploaderID(uid).SetExpiresAt(expires).SetStatus(file.StatusPending)
	if sha != "" {
		c.SetSha256(sha)
	}
	f, err := c.Save(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, f); err != nil {
		s.dropFile(ctx, f.ID)
		return nil, err
	}
	up, err := st.PresignPut(ctx, f.Key, int64(in.Size), in.ContentType, sha, expires)
	if err != nil {
		s.dropFile(ctx, f.ID)
		return nil, fmt.Errorf("presign upload: %w", err)
	}
	t := &Ticket{FileID: f.ID, URL: up.URL, Method: up.Method, ExpiresAt: up.ExpiresAt}
	for name, value := range up.Headers {
		t.Headers = append(t.Headers, &Header{Name: name, Value: value})
	}
	sort.Slice(t.Headers, func(i, j int) bool { return t.Headers[i].Name < t.Headers[j].Name })
	return t, nil
}

// ownFile loads a file the viewer uploaded (any file for admins);
// otherwise NOT_FOUND.
func (s *Service) ownFile(ctx context.Context, id uuid.UUID) (*store.File, error) {
	v, skip := access.Bypass(ctx)
	f, err := s.DB.File.Get(ctx, id)
	if store.IsNotFound(err) || err == nil && (f.Status == file.StatusDeleting || !skip && (v == nil || f.UploaderID != v.ID)) {
		return nil, &apierror.NotFoundError{Type: "File", ID: id}
	}
	return f, err
}

// CompleteUpload checks the uploaded object (size, type, checksum), keeps
// it under a key no upload URL can write, and makes the file attachable.
func (s *Service) CompleteUpload(ctx context.Context, id uuid.UUID) (*store.File, error) {
	if _, err := uploader(ctx); err != nil {
		return nil, err
	}
	st, err := s.blobs()
	if err != nil {
		return nil, err
	}
	f, err := s.ownFile(ctx, id)
	if err != nil {
		return nil, err
	}
	if f.Status == file.StatusReady {
		return f, nil
	}
	if err := s.finishUpload(ctx, st, f); err != nil {
		// Another call may have completed the file meanwhile.
		if cur, cerr := s.ownFile(ctx, id); cerr == nil && cur.Status == file.StatusReady {
			return cur, nil
		}
		return nil, err
	}
	return s.ownFile(ctx, id)
}

// finishUpload makes the pending file f ready. Its upload key stays
// writable through the ticket's URL until the ticket expires (a presigned
// S3 URL cannot be revoked), so the uploaded object is first copied to a
// snapshot no client can write; the snapshot is checked against the
// declaration and hashed (the hash is verified when one was declared,
// computed otherwise), then copied to the file's final key, which is named
// after that hash, and the file becomes ready with it. Concurrent
// completions of one file may each write a final object, but since its
// name is its content's hash, the object the ready file names holds exactly
// the bytes its sha256 describes, whatever a client sends afterwards.
func (s *Service) finishUpload(ctx context.Context, st Store, f *store.File) error {
	snap := f.Key + "." + uuid.NewString()
	obj, err := st.Copy(ctx, f.Key, snap)
	if errors.Is(err, ErrObjectNotFound) {
		if time.Now().After(f.ExpiresAt) {
			return &Error{Kind: "BAD_USER_INPUT", Field: "fileId", Reason: ReasonExpired,
				Message: "the upload ticket expired before the file was uploaded; call createUpload again"}
		}
		return &Error{Kind: "BAD_USER_INPUT", Field: "fileId", Reason: ReasonNotUploaded,
			Message: "nothing was uploaded yet: send the bytes to the ticket's url first"}
	}
	if err != nil {
		return fmt.Errorf("snapshot upload: %w", err)
	}
	// A snapshot left behind (crash) is removed by the janitor.
	defer func() { _ = st.Delete(context.WithoutCancel(ctx), snap) }()
	sum := obj.SHA256
	if sum == "" {
		if sum, err = hashObject(ctx, st, snap); err != nil {
			return fmt.Errorf("hash upload: %w", err)
		}
	}
	var problem string
	switch {
	case obj.Size != int64(f.Size):
		problem = fmt.Sprintf("the uploaded object has %d bytes, %d were declared", obj.Size, f.Size)
	case !strings.EqualFold(obj.ContentType, f.ContentType):
		problem = fmt.Sprintf("the uploaded object has content type %q, %q was declared", obj.ContentType, f.ContentType)
	case f.Sha256 != nil && sum != *f.Sha256:
		problem = "the uploaded object's sha256 differs from the declared one"
	}
	if problem != "" {
		// The file stays pending: the ticket may be used again until it
		// expires, and the janitor removes whatever is left after that.
		if err := st.Delete(ctx, f.Key); err != nil {
			return fmt.Errorf("delete mismatched upload: %w", err)
		}
		return &Error{Kind: "BAD_USER_INPUT", Field: "fileId", Reason: ReasonMismatch, Message: problem + "; the object was deleted, upload it again"}
	}
	// (A file whose ticket predates the uploads/ prefix keeps its key: the
	// checked snapshot is written back to it.)
	final := finalKey(f.Key, sum)
	if _, err := st.Copy(ctx, snap, final); err != nil {
		return fmt.Errorf("store upload: %w", err)
	}
	n, err := s.DB.File.Update().Where(file.ID(f.ID), file.StatusEQ(file.StatusPending)).
		SetStatus(file.StatusReady).SetActiveAt(time.Now()).SetSha256(sum).Save(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		// Completed by another call, or claimed by the janitor, meanwhile:
		// remove the final object unless the file names it.
		cur, err := s.DB.File.Get(ctx, f.ID)
		if final != f.Key && (store.IsNotFound(err) || err == nil && (cur.Status != file.StatusReady || storedKey(cur) != final)) {
			_ = st.Delete(ctx, final)
		}
		return nil
	}
	if final != f.Key {
		// Bytes sent to the ticket's URL from now on are never served;
		// the janitor removes them.
		_ = st.Delete(ctx, f.Key)
	}
	return nil
}

// hashObject returns the hex sha256 of a stored object.
func hashObject(ctx context.Context, st Store, key string) (string, error) {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashReader hashes what passes through it.
type hashReader struct {
	r io.Reader
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// UploadFile stores a file sent through the server (a multipart request)
// and returns it completed.
func (s *Service) UploadFile(ctx context.Context, up graphql.Upload) (*store.File, error) {
	uid, err := uploader(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.blobs()
	if err != nil {
		return nil, err
	}
	ct := up.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	if err := s.throttle(ctx); err != nil {
		return nil, err
	}
	if _, err := s.checkUpload(up.Filename, ct, up.Size, ""); err != nil {
		return nil, err
	}
	// The row comes first (pending, kept at least as long as a ticket), so
	// that bytes stored by a server that stops before the end are still
	// known to the janitor.
	now := time.Now()
	f, err := s.DB.File.Create().SetKey(newKey()).SetFilename(up.Filename).SetContentType(ct).SetSize(int(up.Size)).
		SetUploaderID(uid).SetExpiresAt(now.Add(s.limits().TicketTTL)).SetActiveAt(now).SetStatus(file.StatusPending).Save(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkQuota(ctx, f); err != nil {
		s.dropFile(ctx, f.ID)
		return nil, err
	}
	hr := &hashReader{r: up.File, h: sha256.New()}
	if err := st.Put(ctx, f.Key, hr, up.Size, ct); err != nil {
		_ = s.DB.File.DeleteOneID(f.ID).Exec(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("store upload: %w", err)
	}
	return s.DB.File.UpdateOneID(f.ID).SetSha256(hex.EncodeToString(hr.h.Sum(nil))).
		SetStatus(file.StatusReady).SetActiveAt(time.Now()).Save(ctx)
}
