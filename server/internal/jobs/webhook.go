package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"kiln/runtime/job"
)

// deliver posts ev to a webhook, signed; a 2xx answer is success.
func (e *Engine) deliver(ctx context.Context, w *job.Webhook, ev job.Event, attempt int) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Kiln-Webhook/1")
	req.Header.Set(job.SignatureHeader, job.Sign(w.Secret, time.Now(), body))
	req.Header.Set("Kiln-Event-Id", ev.ID)
	req.Header.Set("Kiln-Attempt", strconv.Itoa(attempt))
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s answered %s", w.URL, resp.Status)
	}
	return nil
}
