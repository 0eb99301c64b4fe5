package shiftboss

import (
	"context"
	"sync"
	"time"
)

// attempt is the worker's bookkeeping for one attempt it holds, from the moment it is
// taken up until its outcome is settled (or it is abandoned).
type attempt struct {
	assignment Assignment
	lease      time.Duration // how long a renewal lasts
	ctx        context.Context
	cancel     context.CancelCauseFunc
	stopping   chan struct{} // closed at the first stop request (Job.Stopping)
	returned   chan struct{} // closed once the handler has returned, or if it never ran
	dropped    chan struct{} // closed when abandoned: stop delivering

	mu          sync.Mutex
	stop        *StopError  // the first stop request (an abandon overrides it)
	cancelAt    time.Time   // when ctx will be cancelled, once a stop was requested
	cancelTimer *time.Timer // cancels ctx at cancelAt
	deadline    *time.Timer // asks the handler to stop at the assignment's deadline
	leaseUntil  time.Time   // the worker's view of the lease (docs/worker-protocol.md)
	done        bool        // the handler has returned (or never ran)
	reporting   bool        // someone has taken on reporting the outcome
}

func newAttempt(bg context.Context, a Assignment, lease time.Duration, leaseFrom time.Time) *attempt {
	ctx, cancel := context.WithCancelCause(bg)
	return &attempt{
		assignment: a,
		lease:      lease,
		ctx:        ctx,
		cancel:     cancel,
		stopping:   make(chan struct{}),
		returned:   make(chan struct{}),
		dropped:    make(chan struct{}),
		leaseUntil: leaseFrom.Add(lease),
	}
}

func (a *attempt) id() string { return a.assignment.AttemptID }

// requestStop asks the handler to stop and cancels its context grace later. The
// first reason stays; a later request can only bring the cancellation closer.
func (a *attempt) requestStop(stop *StopError, grace time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	if a.stop == nil {
		a.stop = stop
		close(a.stopping)
	}
	at := time.Now().Add(max(grace, 0))
	if a.cancelTimer != nil && !at.Before(a.cancelAt) {
		return
	}
	if a.cancelTimer != nil {
		a.cancelTimer.Stop()
	}
	cause := a.stop
	a.cancelAt = at
	a.cancelTimer = time.AfterFunc(max(grace, 0), func() { a.cancel(cause) })
}

// abandon stops the handler at once and makes sure nothing is reported.
func (a *attempt) abandon(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stop != nil && a.stop.Kind == StopAbandoned {
		return
	}
	if a.stop == nil {
		close(a.stopping)
	}
	a.stop = &StopError{Kind: StopAbandoned, Reason: reason}
	close(a.dropped)
	a.cancel(a.stop)
}

// watchDeadline asks the handler to stop at the assignment's deadline, with grace.
func (a *attempt) watchDeadline(stop *StopError, grace func() time.Duration) {
	deadline := a.assignment.Deadline
	if deadline == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deadline = time.AfterFunc(time.Until(*deadline), func() { a.requestStop(stop, grace()) })
}

// stopRequest is why the handler was asked to stop, nil if it was not.
func (a *attempt) stopRequest() *StopError {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stop
}

func (a *attempt) isAbandoned() bool {
	s := a.stopRequest()
	return s != nil && s.Kind == StopAbandoned
}

// markReturned records that the handler has returned (or will never run).
func (a *attempt) markReturned() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	for _, t := range []*time.Timer{a.deadline, a.cancelTimer} {
		if t != nil {
			t.Stop()
		}
	}
	a.cancel(nil) // like a request's context: done once its handler has returned
	close(a.returned)
}

func (a *attempt) hasReturned() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done
}

// takeReport returns true once: to whoever reports the outcome. Never for an
// abandoned attempt.
func (a *attempt) takeReport() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reporting || (a.stop != nil && a.stop.Kind == StopAbandoned) {
		return false
	}
	a.reporting = true
	return true
}

// renewLease extends the lease to sentAt + lease: a heartbeat sent at sentAt listed
// the attempt and was answered (or met an absent operator).
func (a *attempt) renewLease(sentAt time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if until := sentAt.Add(a.lease); until.After(a.leaseUntil) {
		a.leaseUntil = until
	}
}

// leaseLapsed says whether a handler still running undisturbed has outlived its lease.
func (a *attempt) leaseLapsed(now time.Time) (until time.Time, lapsed bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leaseUntil, !a.done && a.stop == nil && now.After(a.leaseUntil)
}
