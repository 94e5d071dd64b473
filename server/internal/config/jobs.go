package config

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// JobsConfig is the job engine's configuration: how event triggers,
// webhooks and periodic jobs run (River, in the app's database).
type JobsConfig struct {
	// PollInterval is how often an idle instance looks for jobs
	// (KILN_JOBS_POLL_INTERVAL, default 1s).
	PollInterval time.Duration
	// Workers is how many jobs an instance runs at once (KILN_JOBS_WORKERS,
	// default 10).
	Workers int
	// MaxAttempts is the deliveries of an event when its trigger names
	// none (KILN_JOBS_MAX_ATTEMPTS, default 25).
	MaxAttempts int
	// RetryBase and RetryMax shape the backoff: the wait after attempt n
	// is RetryBase*2^(n-1), at most RetryMax, with 10% jitter
	// (KILN_JOBS_RETRY_BASE 1s, KILN_JOBS_RETRY_MAX 1h).
	RetryBase, RetryMax time.Duration
	// WebhookTimeout bounds one webhook request (KILN_WEBHOOK_TIMEOUT, 10s).
	WebhookTimeout time.Duration
	// Timeout bounds one run of a handler or job (KILN_JOBS_TIMEOUT, 1m).
	Timeout time.Duration
	// RescueAfter is when a job still marked running (its instance died)
	// is run again (KILN_JOBS_RESCUE_AFTER, 10m; more than Timeout).
	RescueAfter time.Duration
}

func (j *JobsConfig) load(get func(string) string) error {
	var errs []error
	for _, d := range []struct {
		env string
		dst *time.Duration
		min time.Duration
	}{
		{"KILN_JOBS_POLL_INTERVAL", &j.PollInterval, time.Millisecond},
		{"KILN_JOBS_RETRY_BASE", &j.RetryBase, time.Millisecond},
		{"KILN_JOBS_RETRY_MAX", &j.RetryMax, time.Millisecond},
		{"KILN_WEBHOOK_TIMEOUT", &j.WebhookTimeout, 100 * time.Millisecond},
		{"KILN_JOBS_TIMEOUT", &j.Timeout, 100 * time.Millisecond},
		{"KILN_JOBS_RESCUE_AFTER", &j.RescueAfter, time.Second},
	} {
		v := get(d.env)
		t, err := time.ParseDuration(v)
		if err != nil || t < d.min {
			errs = append(errs, fmt.Errorf("%s must be a duration of at least %s such as 1s, got %q", d.env, d.min, v))
			continue
		}
		*d.dst = t
	}
	for _, n := range []struct {
		env string
		dst *int
	}{{"KILN_JOBS_WORKERS", &j.Workers}, {"KILN_JOBS_MAX_ATTEMPTS", &j.MaxAttempts}} {
		v, err := strconv.Atoi(get(n.env))
		if err != nil || v < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", n.env, get(n.env)))
			continue
		}
		*n.dst = v
	}
	if len(errs) == 0 && j.RescueAfter <= j.Timeout {
		errs = append(errs, fmt.Errorf("KILN_JOBS_RESCUE_AFTER (%s) must be longer than KILN_JOBS_TIMEOUT (%s)", j.RescueAfter, j.Timeout))
	}
	return errors.Join(errs...)
}
