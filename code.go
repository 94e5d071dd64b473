package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"kiln/ent"
	"kiln/ent/authsession"
	"kiln/ent/authuser"
	"kiln/ent/post"
	"kiln/ent/schema/enum"
	"kiln/graph"
	"kiln/runtime/job"
)

// appCode is the example app's own code, run by Kiln's server:
//   - Post.likeCount is kept by hooks on Like (in the like's transaction,
//     so the count never drifts; deletes by cascade count too);
//   - new public posts go to a webhook when NEW_POST_WEBHOOK_URL is set
//     (signed with NEW_POST_WEBHOOK_SECRET);
//   - every night, anonymous accounts idle for 30 days are deleted with
//     their records.
func appCode() *graph.Code {
	var code graph.Code
	code.Like.AfterCreate(func(ctx context.Context, tx *ent.Client, l *ent.Like) error {
		return tx.Post.Update().Where(post.ID(l.PostID)).AddLikeCount(1).Exec(ctx)
	})
	code.Like.AfterDelete(func(ctx context.Context, tx *ent.Client, l *ent.Like) error {
		return tx.Post.Update().Where(post.ID(l.PostID), post.LikeCountGT(0)).AddLikeCount(-1).Exec(ctx)
	})
	if url := os.Getenv("NEW_POST_WEBHOOK_URL"); url != "" {
		code.Post.Trigger(graph.PostTrigger{
			Name:    "newPublicPost",
			On:      []job.Op{job.Create},
			When:    func(_, p *ent.Post) bool { return p.Visibility == enum.VisibilityPublic },
			Webhook: &job.Webhook{URL: url, Secret: os.Getenv("NEW_POST_WEBHOOK_SECRET")},
		})
	}
	code.Every("purgeIdleAnonymous", 24*time.Hour, func(ctx context.Context, client *ent.Client) error {
		_, err := PurgeIdleAnonymous(ctx, client, time.Now().Add(-30*24*time.Hour))
		return err
	})
	return &code
}

// PurgeIdleAnonymous deletes the anonymous accounts with no activity since
// cutoff (no change to the account, no session started or refreshed),
// with their records, each in its own transaction; it returns how many.
func PurgeIdleAnonymous(ctx context.Context, client *ent.Client, cutoff time.Time) (int, error) {
	ids, err := client.AuthUser.Query().Where(
		authuser.Anonymous(true),
		authuser.UpdatedAtLT(cutoff),
		authuser.Not(authuser.HasSessionsWith(authsession.Or(authsession.CreatedAtGTE(cutoff), authsession.RotatedAtGTE(cutoff)))),
	).IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("find idle anonymous accounts: %w", err)
	}
	for n, id := range ids {
		tx, err := client.Tx(ctx)
		if err != nil {
			return n, err
		}
		if err := graph.DeleteOwned(ctx, tx.Client(), id, false); err != nil {
			_ = tx.Rollback()
			return n, fmt.Errorf("delete the records of %s: %w", id, err)
		}
		if err := tx.AuthUser.DeleteOneID(id).Exec(ctx); err != nil {
			_ = tx.Rollback()
			return n, fmt.Errorf("delete account %s: %w", id, err)
		}
		if err := tx.Commit(); err != nil {
			return n, err
		}
	}
	return len(ids), nil
}
