// Command hooksapp is the example app with hooks, triggers and a periodic
// job made for the tests of server/hooks_test.go (each does one thing the
// tests check).
package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"

	"kiln/ent"
	"kiln/ent/post"
	"kiln/graph"
	"kiln/runtime/apierror"
	"kiln/runtime/job"
	"kiln/server"
)

func main() {
	var code graph.Code
	// A before-hook that rejects, and one that changes the input.
	code.Post.BeforeCreate(func(ctx context.Context, m *ent.PostMutation) error {
		body, _ := m.Body()
		switch body {
		case "reject me":
			return apierror.Input("body", "the hook refuses this body")
		case "change me":
			m.SetBody("changed by the hook")
		}
		return nil
	})
	// An after-hook that writes another record, then fails on demand: both
	// writes roll back.
	code.Comment.AfterCreate(func(ctx context.Context, tx *ent.Client, c *ent.Comment) error {
		if err := tx.Post.UpdateOneID(c.PostID).AddScore(1).Exec(ctx); err != nil {
			return err
		}
		if c.Body == "fail after" {
			return errors.New("the after-hook fails")
		}
		return nil
	})
	// A before-delete hook that protects pinned posts (title "pinned").
	code.Post.BeforeDelete(func(ctx context.Context, tx *ent.Client, old *ent.Post) error {
		if old.Title != nil && *old.Title == "pinned" {
			return apierror.Input("id", "pinned posts cannot be deleted")
		}
		return nil
	})
	// Like deletes count on the post, also when a cascade removes them.
	code.Like.AfterDelete(func(ctx context.Context, tx *ent.Client, old *ent.Like) error {
		return tx.Post.Update().Where(post.ID(old.PostID)).AddScore(100).Exec(ctx)
	})
	attempts, _ := strconv.Atoi(os.Getenv("HOOKS_WEBHOOK_ATTEMPTS"))
	if url := os.Getenv("HOOKS_WEBHOOK_URL"); url != "" {
		code.Comment.Trigger(graph.CommentTrigger{
			Name: "commentWebhook", On: []job.Op{job.Create, job.Delete},
			Webhook: &job.Webhook{URL: url, Secret: os.Getenv("HOOKS_WEBHOOK_SECRET")}, MaxAttempts: attempts,
		})
	}
	// A Go handler: a post titled "score me" gets score 7, asynchronously.
	code.Post.Trigger(graph.PostTrigger{
		Name: "scoreMe", On: []job.Op{job.Create},
		When: func(_, p *ent.Post) bool { return p.Title != nil && *p.Title == "score me" },
		Handler: func(ctx context.Context, client *ent.Client, e job.Event) error {
			return client.Post.UpdateOneID(uuid.MustParse(e.RecordID)).SetScore(7).Exec(ctx)
		},
	})
	if every, err := time.ParseDuration(os.Getenv("HOOKS_TICK")); err == nil {
		code.Every("tick", every, func(ctx context.Context, c *ent.Client) error {
			// Each tick marks one post (title "ticks") with a higher score.
			return c.Post.Update().Where(post.Title("ticks")).AddScore(1).Exec(ctx)
		})
	}
	server.Main(graph.App(&code))
}
