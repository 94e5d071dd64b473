package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"kiln/runtime/push"
	"kiln/server/internal/database"
)

// PushKind is the kind of the River jobs that deliver push notifications.
const PushKind = "kiln_push"

// PushTarget is one device of a push batch.
type PushTarget struct {
	Token string `json:"token"`
	AppID string `json:"appId,omitempty"`
}

// PushBatch is one delivery job: a notification for devices of one
// platform. Devices a push service asked to retry go into a new batch
// (Attempt+1), so the ones delivered are never sent twice.
type PushBatch struct {
	Platform     string            `json:"platform"`
	Targets      []PushTarget      `json:"targets"`
	Notification push.Notification `json:"notification"`
	Attempt      int               `json:"attempt"`
	// Expires is when the notification's TTL ends (zero: no TTL), fixed
	// when it is queued so retries do not extend it.
	Expires time.Time `json:"expires,omitzero"`
}

// Kind is PushKind.
func (PushBatch) Kind() string { return PushKind }

// PushSender delivers a batch: it returns the targets to try again and
// the wait the service asked for (Retry-After; 0 for none).
type PushSender interface {
	SendBatch(ctx context.Context, b PushBatch) (retry []PushTarget, wait time.Duration)
}

// SetPush sets what delivers push batches (before Start).
func (e *Engine) SetPush(s PushSender) { e.push = s }

// InsertPush enqueues delivery jobs.
func (e *Engine) InsertPush(ctx context.Context, batches []PushBatch) error {
	if len(batches) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(batches))
	for i, b := range batches {
		params[i] = river.InsertManyParams{Args: b}
	}
	if _, err := e.client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("queue push deliveries: %w", err)
	}
	return nil
}

type pushWorker struct {
	river.WorkerDefaults[PushBatch]
	e *Engine
}

func (w *pushWorker) Work(ctx context.Context, j *river.Job[PushBatch]) error {
	ctx = database.Background(ctx)
	if w.e.push == nil {
		return river.JobCancel(fmt.Errorf("push notifications are off on this instance"))
	}
	b := j.Args
	retry, wait := w.e.push.SendBatch(ctx, b)
	if len(retry) == 0 {
		return nil
	}
	if b.Attempt+1 >= w.e.cfg.MaxAttempts {
		w.e.log.Warn("push delivery given up", "platform", b.Platform, "devices", len(retry), "attempts", b.Attempt+1)
		return nil
	}
	// The backoff of the next attempt, or the service's Retry-After when
	// longer.
	next := time.Now().Add(backoff{base: w.e.cfg.RetryBase, max: w.e.cfg.RetryMax}.wait(b.Attempt + 1))
	if at := time.Now().Add(wait); at.After(next) {
		next = at
	}
	again := PushBatch{Platform: b.Platform, Targets: retry, Notification: b.Notification, Attempt: b.Attempt + 1, Expires: b.Expires}
	if _, err := w.e.client.Insert(ctx, again, &river.InsertOpts{ScheduledAt: next}); err != nil {
		// Not queued: River runs this whole batch again (at least once).
		return fmt.Errorf("queue the push retry: %w", err)
	}
	w.e.log.Info("push delivery retried later", "platform", b.Platform, "devices", len(retry), "attempt", b.Attempt+1, "at", next)
	return nil
}
