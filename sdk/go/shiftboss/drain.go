package shiftboss

import "fmt"

// drain runs once claiming has stopped: running attempts get the drain timeout to
// finish; those still running are asked to stop and, after the cancel grace, released;
// then it waits until every outcome is settled (or its budget is spent).
func (w *Worker) drain() {
	noneRunning := func() bool { return len(w.running) == 0 }
	if n := w.runningCount(); n > 0 {
		w.log().Info("draining: waiting for running attempts", "worker_id", w.Config.WorkerID, "running", n, "timeout", w.Config.DrainTimeout)
	}
	if !w.waitFor(w.bg, noneRunning, w.Config.DrainTimeout) {
		w.releaseRunning()
	}
	w.waitFor(w.bg, func() bool { return len(w.held) == 0 }, -1)
}

// releaseRunning stops what still runs at the end of the drain timeout and releases
// it: its jobs are queued again at once and the attempts are not counted.
func (w *Worker) releaseRunning() {
	w.mu.Lock()
	left := make([]*attempt, 0, len(w.running))
	for _, at := range w.running {
		left = append(left, at)
	}
	grace := w.session.cancelGrace
	w.mu.Unlock()
	stop := &StopError{Kind: StopReleased, Reason: fmt.Sprintf("worker %s is shutting down: its drain timeout of %gs passed",
		w.Config.WorkerID, w.Config.DrainTimeout.Seconds())}
	w.log().Warn("drain timeout: stopping and releasing the attempts still running", "worker_id", w.Config.WorkerID,
		"count", len(left), "grace", grace)
	for _, at := range left {
		at.requestStop(stop, grace)
	}
	if w.waitFor(w.bg, func() bool { return len(w.running) == 0 }, grace+w.t.stubbornWait) {
		return
	}
	for _, at := range left {
		if !at.hasReturned() && at.takeReport() {
			w.attemptLog(at).Warn("the handler ignores its cancelled context: releasing its attempt anyway")
			go w.deliver(at, stopOutcome(stop))
		}
	}
}

// finalHeartbeats tells the operator, after the drain, that this worker holds nothing;
// an answer may still hand over attempts it assigned meanwhile (a claim given up when
// the drain began), which are released, until one answer hands over none.
func (w *Worker) finalHeartbeats() {
	for range w.t.finalBeats {
		if w.beat(w.bg) == 0 {
			return
		}
		w.waitFor(w.bg, func() bool { return len(w.held) == 0 }, -1)
	}
}
