package shiftboss

import (
	"errors"
	"fmt"
	"time"
)

// The worker's own view of its leases (docs/worker-protocol.md, "Leases and
// heartbeats"): an attempt's lease is valid until the send time of the last heartbeat
// that listed it and got an answer, plus the lease. While the operator is absent
// (connection refused, or 503: restarting, a standby, or cut off from the API server)
// nobody can give the work to another worker, so the view does not lapse: such a beat
// counts as a renewal. While it is unreachable otherwise (timeouts, resets, other
// 5xx, 429, other refusals) time runs out, as it does on the operator's side.

// leaseKept says whether a heartbeat's fate keeps the leases it listed.
func leaseKept(heartbeatErr error) bool {
	return heartbeatErr == nil || errors.Is(heartbeatErr, ErrOperatorAbsent)
}

// renewLeases renews the leases of the attempts a heartbeat sent at sent listed.
func (w *Worker) renewLeases(ids []string, sent time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if at := w.held[id]; at != nil {
			at.renewLease(sent)
		}
	}
}

// expireLeases stops the running attempts whose lease has lapsed: the operator has
// given their jobs to another worker, or soon will. Each is reported as a retryable
// LeaseExpired failure once its handler has returned (a result it returns is sent
// anyway, and refused if the job has moved on).
func (w *Worker) expireLeases(now time.Time) {
	w.mu.Lock()
	running := make([]*attempt, 0, len(w.running))
	for _, at := range w.running {
		running = append(running, at)
	}
	grace := w.session.cancelGrace
	w.mu.Unlock()
	for _, at := range running {
		until, lapsed := at.leaseLapsed(now)
		if !lapsed {
			continue
		}
		reason := fmt.Sprintf("worker %s could not renew its lease, which ran out at %s: the operator was unreachable",
			w.Config.WorkerID, until.UTC().Format(time.RFC3339))
		w.attemptLog(at).Warn("lease lapsed: asking the handler to stop", "lease_until", until, "grace", grace)
		at.requestStop(&StopError{Kind: StopLeaseExpired, Reason: reason}, grace)
	}
}
