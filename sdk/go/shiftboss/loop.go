package shiftboss

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// claimLoop claims attempts for the free slots until draining is done.
func (w *Worker) claimLoop(draining, bg context.Context) {
	delay := w.retryInitial
	for draining.Err() == nil {
		free := w.Config.Concurrency - w.running()
		if free <= 0 {
			select {
			case <-w.slotFreed:
			case <-draining.Done():
			}
			continue
		}
		req := &ClaimRequest{MaxAttempts: free, WaitSeconds: w.Config.ClaimWait.Seconds()}
		started := time.Now()
		resp, err := w.Client.Claim(draining, w.Config.WorkerID, req)
		if err == nil {
			delay = w.retryInitial
			for _, a := range resp.Assignments {
				w.start(bg, a) // even while draining: they are ours now, the drain runs them
			}
			if len(resp.Assignments) == 0 {
				// An operator that answers at once must not turn this into a busy loop.
				_ = sleep(draining, w.minClaimInterval-time.Since(started))
			}
			continue
		}
		if draining.Err() != nil {
			return // the long poll was given up
		}
		var pe *ProtocolError
		if errors.As(err, &pe) && pe.Status == 404 && !errors.Is(err, ErrUnavailable) {
			w.reregister(draining, started)
			continue
		}
		w.log().Warn("claim failed; retrying", "error", err, "retry_in", delay)
		_ = sleep(draining, delay)
		delay = min(delay*2, w.retryMax)
	}
}

// start runs an assignment in its own goroutine.
func (w *Worker) start(bg context.Context, a Assignment) {
	log := w.log().With("attempt_id", a.AttemptID)
	w.mu.Lock()
	if _, dup := w.attempts[a.AttemptID]; dup {
		w.mu.Unlock()
		log.Warn("attempt assigned twice; ignoring the repeat")
		return
	}
	if len(w.attempts) >= w.Config.Concurrency {
		w.mu.Unlock()
		// The operator sent more than max_attempts: hand the extra back, unharmed.
		log.Error("assigned more attempts than slots; handing it back")
		msg := fmt.Sprintf("worker %s was assigned more attempts than its %d slot(s)", w.Config.WorkerID, w.Config.Concurrency)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			_ = w.Client.Fail(bg, a.AttemptID, failReport("WorkerOverCapacity", msg, true))
		}()
		return
	}
	ctx, cancel := context.WithCancel(bg)
	at := &attempt{assignment: a, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	at.job = &Job{
		AttemptID: a.AttemptID,
		Ref:       a.Job,
		Attempt:   a.Attempt,
		Skill:     a.Skill,
		Params:    a.Params,
		Deadline:  a.Deadline,
		WorkerID:  w.Config.WorkerID,
		progress: func(pct float64, msg string) error {
			return w.sendProgress(bg, at, pct, msg)
		},
	}
	w.attempts[a.AttemptID] = at
	w.wg.Add(1)
	w.mu.Unlock()
	go w.runAttempt(bg, at)
}

// heartbeatLoop renews leases every heartbeat interval (at once when draining
// begins) and obeys the operator's commands, until ctx is cancelled.
// drainSent is closed once the first heartbeat with draining set has been tried.
func (w *Worker) heartbeatLoop(ctx, draining context.Context, drainSent chan<- struct{}) {
	drainBegan := draining.Done()
	notified := false
	for {
		w.mu.Lock()
		interval := w.interval
		w.mu.Unlock()
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-drainBegan:
			timer.Stop()
			drainBegan = nil // tell the operator now, not at the next beat
		}
		req := &HeartbeatRequest{AttemptIDs: w.runningIDs(), Draining: draining.Err() != nil}
		sent := time.Now()
		resp, err := w.Client.Heartbeat(ctx, w.Config.WorkerID, req)
		if req.Draining && !notified {
			notified = true
			close(drainSent)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var pe *ProtocolError
			if errors.As(err, &pe) && pe.Status == 404 && !errors.Is(err, ErrUnavailable) {
				w.reregister(ctx, sent)
			} else {
				w.log().Warn("heartbeat failed", "error", err)
			}
			continue
		}
		for _, c := range resp.Commands {
			w.obey(c)
		}
	}
}

// obey carries out one command of the operator.
func (w *Worker) obey(c Command) {
	if c.Type == CommandDrain {
		w.beginDrain("the operator asked: " + orDefault(c.Reason, "drain"))
		return
	}
	at := w.attempt(c.AttemptID)
	if at == nil {
		return // not running here (any more)
	}
	log := w.log().With("attempt_id", c.AttemptID)
	switch c.Type {
	case CommandCancel:
		log.Info("attempt cancelled", "reason", c.Reason)
		at.stop("cancel", orDefault(c.Reason, "the job was cancelled"))
	case CommandAbandon:
		log.Info("attempt abandoned", "reason", c.Reason)
		at.stop("abandon", orDefault(c.Reason, "abandoned by the operator"))
	default:
		log.Debug("unknown command ignored", "type", c.Type)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
