package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/uuid"

	"kiln/ent"
	"kiln/ent/authsession"
	"kiln/ent/authuser"
	"kiln/ent/comment"
	"kiln/ent/post"
	"kiln/ent/schema/enum"
	"kiln/ent/settings"
	"kiln/graph"
	"kiln/runtime/job"
	"kiln/runtime/push"
)

// appCode is the example app's own code, run by Kiln's server:
//   - Post.likeCount is kept by hooks on Like (in the like's transaction,
//     so the count never drifts; deletes by cascade count too);
//   - new public posts go to a webhook when NEW_POST_WEBHOOK_URL is set
//     (signed with NEW_POST_WEBHOOK_SECRET);
//   - a new comment notifies the post's author by push (not when they
//     comment on their own post, nor when their Settings.pushEnabled is
//     false), from a trigger: after the comment commits, retried if it fails;
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
	code.PushRecipients(PushEnabled)
	code.Comment.Trigger(graph.CommentTrigger{
		Name: "notifyPostAuthor",
		On:   []job.Op{job.Create},
		Handler: func(ctx context.Context, client *ent.Client, e job.Event) error {
			id, err := uuid.Parse(e.RecordID)
			if err != nil {
				return fmt.Errorf("comment id %q: %w", e.RecordID, err)
			}
			_, err = NotifyPostAuthor(ctx, client, id)
			return err
		},
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

// NotifyPostAuthor sends the author of a comment's post a push
// notification about it, unless they wrote the comment (PushRecipients
// leaves out those who turned push off); it returns the devices it was
// queued for.
func NotifyPostAuthor(ctx context.Context, client *ent.Client, commentID uuid.UUID) (int, error) {
	c, err := client.Comment.Query().Where(comment.ID(commentID)).WithPost().Only(ctx)
	if ent.IsNotFound(err) {
		return 0, nil // deleted since
	}
	if err != nil {
		return 0, fmt.Errorf("load comment %s: %w", commentID, err)
	}
	p := c.Edges.Post
	if p == nil || p.OwnerID == c.OwnerID {
		return 0, nil
	}
	owner, err := uuid.Parse(p.OwnerID)
	if err != nil {
		return 0, fmt.Errorf("post owner %q: %w", p.OwnerID, err)
	}
	body := c.Body
	if r := []rune(body); len(r) > 140 {
		body = string(r[:139]) + "…"
	}
	title := "New comment"
	if p.Title != nil && *p.Title != "" {
		title = "New comment on " + *p.Title
	}
	return push.ToUsers(ctx, []uuid.UUID{owner}, push.Notification{
		Title: title, Body: body, Sound: "default", CollapseID: "post-" + p.ID.String(),
		Data: map[string]string{"postId": p.ID.String(), "commentId": c.ID.String()},
	})
}

// PushEnabled keeps, of userIDs, the users who have not turned push off
// in their Settings (no Settings: on). Every push notification, from the
// app's code or an admin's sendNotification, goes through it.
func PushEnabled(ctx context.Context, client *ent.Client, userIDs []uuid.UUID) ([]uuid.UUID, error) {
	ids := make([]string, len(userIDs))
	for i, id := range userIDs {
		ids[i] = id.String()
	}
	off, err := client.Settings.Query().Where(settings.PushEnabled(false), settings.OwnerIDIn(ids...)).
		Select(settings.FieldOwnerID).Strings(ctx)
	if err != nil {
		return nil, fmt.Errorf("load push settings: %w", err)
	}
	return slices.DeleteFunc(slices.Clone(userIDs), func(id uuid.UUID) bool { return slices.Contains(off, id.String()) }), nil
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
