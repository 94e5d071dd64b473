package files

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/access"
	"kiln/runtime/store"
	"kiln/runtime/store/file"
	"kiln/runtime/store/predicate"
)

// Sweep removes files that no record references and that have been
// idle (since upload or last attachment) for longer than the upload TTL:
// uploads never completed or never attached, and files of deleted or
// updated records. Each file is first claimed with a conditional update
// (status deleting), so that with several instances exactly one deletes
// it, and a file attached meanwhile (active_at refreshed under a row lock)
// is skipped. Claimed files whose deletion was interrupted are retried.
// It returns the number of files removed.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	st, err := s.blobs()
	if err != nil {
		return 0, err
	}
	ctx = access.System(ctx)
	cutoff := now.Add(-s.limits().UploadTTL)
	// A file is removable once its upload URL has expired too, so that no
	// upload can land after its object was deleted.
	removable := []predicate.File{file.StatusNEQ(file.StatusDeleting), file.ActiveAtLT(cutoff), file.ExpiresAtLT(now), file.Not(s.referenced())}
	cands, err := s.DB.File.Query().Where(removable...).Limit(1000).IDs(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, id := range cands {
		n, err := s.DB.File.Update().
			Where(append([]predicate.File{file.ID(id)}, removable...)...).
			SetStatus(file.StatusDeleting).SetActiveAt(now).Save(ctx)
		if err != nil {
			return removed, fmt.Errorf("claim file %s: %w", id, err)
		}
		if n == 0 {
			continue // attached meanwhile, or claimed by another instance
		}
		ok, err := s.removeFile(ctx, st, id)
		if err != nil {
			return removed, err
		}
		if ok {
			removed++
		}
	}
	// Claims older than a minute were interrupted (a crash): finish them.
	stale, err := s.DB.File.Query().Where(file.StatusEQ(file.StatusDeleting), file.ActiveAtLT(now.Add(-time.Minute))).Limit(1000).IDs(ctx)
	if err != nil {
		return removed, err
	}
	for _, id := range stale {
		if _, err := s.removeFile(ctx, st, id); err != nil {
			return removed, err
		}
	}
	return removed, s.sweepStaging(ctx, st, now)
}

// sweepStaging removes up to 1000 objects under the staging prefix that no
// pending file needs: bytes sent again to the URL of a completed file's
// ticket (which S3 cannot revoke), uploads of files that are gone, and
// snapshots left by completions interrupted over an hour ago.
func (s *Service) sweepStaging(ctx context.Context, st Store, now time.Time) error {
	var objs []StoredObject
	enough := errors.New("enough")
	err := st.List(ctx, stagingPrefix, func(o StoredObject) error {
		objs = append(objs, o)
		if len(objs) == 1000 {
			return enough
		}
		return nil
	})
	if err != nil && !errors.Is(err, enough) {
		return fmt.Errorf("list uploads: %w", err)
	}
	if len(objs) == 0 {
		return nil
	}
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, uploadKeyOf(o.Key))
	}
	pending, err := s.DB.File.Query().Where(file.KeyIn(keys...), file.StatusEQ(file.StatusPending)).Select(file.FieldKey).Strings(ctx)
	if err != nil {
		return err
	}
	needed := map[string]bool{}
	for _, k := range pending {
		needed[k] = true
	}
	for _, o := range objs {
		key := uploadKeyOf(o.Key)
		if needed[key] && (o.Key == key || o.ModTime.After(now.Add(-time.Hour))) {
			continue
		}
		if err := st.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("delete stale upload %s: %w", o.Key, err)
		}
	}
	return nil
}

func (s *Service) removeFile(ctx context.Context, st Store, id uuid.UUID) (bool, error) {
	f, err := s.DB.File.Get(ctx, id)
	if store.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	keys := []string{f.Key}
	if k := storedKey(f); k != f.Key {
		keys = append(keys, k)
	}
	for _, key := range keys {
		if err := st.Delete(ctx, key); err != nil {
			return false, fmt.Errorf("delete object of file %s: %w", id, err)
		}
	}
	if err := removeRenditions(ctx, st, id); err != nil {
		return false, fmt.Errorf("delete renditions of file %s: %w", id, err)
	}
	n, err := s.DB.File.Delete().Where(file.ID(id), file.StatusEQ(file.StatusDeleting)).Exec(ctx)
	return n == 1, err
}
