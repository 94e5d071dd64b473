package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"kiln/runtime/job"
)

// List returns the newest jobs in state (all states when empty), at most
// first.
func (e *Engine) List(ctx context.Context, state string, first int) ([]job.Info, error) {
	p := river.NewJobListParams().First(first).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if state != "" {
		p = p.States(rivertype.JobState(state))
	}
	res, err := e.client.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]job.Info, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		out = append(out, info(j))
	}
	return out, nil
}

// Retry makes a job (a discarded event, say) run again now.
func (e *Engine) Retry(ctx context.Context, id string) (job.Info, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return job.Info{}, job.ErrNoJob
	}
	j, err := e.client.JobRetry(ctx, n)
	if err == river.ErrNotFound || err == rivertype.ErrNotFound {
		return job.Info{}, job.ErrNoJob
	}
	if err != nil {
		return job.Info{}, fmt.Errorf("retry job %d: %w", n, err)
	}
	return info(j), nil
}

func info(j *rivertype.JobRow) job.Info {
	in := job.Info{ID: strconv.FormatInt(j.ID, 10), Kind: j.Kind, State: string(j.State), Attempt: j.Attempt,
		MaxAttempts: j.MaxAttempts, CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, FinalizedAt: j.FinalizedAt}
	switch j.Kind {
	case EventKind:
		var a eventArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil {
			in.Name, in.EventID = a.Event.Trigger, a.Event.ID
		}
	case PeriodicKind:
		var a periodicArgs
		if json.Unmarshal(j.EncodedArgs, &a) == nil {
			in.Name = a.Name
		}
	}
	for _, ae := range j.Errors {
		in.Errors = append(in.Errors, ae.Error)
	}
	return in
}
