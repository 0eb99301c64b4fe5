package shiftboss

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// claimLoop claims attempts for the free slots until draining begins.
func (w *Worker) claimLoop() {
	ctx := w.drainCtx
	// lost is a claim sent without an answer: it is retried with the same request
	// id, so the operator replays what it assigned instead of claiming more.
	var lost *ClaimRequest
	for try := 0; ctx.Err() == nil; {
		req := lost
		if req == nil {
			free := w.freeSlots()
			if free <= 0 {
				w.waitFor(ctx, func() bool { return len(w.running) < w.Config.Concurrency }, -1)
				continue
			}
			req = &ClaimRequest{MaxAttempts: free, WaitSeconds: w.Config.ClaimWait.Seconds(), RequestID: newRequestID()}
		}
		sent := time.Now()
		resp, err := w.Client.Claim(ctx, w.Config.WorkerID, req)
		lost = nil
		if err == nil {
			try = 0
			// The operator started the leases when it wrote the claims, late in a long
			// poll: count them from the answer, not from the request.
			answered := time.Now()
			for _, a := range resp.Assignments {
				w.accept(a, answered, "claim") // while draining, this releases them
			}
			if len(resp.Assignments) == 0 {
				// An operator that answers at once must not turn this into a busy loop.
				_ = sleep(ctx, w.t.minClaimInterval-time.Since(sent))
			}
			continue
		}
		if ctx.Err() != nil {
			// The long poll was given up: whatever the operator assigned meanwhile comes
			// back as an assign command, and is released.
			return
		}
		if errors.Is(err, ErrUnavailable) {
			lost = req
		}
		if errors.Is(err, ErrWorkerNotRegistered) {
			w.reregister(ctx, sent)
			continue
		}
		delay := backoff(w.t.retryInitial, w.t.retryMax, try)
		try++
		w.log().Warn("claim failed; retrying", "worker_id", w.Config.WorkerID, "error", err, "retry_in", delay)
		_ = sleep(ctx, delay)
	}
}

func (w *Worker) freeSlots() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Config.Concurrency - len(w.running)
}

// newRequestID is a fresh claim request id: 128 random bits in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return hex.EncodeToString(b[:])
}

// accept takes up an assignment from a claim answer or an assign command: it starts
// it, or releases it when the worker has no free slot or is draining, or ignores it
// when it was taken up here before. Its lease runs from leaseFrom. It says whether
// the assignment was new.
func (w *Worker) accept(a Assignment, leaseFrom time.Time, source string) bool {
	w.mu.Lock()
	if w.seen.has(a.AttemptID) {
		w.mu.Unlock()
		w.log().Debug("attempt taken up before: ignored", "attempt_id", a.AttemptID, "from", source)
		return false
	}
	w.seen.add(a.AttemptID)
	lease := w.session.lease
	if a.LeaseSeconds > 0 {
		lease = seconds(a.LeaseSeconds)
	}
	at := newAttempt(w.bg, a, lease, leaseFrom)
	w.held[a.AttemptID] = at
	var release string
	switch {
	case w.draining():
		release = fmt.Sprintf("worker %s is shutting down", w.Config.WorkerID)
	case len(w.running) >= w.Config.Concurrency:
		release = fmt.Sprintf("worker %s has no free slot (%d of %d busy)", w.Config.WorkerID, len(w.running), w.Config.Concurrency)
	default:
		w.running[a.AttemptID] = at
	}
	w.touch()
	w.mu.Unlock()

	log := w.attemptLog(at)
	if release != "" {
		log.Warn("releasing an assignment", "from", source, "reason", release)
		at.markReturned() // it never runs
		at.takeReport()
		go w.deliver(at, outcome{release: &ReleaseReport{Reason: release}})
		return true
	}
	log.Info("running", "skill", a.Skill, "attempt", a.Attempt, "from", source)
	at.watchDeadline(&StopError{Kind: StopTimedOut, Reason: deadlineReason(a)},
		func() time.Duration { return w.currentSession().cancelGrace })
	go w.runAttempt(at, w.newJob(at))
	return true
}

func deadlineReason(a Assignment) string {
	if a.Deadline == nil {
		return ""
	}
	return "the attempt passed its deadline " + a.Deadline.UTC().Format(time.RFC3339)
}

func (w *Worker) newJob(at *attempt) *Job {
	a := at.assignment
	return &Job{
		AttemptID:  a.AttemptID,
		Ref:        a.Job,
		Attempt:    a.Attempt,
		Skill:      a.Skill,
		Params:     a.Params,
		Deadline:   a.Deadline,
		WorkerID:   w.Config.WorkerID,
		progress:   func(percent float64, message string) error { return w.sendProgress(at, percent, message) },
		stopping:   at.stopping,
		stopReason: at.stopRequest,
	}
}
