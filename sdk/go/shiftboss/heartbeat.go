package shiftboss

import (
	"context"
	"errors"
	"time"
)

// heartbeatLoop beats every heartbeat interval (at once when draining begins, so the
// operator hears of it) and checks the leases, until ctx is done.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	drainBegan := w.drainCtx.Done()
	last := time.Now()
	for {
		w.expireLeases(time.Now())
		timer := time.NewTimer(w.currentSession().interval - time.Since(last))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-drainBegan:
			timer.Stop()
			drainBegan = nil
		}
		last = time.Now()
		w.beat(ctx)
	}
}

// beat sends one heartbeat listing every attempt held and obeys the answer's
// commands. It says how many assignments the answer handed over.
func (w *Worker) beat(ctx context.Context) (assigned int) {
	ids := w.heldIDs()
	req := &HeartbeatRequest{AttemptIDs: ids, Draining: w.draining()}
	sent := time.Now()
	reqCtx, cancel := context.WithTimeout(ctx, w.heartbeatTimeout())
	resp, err := w.Client.Heartbeat(reqCtx, w.Config.WorkerID, req)
	cancel()
	if ctx.Err() != nil {
		return 0
	}
	if leaseKept(err) {
		w.renewLeases(ids, sent)
	}
	if err != nil {
		if errors.Is(err, ErrWorkerNotRegistered) {
			w.reregister(ctx, sent)
		} else {
			w.log().Warn("heartbeat failed", "worker_id", w.Config.WorkerID, "error", err, "attempts", len(ids))
		}
		return 0
	}
	for _, c := range resp.Commands {
		if w.obey(c, sent) {
			assigned++
		}
	}
	return assigned
}

// heartbeatTimeout is one heartbeat interval, within the protocol's bounds: a beat
// never outlasts the next one, and the next beat is the retry.
func (w *Worker) heartbeatTimeout() time.Duration {
	return min(max(w.currentSession().interval, w.t.heartbeatTimeoutMin), w.t.heartbeatTimeoutMax)
}

// obey carries out one command; it says whether it handed over a new assignment.
// sent is when the heartbeat that brought it was sent.
func (w *Worker) obey(c Command, sent time.Time) bool {
	log := w.log().With("worker_id", w.Config.WorkerID, "attempt_id", c.AttemptID)
	if c.Type == CommandAssign {
		if c.Assignment == nil {
			log.Warn("assign command without an assignment: ignored")
			return false
		}
		return w.accept(*c.Assignment, sent, "assign")
	}
	at := w.heldAttempt(c.AttemptID)
	if at == nil {
		log.Debug("command for an attempt not held here: ignored", "type", c.Type)
		return false
	}
	switch c.Type {
	case CommandCancel:
		grace := w.currentSession().cancelGrace
		if c.GraceSeconds != nil {
			grace = seconds(*c.GraceSeconds)
		}
		log.Info("attempt cancelled: asking the handler to stop", "reason", c.Reason, "grace", grace)
		at.requestStop(&StopError{Kind: StopCancelled, Reason: orDefault(c.Reason, "the job was cancelled")}, grace)
	case CommandAbandon:
		log.Info("attempt abandoned: stopping it, reporting nothing", "reason", c.Reason)
		at.abandon(orDefault(c.Reason, "abandoned by the operator"))
		w.forget(at)
	default:
		log.Debug("unknown command ignored", "type", c.Type)
	}
	return false
}
