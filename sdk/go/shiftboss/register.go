package shiftboss

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// minHeartbeatInterval guards against an operator that answers a zero interval.
const minHeartbeatInterval = 10 * time.Millisecond

func (w *Worker) registerRequest() *RegisterRequest {
	skills := make([]SkillSpec, 0, len(w.order))
	for _, name := range w.order {
		skills = append(skills, w.skills[name].spec)
	}
	version := w.Version
	if version == "" {
		version = Version
	}
	return &RegisterRequest{
		Pool:     w.Config.Pool,
		WorkerID: w.Config.WorkerID,
		Skills:   skills,
		Capacity: w.Config.Concurrency,
		Version:  truncate(version, 64),
		Runtime:  "go",
	}
}

func (w *Worker) registerOnce(ctx context.Context) error {
	resp, err := w.Client.Register(ctx, w.registerRequest())
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.session.interval = max(minHeartbeatInterval, seconds(resp.HeartbeatIntervalSeconds))
	if resp.LeaseSeconds > 0 {
		w.session.lease = seconds(resp.LeaseSeconds)
	}
	if resp.CancelGraceSeconds != nil && *resp.CancelGraceSeconds >= 0 {
		w.session.cancelGrace = seconds(*resp.CancelGraceSeconds)
	}
	w.session.registeredAt = time.Now()
	return nil
}

// registerUntilDone registers, retrying while the operator is unreachable (or the
// token cannot be read yet). A refusal is returned: it needs a human.
func (w *Worker) registerUntilDone(ctx context.Context) error {
	for try := 0; ; try++ {
		err := w.registerOnce(ctx)
		if err == nil {
			return nil
		}
		var pe *ProtocolError
		if ctx.Err() != nil || (errors.As(err, &pe) && !errors.Is(err, ErrUnavailable)) {
			return fmt.Errorf("shiftboss: registering worker %s in pool %s: %w", w.Config.WorkerID, w.Config.Pool, err)
		}
		delay := backoff(w.t.retryInitial, w.t.retryMax, try)
		w.log().Warn("cannot register yet; retrying", "try", try+1, "error", err, "retry_in", delay)
		if sleep(ctx, delay) != nil {
			return ctx.Err()
		}
	}
}

// reregister registers again after the operator forgot this worker (it restarted);
// refusedAt is when the refused request was sent: a registration since makes this a
// no-op, so many refusals at once cost one registration.
func (w *Worker) reregister(ctx context.Context, refusedAt time.Time) {
	w.registerMu.Lock()
	defer w.registerMu.Unlock()
	if w.currentSession().registeredAt.After(refusedAt) {
		return
	}
	w.log().Warn("the operator does not know this worker any more: registering again", "worker_id", w.Config.WorkerID)
	if err := w.registerOnce(ctx); err != nil {
		w.log().Warn("registering again failed", "worker_id", w.Config.WorkerID, "error", err)
	}
}
