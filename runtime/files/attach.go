package files

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"kiln/runtime/store"
	"kiln/runtime/store/file"
)

// Attach checks that ids name completed files the viewer uploaded (admins:
// any; keep: files already on the record) that fit the @file rules of the
// field key ("Type.field"), and marks them active. db is the store client
// of the mutation's transaction (store.ExecDriver over the app's); the
// update takes a row lock on each file, so the janitor cannot remove a
// file that is being attached (it only removes files idle for the upload
// TTL).
func (s *Service) Attach(ctx context.Context, db *store.Client, key string, keep []uuid.UUID, ids ...uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	spec := s.Schema.Fields[key]
	v, skip := access.Bypass(ctx)
	kept := map[uuid.UUID]bool{}
	for _, id := range keep {
		kept[id] = true
	}
	uniq := map[uuid.UUID]bool{}
	for _, id := range ids {
		uniq[id] = true
	}
	list := make([]uuid.UUID, 0, len(uniq))
	for id := range uniq {
		list = append(list, id)
	}
	files, err := db.File.Query().Where(file.IDIn(list...)).All(ctx)
	if err != nil {
		return err
	}
	byID := map[uuid.UUID]*store.File{}
	for _, f := range files {
		byID[f.ID] = f
	}
	for _, id := range ids {
		f := byID[id]
		if f == nil || f.Status != file.StatusReady || !skip && !kept[id] && (v == nil || f.UploaderID != v.ID) {
			return &apierror.NotFoundError{Type: "File", ID: id}
		}
		mt, _ := mediaType(f.ContentType)
		if !accepts(spec.Accept, mt) {
			return &Error{Kind: "VALIDATION", Field: spec.Input, Reason: ReasonContentType,
				Message: fmt.Sprintf("%s: file %s has type %s; accepted: %s", spec.Input, id, f.ContentType, strings.Join(spec.Accept, ", "))}
		}
		if limit := s.sizeLimit(spec); int64(f.Size) > limit {
			return &Error{Kind: "VALIDATION", Field: spec.Input, Reason: ReasonTooLarge,
				Message: fmt.Sprintf("%s: file %s has %d bytes, at most %d are accepted", spec.Input, id, f.Size, limit)}
		}
	}
	n, err := db.File.Update().Where(file.IDIn(list...), file.StatusEQ(file.StatusReady)).SetActiveAt(time.Now()).Save(ctx)
	if err != nil {
		return err
	}
	if n != len(list) {
		return &apierror.NotFoundError{Type: "File", ID: list[0]}
	}
	return nil
}

// viaField reports whether the file being resolved was reached through
// a File field of a record (which the viewer could read, and whose
// field-level rules passed).
func (s *Service) viaField(ctx context.Context) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return false
	}
	p := fc.Parent
	for p != nil && p.Index != nil {
		p = p.Parent
	}
	if p == nil || p.Field.Field == nil {
		return false
	}
	_, ok := s.Schema.Fields[p.Object+"."+p.Field.Name]
	return ok
}

// Visible reports whether the viewer may see a file outside a record's
// File field (node, url): admins; its uploader while no record references
// it; anyone who may read a record that references it.
func (s *Service) Visible(ctx context.Context, db *store.Client, f *store.File) (bool, error) {
	if f.Status == file.StatusDeleting {
		return false, nil
	}
	v, skip := access.Bypass(ctx)
	if skip {
		return true, nil
	}
	if v != nil && f.UploaderID == v.ID {
		ref, err := db.File.Query().Where(file.ID(f.ID), s.referenced()).Exist(ctx)
		if err != nil || !ref {
			return err == nil, err
		}
	}
	if s.Schema.ReadableRecord == nil {
		return false, nil
	}
	return s.Schema.ReadableRecord(ctx, f.ID)
}

// URL is a download URL of f valid for expiresIn seconds (default 900, at
// most Limits.MaxURLExpiry), for viewers who may see the file: through a
// record's File field (whose rules passed), or Visible. With a transform
// it is the URL of a resized rendition of the image (see Images).
func (s *Service) URL(ctx context.Context, db *store.Client, f *store.File, expiresIn *int, transform *Transform) (string, error) {
	if f.Status != file.StatusReady {
		return "", &apierror.NotFoundError{Type: "File", ID: f.ID}
	}
	if !s.viaField(ctx) {
		ok, err := s.Visible(ctx, db, f)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", &apierror.NotFoundError{Type: "File", ID: f.ID}
		}
	}
	st, err := s.blobs()
	if err != nil {
		return "", err
	}
	secs, maxSecs := 900, int(s.limits().MaxURLExpiry/time.Second)
	if expiresIn != nil {
		secs = *expiresIn
	}
	secs = min(max(secs, 1), max(maxSecs, 1))
	d := time.Duration(secs) * time.Second
	if transform != nil {
		return s.transformURL(f, *transform, d)
	}
	return st.PresignGet(ctx, storedKey(f), time.Now().Add(d))
}
